"""Independently written RAdam implementations for the conformance suite's meta-tests.

Two implementations, written from the paper (Liu et al. 2020, Algorithm 2) and
not from ``radam_ref``: a functional NumPy step with the spec's signature, and a
``torch.optim.Optimizer``.  Each takes a ``defect`` name; ``None`` is the correct
implementation, every other value breaks exactly one thing, as described in
:data:`NUMPY_DEFECTS` and :data:`TORCH_DEFECTS`.
"""

from __future__ import annotations

import math

import numpy as np

#: defect -> what is broken (functional NumPy step).
NUMPY_DEFECTS = {
    "threshold_5": "uses ρ_t > 5 whatever config.threshold says",
    "eps_after_bias_correction": "adds ε after bias correction when told before",
    "eps_inside_sqrt": "sqrt(v + ε) instead of sqrt(v) + ε",
    "decoupled_as_l2": "applies decoupled weight decay as L2 (λθ added to g)",
    "decoupled_without_lr": "decoupled decay θ(1 − λ) instead of θ(1 − αλ)",
    "moving_decay_always": "decoupled_moving decays θ also on steps that do not move it",
    "no_update_before_rectification": "no SGD-momentum step before rectification",
    "sgd_without_bias_correction": "SGD-momentum step uses m_t instead of m̂_t",
    "nesterov_always": "always uses optax's Nesterov momentum",
    "maximize_ignored": "ignores maximize",
    "float32_step_scalars": "computes ρ_t, r_t, 1 − βᵗ in float32 with the cancelling formula",
    "float16_step_counter": "keeps the step counter in float16 (it stops at 2048)",
    "no_bias_correction2": "forgets sqrt(1 − β₂ᵗ) in the adaptive rate",
    "step_off_by_one": "uses t + 1 for the step scalars",
    "betas_swapped": "reads (β₂, β₁) from config.betas",
    "r_squared": "uses r_t² instead of r_t",
    "degenerate_rectifies": "for ρ∞ ≤ 4 takes the adaptive step with r_t = 1",
    "eps_zero_replaced": "uses ε = 1e-8 when told ε = 0 (eps = eps or 1e-8)",
    "eps_zero_nan_spreads": "a 0/0 in one element makes the whole parameter NaN",
    "writes_inputs": "writes the new parameters into its input arrays (functional API)",
    "float32_v_in_float16": "keeps v in float16 for float32 parameters",
}

#: defect -> what is broken (torch optimizer).
TORCH_DEFECTS = {
    "state_dict_drops_step": "state_dict() omits the step counter (a resumed run restarts at t = 1)",
    "load_ignores_exp_avg_sq": "load_state_dict() does not restore exp_avg_sq",
    "groups_use_first_lr": "every group steps with the first group's lr",
    "shared_step_counter": "one step counter for all parameters (a group added later starts late)",
    "none_grad_as_zero": "a None gradient is stepped as zeros",
    "skips_zero_grads": "skips parameters whose gradient is all zeros",
    "maximize_in_place": "negates the gradient in place for maximize",
    "l2_in_place": "adds λθ into the gradient in place",
    "detached_denominator": "differentiable mode detaches sqrt(v) from the graph",
    "complex_as_modulus": "complex parameters: second moment |g|² (one coordinate) instead of real pairs",
    "upcasts_low_precision": "float16/bfloat16 parameters come back as float32",
}


# --------------------------------------------------------------------------- #
# Step scalars, from Algorithm 2 (lines 2, 7, 8, 10, 11), Python floats.
# --------------------------------------------------------------------------- #


def scalars(t: float, b1: float, b2: float, threshold: float, comparison: str, defect=None):
    """(rectified, r_t, 1 − β₁ᵗ, 1 − β₂ᵗ) for step t."""
    if defect == "float32_step_scalars":
        f = np.float32
        b2f, b1f, tf = f(b2), f(b1), f(t)
        rho_inf = f(2.0 / (1.0 - b2) - 1.0)
        b2t = b2f ** tf
        rho = rho_inf - f(2) * tf * b2t / (f(1) - b2t)
        bc1, bc2 = float(f(1) - b1f ** tf), float(f(1) - b2t)
        rho, rho_inf = float(rho), float(rho_inf)
    else:
        rho_inf = 2.0 / (1.0 - b2) - 1.0
        b2t = b2 ** t
        bc2 = 1.0 - b2t
        rho = rho_inf - 2.0 * t * b2t / bc2
        bc1 = 1.0 - b1 ** t
    if defect == "degenerate_rectifies" and rho_inf <= 4.0:
        return True, 1.0, bc1, bc2
    rectified = rho > threshold if comparison == ">" else rho >= threshold
    r = None
    if rectified:
        r = math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        if defect == "r_squared":
            r = r * r
    return rectified, r, bc1, bc2


