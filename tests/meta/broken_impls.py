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
    "eps_inside_sqrt": "sqrt(v/(1 − β₂ᵗ) + ε) instead of sqrt(v/(1 − β₂ᵗ)) + ε",
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
    "eps_zero_masked_nan": "computes the adaptive term on unrectified steps too and masks it with a "
                           "product (torch.optim.RAdam foreach): with ε = 0, 0/0 where v = 0, then 0·NaN",
    "writes_inputs": "writes the new parameters into its input arrays (functional API)",
    "float32_v_in_float16": "keeps v in float16 for float32 parameters",
    "float32_update": "updates float64 parameters in float32 (parameters, moments, update)",
    "float32_moments": "keeps m and v in float32 for float64 parameters",
    "float32_hyperparameters": "rounds lr, β, ε and λ to float32",
    "no_bias_correction1": "uses m_t instead of m̂_t in the rectified update",
    "step_behind": "uses t − 1 (at least 1) for the step scalars",
    "r_missing": "uses r_t = 1 on rectified steps",
    "rho_inf_off_by_one": "ρ∞ = 2/(1 − β₂) (without the − 1)",
    "rho_factor_one": "ρ_t = ρ∞ − tβ₂ᵗ/(1 − β₂ᵗ) (without the factor 2)",
    "sqrt_v_missing": "divides by v instead of sqrt(v)",
    "lr_squared": "steps with α² instead of α",
    "momentum_no_one_minus_beta": "m = β₁ m + g",
    "v_no_one_minus_beta": "v = β₂ v + g²",
}

#: defect -> what is broken (torch optimizer).
TORCH_DEFECTS = {
    "state_dict_drops_step": "state_dict() pops the step counter out of the state (the live one too)",
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
    "shared_cache_lr": "caches the step size (lr and betas baked in) per step number in a buffer shared "
                       "by groups with the constructor's betas (torch_optimizer)",
    "added_group_shares_cache": "caches the β-dependent step scalars per step number; groups added later "
                                "share the first group's cache (the authors' buffer)",
    "step_per_group": "one step counter per group, advanced on every step",
    "l2_dropped": "ignores weight decay when not decoupled",
    "moment_in_grad": "accumulates m through the gradient tensor in place (grad *= 1 − β₁)",
    "complex_real_only": "complex parameters: steps the real part and writes it back (imaginary part zeroed)",
}


# --------------------------------------------------------------------------- #
# Step scalars, from Algorithm 2 (lines 2, 7, 8, 10, 11), Python floats.
# --------------------------------------------------------------------------- #