# --------------------------------------------------------------------------- #
# The functional NumPy step.
# --------------------------------------------------------------------------- #


def numpy_init(params):
    return {"count": 0, "m": [np.zeros_like(p) for p in params], "v": [np.zeros_like(p) for p in params]}


def make_numpy_step(defect=None):
    """A step(params, grads, state, config) -> (params, state) with ``defect``."""
    if defect is not None and defect not in NUMPY_DEFECTS:
        raise ValueError(f"unknown defect {defect!r}")

    def step(params, grads, state, config):
        b1, b2 = config.betas
        if defect == "betas_swapped":
            b1, b2 = b2, b1
        count = state["count"]
        if defect == "float16_step_counter":
            t = float(np.float16(count) + np.float16(1))
        else:
            t = count + 1
        t_sched = t + 1 if defect == "step_off_by_one" else t
        threshold = 5.0 if defect == "threshold_5" else config.threshold
        rectified, r, bc1, bc2 = scalars(t_sched, b1, b2, threshold, config.comparison, defect)
        nesterov = config.nesterov or defect == "nesterov_always"
        bc1_next = scalars(t_sched + 1, b1, b2, threshold, config.comparison, defect)[2] if nesterov else None
        eps = config.eps
        if defect == "eps_zero_replaced":
            eps = eps or 1e-8
        placement = config.eps_placement
        if defect == "eps_after_bias_correction":
            placement = "after_bias_correction"
        mode = config.weight_decay_mode
        if defect == "decoupled_as_l2" and mode == "decoupled":
            mode = "l2"
        before = config.before_rectification
        if defect == "no_update_before_rectification":
            before = "none"
        lr, wd = config.lr, config.weight_decay
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, state["m"], state["v"]):
            dtype = p.dtype
            g = g.astype(dtype)
            if config.maximize and defect != "maximize_ignored":
                g = -g
            if mode == "l2" and wd:
                g = g + wd * p
            m = b1 * m + (1.0 - b1) * g
            if defect == "float32_v_in_float16" and dtype == np.float32:
                v = (b2 * v + (1.0 - b2) * g * g).astype(np.float16).astype(np.float32)
            else:
                v = b2 * v + (1.0 - b2) * g * g
            if nesterov:
                m_hat = b1 * m / bc1_next + (1.0 - b1) * g / bc1
            else:
                m_hat = m / bc1
            moves = rectified or before == "sgd_momentum"
            q = p
            decay_now = mode == "decoupled" or (mode == "decoupled_moving" and
                                                (moves or defect == "moving_decay_always"))
            if wd and decay_now:
                q = q * (1.0 - (wd if defect == "decoupled_without_lr" else lr * wd))
            if rectified:
                with np.errstate(divide="ignore", invalid="ignore"):
                    if defect == "eps_inside_sqrt":
                        denom = np.sqrt(v / bc2 + eps)
                        adaptive = 1.0 / denom
                    elif placement == "before_bias_correction":
                        root = np.sqrt(v + config.eps_root)
                        scale = 1.0 if defect == "no_bias_correction2" else math.sqrt(bc2)
                        adaptive = scale / (root + eps)
                    else:
                        adaptive = 1.0 / (np.sqrt(v / bc2 + config.eps_root) + eps)
                    update = (lr * r) * (m_hat * adaptive)
                if defect == "eps_zero_nan_spreads" and np.isnan(update).any():
                    update = update + np.nan
                q = q - update
            elif moves:
                q = q - lr * (m if defect == "sgd_without_bias_correction" else m_hat)
            q = np.asarray(q, dtype=dtype)
            if defect == "writes_inputs":
                p[...] = q
            new_p.append(q)
            new_m.append(np.asarray(m, dtype=dtype))
            new_v.append(np.asarray(v, dtype=dtype))
        count = t if defect != "float16_step_counter" else float(np.float16(t))
        return new_p, {"count": count, "m": new_m, "v": new_v}

    step.__name__ = f"numpy_step[{defect}]"
    return step


# --------------------------------------------------------------------------- #
# The torch optimizer (paper profile: threshold 4, ε before bias correction,
# decoupled weight decay by default).
# --------------------------------------------------------------------------- #


def make_torch_optimizer(defect=None):
    """A ``torch.optim.Optimizer`` subclass with ``defect``."""
    import torch

    if defect is not None and defect not in TORCH_DEFECTS:
        raise ValueError(f"unknown defect {defect!r}")

    class MiniRAdam(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                     decoupled_weight_decay=True, *, maximize=False, differentiable=False):
            defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                            differentiable=differentiable)
            super().__init__(params, defaults)
            self._global_step = 0

        def state_dict(self):
            sd = super().state_dict()
            if defect == "state_dict_drops_step":
                for st in sd["state"].values():
                    st.pop("step", None)
            return sd

        def load_state_dict(self, state_dict):
            if defect == "load_ignores_exp_avg_sq":
                for st in state_dict["state"].values():
                    st["exp_avg_sq"] = torch.zeros_like(st["exp_avg_sq"])
            super().load_state_dict(state_dict)
            for st in self.state.values():
                st.setdefault("step", 0)

        def step(self, closure=None):
            differentiable = any(g["differentiable"] for g in self.param_groups)
            with torch.set_grad_enabled(differentiable):
                self._step()

        def _step(self):
            self._global_step += 1
            first_lr = self.param_groups[0]["lr"]
            for group in self.param_groups:
                b1, b2 = group["betas"]
                lr = first_lr if defect == "groups_use_first_lr" else group["lr"]
                wd, eps = group["weight_decay"], group["eps"]
                for p in group["params"]:
                    grad = p.grad
                    if grad is None:
                        if defect != "none_grad_as_zero":
                            continue
                        grad = torch.zeros_like(p)
                    if defect == "skips_zero_grads" and not bool(grad.abs().sum() > 0):
                        continue
                    state = self.state[p]
                    if len(state) == 0:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    t = self._global_step if defect == "shared_step_counter" else state["step"]
                    param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                    if torch.is_complex(p) and defect != "complex_as_modulus":
                        param, grad = torch.view_as_real(p), torch.view_as_real(grad)
                        m, v = torch.view_as_real(m), torch.view_as_real(v)
                    if group["maximize"]:
                        if defect == "maximize_in_place":
                            grad = grad.neg_()
                        else:
                            grad = -grad
                    if wd and not group["decoupled_weight_decay"]:
                        grad = grad.add_(param, alpha=wd) if defect == "l2_in_place" else grad + wd * param
                    rectified, r, bc1, bc2 = scalars(t, b1, b2, 4.0, ">")
                    m.mul_(b1).add_(grad, alpha=1.0 - b1)
                    if defect == "complex_as_modulus" and torch.is_complex(p):
                        v.mul_(b2).add_((grad * grad.conj()).real * (1.0 - b2))
                    else:
                        v.mul_(b2).add_(grad * grad, alpha=1.0 - b2)
                    m_hat = m / bc1
                    if wd and group["decoupled_weight_decay"]:
                        param.mul_(1.0 - lr * wd)
                    if rectified:
                        root = v.sqrt()
                        if defect == "detached_denominator":
                            root = root.detach()
                        param.sub_(lr * r * m_hat * (math.sqrt(bc2) / (root + eps)))
                    else:
                        param.sub_(lr * m_hat)
                    if defect == "upcasts_low_precision" and p.dtype in (torch.float16, torch.bfloat16):
                        p.data = p.data.float()
                        state["exp_avg"] = state["exp_avg"].float()
                        state["exp_avg_sq"] = state["exp_avg_sq"].float()

    MiniRAdam.__name__ = f"MiniRAdam[{defect}]"
    MiniRAdam.__qualname__ = MiniRAdam.__name__
    return MiniRAdam