def scalars(t: float, b1: float, b2: float, threshold: float, comparison: str, defect=None):
    """(rectified, r_t, 1 − β₁ᵗ, 1 − β₂ᵗ) for step t."""
    if defect in ("rho_inf_off_by_one", "rho_factor_one"):
        rho_inf = 2.0 / (1.0 - b2) - (0.0 if defect == "rho_inf_off_by_one" else 1.0)
        b2t = b2 ** t
        bc2, bc1 = 1.0 - b2t, 1.0 - b1 ** t
        rho = rho_inf - (1.0 if defect == "rho_factor_one" else 2.0) * t * b2t / bc2
        rectified = rho > threshold if comparison == ">" else rho >= threshold
        if not (rectified and rho > 4.0 and rho_inf > 4.0):
            return False, None, bc1, bc2
        r = math.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        return True, r, bc1, bc2
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
        if defect == "r_missing":
            r = 1.0
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
        if defect == "step_behind":
            t_sched = max(1, t - 1)
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
        if defect == "float32_hyperparameters":
            f = lambda x: float(np.float32(x))  # noqa: E731
            lr, wd, eps, b1, b2 = f(lr), f(wd), f(eps), f(b1), f(b2)
            rectified, r, bc1, bc2 = scalars(t_sched, b1, b2, threshold, config.comparison, defect)
        if defect == "lr_squared":
            lr = lr * lr
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in zip(params, grads, state["m"], state["v"]):
            dtype = p.dtype
            out_dtype = dtype
            if defect == "float32_update":
                dtype = np.float32
                p, m, v = p.astype(dtype), m.astype(dtype), v.astype(dtype)
            g = g.astype(dtype)
            if config.maximize and defect != "maximize_ignored":
                g = -g
            if mode == "l2" and wd:
                g = g + wd * p
            m_old, v_old = m, v
            m = b1 * m + (1.0 if defect == "momentum_no_one_minus_beta" else 1.0 - b1) * g
            if defect == "float32_v_in_float16" and dtype == np.float32:
                v = (b2 * v + (1.0 - b2) * g * g).astype(np.float16).astype(np.float32)
            else:
                v = b2 * v + (1.0 if defect == "v_no_one_minus_beta" else 1.0 - b2) * g * g
            if defect == "float32_moments":
                g32 = g.astype(np.float32)
                m = (np.float32(b1) * m_old.astype(np.float32) + np.float32(1.0 - b1) * g32)
                v = (np.float32(b2) * v_old.astype(np.float32) + np.float32(1.0 - b2) * g32 * g32)
            if nesterov:
                m_hat = b1 * m / bc1_next + (1.0 - b1) * g / bc1
            else:
                m_hat = m / bc1
            if defect == "no_bias_correction1":
                m_hat = m
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
                        root = v if defect == "sqrt_v_missing" else np.sqrt(v + config.eps_root)
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
                if defect == "eps_zero_masked_nan":
                    # the rectified term with r_t = 0, written as torch's foreach path does:
                    # m̂ · 1/((sqrt(v) + ε)/(−α·0·sqrt(1 − β₂ᵗ))) — 0/0 = NaN where v = 0 and ε = 0
                    with np.errstate(divide="ignore", invalid="ignore"):
                        zero_rate = -(lr * 0.0 * math.sqrt(bc2))
                        q = q + m * (1.0 / ((np.sqrt(v) + eps) / zero_rate))
            q = np.asarray(q, dtype=dtype)
            if defect == "writes_inputs":
                p[...] = q
            if defect == "float32_update":
                q = q.astype(out_dtype)
            new_p.append(q)
            keep = np.float32 if defect in ("float32_update", "float32_moments") else dtype
            new_m.append(np.asarray(m, dtype=keep))
            new_v.append(np.asarray(v, dtype=keep))
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
            if defect in ("shared_cache_lr", "added_group_shares_cache"):
                # the authors' buffer: shared unless a constructor group has other betas
                params = list(params)
                for group in params:
                    if isinstance(group, dict) and tuple(group.get("betas", betas)) != tuple(betas):
                        group["buffer"] = [[None, None] for _ in range(10)]
                defaults["buffer"] = [[None, None] for _ in range(10)]
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
                group["group_step"] = group.get("group_step", 0) + 1
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
                    if defect == "step_per_group":
                        t = group["group_step"]
                    param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                    if torch.is_complex(p) and defect == "complex_real_only":
                        if "real" not in state:
                            state["real"] = (torch.zeros_like(p.real), torch.zeros_like(p.real))
                        param, grad = p.real.clone(), grad.real
                        m, v = state["real"]
                    elif torch.is_complex(p) and defect != "complex_as_modulus":
                        param, grad = torch.view_as_real(p), torch.view_as_real(grad)
                        m, v = torch.view_as_real(m), torch.view_as_real(v)
                    if group["maximize"]:
                        if defect == "maximize_in_place":
                            grad = grad.neg_()
                        else:
                            grad = -grad
                    if wd and not group["decoupled_weight_decay"] and defect != "l2_dropped":
                        grad = grad.add_(param, alpha=wd) if defect == "l2_in_place" else grad + wd * param
                    rectified, r, bc1, bc2 = scalars(t, b1, b2, 4.0, ">")
                    if defect in ("shared_cache_lr", "added_group_shares_cache"):
                        slot = group["buffer"][t % 10]
                        if slot[0] == t:
                            rectified, r, bc1, bc2, cached_lr = slot[1]
                            if defect == "shared_cache_lr":
                                lr = cached_lr
                        else:
                            slot[0], slot[1] = t, (rectified, r, bc1, bc2, lr)
                    if defect == "complex_as_modulus" and torch.is_complex(p):
                        v.mul_(b2).add_((grad * grad.conj()).real * (1.0 - b2))
                    else:
                        v.mul_(b2).add_(grad * grad, alpha=1.0 - b2)
                    if defect == "moment_in_grad":
                        m.mul_(b1).add_(grad.mul_(1.0 - b1))
                    else:
                        m.mul_(b1).add_(grad, alpha=1.0 - b1)
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
                    if defect == "complex_real_only" and torch.is_complex(p):
                        p.copy_(param)  # a real tensor copied into a complex one: imaginary part 0
                    if defect == "upcasts_low_precision" and p.dtype in (torch.float16, torch.bfloat16):
                        p.data = p.data.float()
                        state["exp_avg"] = state["exp_avg"].float()
                        state["exp_avg_sq"] = state["exp_avg_sq"].float()

    MiniRAdam.__name__ = f"MiniRAdam[{defect}]"
    MiniRAdam.__qualname__ = MiniRAdam.__name__
    return MiniRAdam
