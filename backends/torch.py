r"""RAdam for PyTorch: a drop-in ``torch.optim.Optimizer`` that follows the spec.

:class:`RAdam` replaces ``torch.optim.RAdam``; :func:`radam` is the functional form
for custom loops.  The math is :func:`radam_ref.step` (Liu et al. 2020,
Algorithm 2), with every option of :class:`radam_ref.RAdamConfig`; the default is
the ``paper`` profile.  For step t of each parameter:

.. math::

    g_t &\leftarrow -g_t \ \text{(maximize)}, \quad
        g_t \leftarrow g_t + \lambda\theta_{t-1} \ \text{(L2)} \\
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2
        && \text{(Alg. 2, lines 5–6)} \\
    \hat m_t &= m_t / (1-\beta_1^t) && \text{(line 7)} \\
    \theta &\leftarrow \theta - (\alpha\lambda)\theta
        \ \text{or}\ \theta (1 - \alpha\lambda)
        \ \text{(decoupled decay, by decay\_form)} && \text{(§5)} \\
    \theta_t &= \theta - \alpha\, r_t\, \hat m_t\,
        \frac{\sqrt{1-\beta_2^t}}{\sqrt{v_t} + \epsilon}
        \ \text{ if } \rho_t > \text{threshold}
        && \text{(lines 8–12)} \\
    \theta_t &= \theta - \alpha \hat m_t \ \text{ otherwise}
        && \text{(line 14)}

with ρ_t, r_t and the bias corrections from :meth:`radam_ref.RAdamConfig.schedule`
(exact float64, computed on the host).  The options (threshold and comparison,
ε placement, eps_root, weight-decay mode, what happens before rectification,
Nesterov, maximize, non-finite policy) are documented on
:class:`radam_ref.RAdamConfig`; ``profile`` selects a published implementation's
choice of all of them, keywords override single axes.

Execution paths (same math; see ``docs/torch-backend.md`` for measurements):

* **fused** (CPU default when numba is installed): the project's one CPU kernel
  (shared with the NumPy backend) on zero-copy NumPy views, reading p, g, m, v once;
  float16/bfloat16 in one float32 pass.  In ``op_order="spec"`` its moments are
  bit-identical to the single-tensor path's and θ agrees within 1 ulp of θ plus
  2 ulp of the update per step (torch's float32 CPU ``sqrt`` is not always
  correctly rounded; the kernel's is).
* **foreach** (CUDA default, and CPU without numba): ``torch._foreach_*``
  operations with the step scalars folded in; within a few ulp.
* **single-tensor** (``foreach=False``): plain per-tensor operations, the readable
  ground truth; bit-identical to :func:`radam_ref.step` on torch tensors.
* **capturable** (``capturable=True``): per-tensor operations whose step scalars
  are looked up on the device from the step-counter tensor in a table of exact
  host-computed rows (no host synchronisation: the step can be captured in a
  CUDA graph).
* **compiled** (automatically under ``torch.compile``): the host computes the
  exact scalars in one small non-compiled call and passes them in as 0-d
  float64 tensors; the whole update is one graph.

``profile="torch"`` (and ``"torch_decoupled"``) reproduce ``torch.optim.RAdam``:
with ``foreach=False`` every state tensor is bit-identical to torch's and θ differs
only through torch's float64 rounding of its own step scalars.
"""

from __future__ import annotations

from radam_ref._extras import require

require("radam_ref.backends.torch", "torch")  # one line naming the extra, not a bare ModuleNotFoundError

import functools
import math
from itertools import chain
from typing import Any, Callable

import torch
from torch.optim.optimizer import Optimizer, _use_grad_for_differentiable

from radam_ref import RAdamConfig

from . import _torch_fused_cpu as _fused
from ._torch_config import (
    AXES,
    OP_ORDERS,
    check_group_options,
    group_config,
    lr_value,
    resolve_op_order,
)
from ._torch_checks import TensorMismatchError, check_buffers
from ._torch_dispatch import apply, apply_traced, check_finite, traced_group_config
from ._torch_scalars import host_scalars
from ._torch_state import tracked

__all__ = ["RAdam", "radam", "AXES", "OP_ORDERS", "group_config", "TensorMismatchError"]


def radam(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    config: RAdamConfig | None = None,
    *,
    lr: float | torch.Tensor | None = None,
    foreach: bool | None = None,
    fused: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
    op_order: str | None = None,
) -> None:
    """One RAdam step over lists of tensors, in place (the functional form of :class:`RAdam`).

    Args:
        params: θ_{t−1}, updated in place.
        grads: g_t (not modified).
        exp_avgs: m_{t−1} → m_t, in place; the state dtype may be wider than the
            parameter's (the arithmetic then runs in the state dtype).
        exp_avg_sqs: v_{t−1} → v_t, in place.
        state_steps: 0-d tensors holding the number of steps already taken by each
            parameter; each is advanced by one.  The step number used is the new value.
        config: the :class:`radam_ref.RAdamConfig` (default: the ``paper`` profile).
        lr: overrides ``config.lr``; may be a tensor (e.g. requiring grad).
        foreach, fused: path selection as for :class:`RAdam`.
        capturable: look the step scalars up on the device (no host synchronisation).
        differentiable: keep the step differentiable (single-tensor operations).
        op_order: ``"spec"`` or ``"torch"`` arithmetic (default: by profile).

    Raises:
        NonFiniteGradientError: with ``config.nonfinite == "raise"``, before anything
            is written.
    """
    if config is None:
        config = RAdamConfig()
    if not isinstance(config, RAdamConfig):
        raise TypeError(f"config must be a RAdamConfig, got {config!r}")
    lists = (params, grads, exp_avgs, exp_avg_sqs, state_steps)
    if len({len(x) for x in lists}) != 1:
        raise ValueError(
            "params, grads, exp_avgs, exp_avg_sqs and state_steps must have the same "
            f"length, got {[len(x) for x in lists]}"
        )
    op_order = resolve_op_order(config, op_order)
    if lr is None:
        lr = config.lr
    if torch.compiler.is_compiling():
        apply_traced(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, lr=lr,
                     op_order=op_order)
        return
    if config.nonfinite == "raise":
        check_finite(grads, lambda i: f"grads[{i}]", lambda i: int(state_steps[i].item()) + 1)
    apply(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, lr=lr, foreach=foreach,
          fused=fused, capturable=capturable, differentiable=differentiable, op_order=op_order)


# --------------------------------------------------------------------------- #
# The optimizer
# --------------------------------------------------------------------------- #

class RAdam(Optimizer):
    """RAdam (Liu et al., ICLR 2020) as a ``torch.optim.Optimizer``; see the module docstring.

    Args:
        params: parameters or parameter groups (dicts), as for any torch optimizer.
            A group may set any keyword below (``profile`` too).
        lr: α (default: the profile's, 1e-3).  A float or a 1-element tensor.
        betas: (β₁, β₂) (default: the profile's, (0.9, 0.999)).
        eps: ε (default: the profile's: 1e-8, or 1e-7 for ``tf_addons``).
        weight_decay: λ (default 0).
        decoupled_weight_decay: torch.optim.RAdam's switch: True means
            ``weight_decay_mode="decoupled"``, False ``"l2"``; None (default) keeps
            the profile's mode.
        profile: a name in :data:`radam_ref.PROFILES` (default ``"paper"``).
        threshold, comparison, eps_placement, eps_root, weight_decay_mode, decay_form,
        before_rectification, nesterov, maximize, nonfinite: override one axis of
            the profile (see :class:`radam_ref.RAdamConfig`); None keeps the profile's.
        op_order: ``"spec"`` or ``"torch"`` arithmetic; default ``"torch"`` for the
            torch profiles, ``"spec"`` otherwise.
        state_dtype: dtype of ``exp_avg``/``exp_avg_sq`` (e.g. ``torch.float32`` for
            bfloat16 parameters; the arithmetic then runs in it).  None: the
            parameter's dtype.
        foreach: False selects the single-tensor path; True the foreach path.
        fused: True demands the fused CPU kernel (error if a tensor cannot use it);
            False forbids it.  With both None (default): fused where possible,
            foreach elsewhere.
        capturable: step scalars from the device step counter (CUDA graphs).
        differentiable: autograd through the step (single-tensor path).

    Raises:
        ValueError, TypeError: for invalid hyperparameters, naming the value
            (e.g. ``Invalid beta parameter at index 0: 1.5``), before anything is built.
    """

    def __init__(
        self,
        params,
        lr: float | torch.Tensor | None = None,
        betas: tuple[float, float] | None = None,
        eps: float | None = None,
        weight_decay: float | None = None,
        decoupled_weight_decay: bool | None = None,
        *,
        profile: str = "paper",
        threshold: float | None = None,
        comparison: str | None = None,
        eps_placement: str | None = None,
        eps_root: float | None = None,
        weight_decay_mode: str | None = None,
        decay_form: str | None = None,
        before_rectification: str | None = None,
        nesterov: bool | None = None,
        maximize: bool | None = None,
        nonfinite: str | None = None,
        op_order: str | None = None,
        state_dtype: torch.dtype | None = None,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not isinstance(profile, str):
            raise TypeError(f"profile must be a string, got {profile!r}")
        base = RAdamConfig.from_profile(profile)
        if isinstance(lr, torch.Tensor):
            lr_value(lr)
        defaults = {
            "lr": base.lr if lr is None else lr,
            "betas": base.betas if betas is None else betas,
            "eps": base.eps if eps is None else eps,
            "weight_decay": base.weight_decay if weight_decay is None else weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "profile": profile,
            "threshold": threshold,
            "comparison": comparison,
            "eps_placement": eps_placement,
            "eps_root": eps_root,
            "weight_decay_mode": weight_decay_mode,
            "decay_form": decay_form,
            "before_rectification": before_rectification,
            "nesterov": nesterov,
            "maximize": maximize,
            "nonfinite": nonfinite,
            "op_order": op_order,
            "state_dtype": state_dtype,
            "foreach": foreach,
            "fused": fused,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        check_group_options({**defaults, "params": []})
        super().__init__(params, defaults)
        self.state = tracked(self.state)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (validated like the constructor; nothing is added on error)."""
        super().add_param_group(param_group)
        try:
            check_group_options(self.param_groups[-1])
        except Exception:
            self.param_groups.pop()
            raise

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = tracked(self.state)
        for group in self.param_groups:
            for name, value in self.defaults.items():
                group.setdefault(name, value)

    def _state_of(self, p: torch.Tensor, group: dict) -> dict:
        """The state of ``p``, created on first use.

        State per parameter (the keys of torch.optim.RAdam): ``step`` (0-d float64
        tensor on the CPU, or on the parameter's device when capturable: the number
        of steps taken, exact up to 2⁵³), ``exp_avg`` and ``exp_avg_sq`` (zeros of
        the parameter's shape, in ``state_dtype``).
        """
        state = self.state[p]
        if len(state) == 0:
            state["step"] = _new_step(0.0, p, group)
            dtype = _state_dtype_for(p, group["state_dtype"])
            state["exp_avg"] = torch.zeros_like(
                p, dtype=dtype, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(
                p, dtype=dtype, memory_format=torch.preserve_format)
        return state

    def _init_group(self, group, params, grads, exp_avgs, exp_avg_sqs, state_steps,
                    only=None, labels=None) -> bool:
        """Collect the parameters of ``group`` that have a gradient (or those in
        ``only``), creating their state lazily and checking each one's gradient and
        state (:func:`._torch_checks.check_buffers`).  Returns whether any is complex."""
        has_complex = False
        wanted = None if only is None else {id(p) for p in only}
        index = next((i for i, g in enumerate(self.param_groups) if g is group), 0)
        for position, p in enumerate(group["params"]):
            if wanted is not None and id(p) not in wanted:
                continue
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError("RAdam does not support sparse gradients")
            state = self._state_of(p, group)
            label = f"param_groups[{index}] parameter {position}"
            check_buffers(label, p, grad, state.get("exp_avg"), state.get("exp_avg_sq"),
                          state.get("step"))
            has_complex |= torch.is_complex(p)
            params.append(p)
            grads.append(grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            state_steps.append(state["step"])
            if labels is not None:
                labels.append(label)
        return has_complex

    def _uses_plan(self, group: dict) -> bool:
        """Whether ``group`` takes the fused CPU kernel through a cached :class:`FusedPlan`."""
        return (
            _fused.AVAILABLE
            and group["fused"] is not False
            and group["foreach"] is None
            and not group["capturable"]
            and not group["differentiable"]
            and not torch.compiler.is_compiling()
        )

    def _plan(self, index: int, group: dict):
        plans = self.__dict__.setdefault("_fused_plans", {})
        plan = plans.get(index)
        if plan is None or not plan.matches(group["params"], self.state):
            plan = plans[index] = _fused.FusedPlan(group["params"], self.state, index)
        return plan

    @_use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None):
        """Perform one optimization step.

        Args:
            closure: optional; re-evaluates the model and returns the loss.

        Every group's hyperparameters, every parameter's gradient and state (shape,
        dtype, device, layout, overlap) and, with ``nonfinite="raise"``, every
        gradient's values are checked before any parameter or state is written.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if torch.compiler.is_compiling():
            self._traced_step()
            return loss
        configs = [group_config(group) for group in self.param_groups]
        orders = [resolve_op_order(c, g["op_order"]) for c, g in zip(configs, self.param_groups)]
        for index, (group, config) in enumerate(zip(self.param_groups, configs)):
            if config.nonfinite == "raise":
                self._check_finite(index, group)
        # Gather and check everything first (errors surface before any write) ...
        work = []
        for index, group in enumerate(self.param_groups):
            lists = ([], [], [], [], [], [])
            plan = self._plan(index, group) if self._uses_plan(group) else None
            if plan is not None and not plan.distinct:  # a parameter listed twice:
                self._init_group(group, *lists[:5], labels=lists[5])
                work.append(("twice", lists))           # two sequential single-tensor steps
            elif plan is not None:
                batches, others = plan.collect(
                    functools.partial(self._state_of, group=group))
                if others and group["fused"]:
                    p = others[0]
                    raise RuntimeError(
                        "fused=True supports contiguous float16/bfloat16/float32/float64 (or "
                        "complex) CPU tensors with state of a supported dtype and gradients "
                        f"of their dtype; param_groups[{index}] has a {p.dtype} tensor on "
                        f"{p.device} (contiguous: {p.is_contiguous()}) that it cannot take"
                    )
                _fused.prepare(batches)
                if others:
                    self._init_group(group, *lists[:5], only=others, labels=lists[5])
                work.append((batches, lists))
            else:
                self._init_group(group, *lists[:5], labels=lists[5])
                work.append((None, lists))
        for _, lists in work:  # every other path's step counters, before any write
            for label, step in zip(lists[5], lists[4]):
                if not group_uses_device_step(step):
                    _check_step(label, step)
        # ... then update.
        for group, config, op_order, (batches, lists) in zip(
                self.param_groups, configs, orders, work):
            if batches == "twice":
                foreach, fused = False, False
            elif batches is not None:
                _fused.launch_plan(batches, config, lr=lr_value(group["lr"]), op_order=op_order)
                if not lists[0]:
                    continue
                foreach, fused = None, False
            else:
                foreach, fused = group["foreach"], group["fused"]
            apply(
                *lists[:5], config,
                lr=group["lr"],
                foreach=foreach,
                fused=fused,
                capturable=group["capturable"],
                differentiable=group["differentiable"],
                op_order=op_order,
                labels=lists[5],
                checked=True,
            )
        return loss

    def _traced_step(self) -> None:
        """The step as ``torch.compile`` traces it: host work (config, exact scalars,
        non-finite checks) in non-compiled calls, the update as one graph."""
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, state_steps = [], [], [], [], []
            self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, state_steps)
            config, op_order = traced_group_config(group)
            apply_traced(params, grads, exp_avgs, exp_avg_sqs, state_steps, config,
                         lr=group["lr"], op_order=op_order)

    def _check_finite(self, group_index: int, group: dict) -> None:
        positions = [i for i, p in enumerate(group["params"]) if p.grad is not None]
        params = [group["params"][i] for i in positions]

        def where(i: int) -> str:
            return f"param_groups[{group_index}] parameter {positions[i]} grad"

        def t_of(i: int) -> int:
            state = self.state.get(params[i])
            return int(state["step"].item()) + 1 if state else 1

        check_finite([p.grad for p in params], where, t_of)

    def state_dict(self) -> dict[str, Any]:
        """As ``torch.optim.Optimizer.state_dict``, with plain dicts (loadable with
        ``torch.load(weights_only=True)``)."""
        saved = super().state_dict()
        saved["state"] = {k: dict(v) if isinstance(v, dict) else v
                          for k, v in saved["state"].items()}
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load state saved by :meth:`state_dict` (or by ``torch.optim.RAdam``).

        Atomic: the group options, the number of groups and parameters, and every
        saved state (all of ``step``, ``exp_avg``, ``exp_avg_sq`` or none; step a
        non-negative integer count; ``exp_avg``/``exp_avg_sq`` dense tensors holding
        data (not on the meta device) of the parameter's shape, real or complex like
        it) are checked first;
        on any error (``ValueError``, ``TypeError`` or :class:`TensorMismatchError`,
        naming the parameter) the optimizer is unchanged.

        Unlike the base class, the loaded tensors never alias the dict's: ``step``
        becomes a fresh float64 tensor (exact integer counts up to 2⁵³), and the
        moments are copied in the group's ``state_dtype`` from the saved values
        (not from a copy first rounded to the parameter's dtype).
        """
        self._check_loadable(state_dict)  # everything is validated before anything is replaced
        saved_state = state_dict["state"]
        saved_ids = list(chain.from_iterable(g["params"] for g in state_dict["param_groups"]))
        super().load_state_dict(state_dict)
        params = list(chain.from_iterable(g["params"] for g in self.param_groups))
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        for saved_id, p in zip(saved_ids, params):
            if saved_id not in saved_state or p not in self.state:
                continue
            original, state, group = saved_state[saved_id], self.state[p], group_of[id(p)]
            if "step" in original:
                state["step"] = _new_step(float(original["step"]), p, group)
            dtype = _state_dtype_for(p, group["state_dtype"])
            for key in ("exp_avg", "exp_avg_sq"):
                if key in original and isinstance(original[key], torch.Tensor):
                    # the parameter's layout (a transposed or strided saved tensor
                    # would otherwise keep the fused path off for good)
                    value = torch.empty_like(p, dtype=dtype, memory_format=torch.preserve_format)
                    state[key] = value.copy_(original[key])


    def _check_loadable(self, state_dict: dict[str, Any]) -> None:
        """Raise before :meth:`load_state_dict` changes anything (see there)."""
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups' "
                            f"(from Optimizer.state_dict()), got {type(state_dict).__qualname__}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        saved_state = state_dict["state"]
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            check_group_options({**self.defaults, **saved, "params": []})
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"loaded param_groups[{index}] has {len(saved['params'])} parameters, "
                    f"the optimizer's has {len(group['params'])}")
            for position, (saved_id, p) in enumerate(zip(saved["params"], group["params"])):
                original = saved_state.get(saved_id)
                if original is None:
                    continue
                where = f"loaded state of param_groups[{index}] parameter {position}"
                present = [key for key in ("step", "exp_avg", "exp_avg_sq") if key in original]
                if present and len(present) != 3:
                    missing = sorted({"step", "exp_avg", "exp_avg_sq"} - set(present))
                    raise ValueError(f"{where}: has {present} but lacks {missing} (a state "
                                     "is all three or empty)")
                if "step" in original:
                    step = original["step"]
                    try:
                        value = float(step)
                    except (TypeError, ValueError, RuntimeError):
                        raise TypeError(f"{where}: step must be a number or a one-element "
                                        f"tensor, got {step!r}") from None
                    if not (math.isfinite(value) and value >= 0 and value.is_integer()):
                        raise ValueError(f"{where}: step must be a non-negative integer "
                                         f"count, got {value!r}")
                for key in ("exp_avg", "exp_avg_sq"):
                    if key not in original:
                        continue
                    x = original[key]
                    if not isinstance(x, torch.Tensor):
                        raise TypeError(f"{where}: {key!r} must be a tensor, got "
                                        f"{type(x).__qualname__}")
                    if x.shape != p.shape:
                        raise TensorMismatchError(
                            f"{where}: {key!r} has shape {tuple(x.shape)}, the parameter "
                            f"{tuple(p.shape)} (state saved from another model?)")
                    if x.device.type == "meta" or x.layout is not torch.strided:
                        raise TensorMismatchError(
                            f"{where}: {key!r} is a {x.layout} tensor on {x.device}; its "
                            "values are needed (a dense tensor holding data)")
                    if x.is_complex() != p.is_complex() or not (
                            x.is_floating_point() or x.is_complex()):
                        raise TensorMismatchError(
                            f"{where}: {key!r} has dtype {x.dtype}, which cannot hold the "
                            f"moments of a {p.dtype} parameter")


def group_uses_device_step(step: torch.Tensor) -> bool:
    """Whether ``step`` lives on an accelerator (capturable): not read on the host."""
    return step.device.type != "cpu"


def _check_step(label: str, step: torch.Tensor) -> None:
    value = float(step.item())
    if not (math.isfinite(value) and value >= 0 and value.is_integer()):
        raise ValueError(f"{label}: state step must be a non-negative integer count, "
                         f"got {value!r}")


def _new_step(value: float, p: torch.Tensor, group: dict) -> torch.Tensor:
    if not (math.isfinite(value) and value >= 0 and float(value).is_integer()):
        raise ValueError(f"state step must be a non-negative integer count, got {value!r}")
    device = p.device if group["capturable"] else "cpu"
    dtype = torch.float64
    if torch.device(device).type == "mps":  # no float64 there
        dtype = torch.float32
    return torch.tensor(value, dtype=dtype, device=device)


def _state_dtype_for(p: torch.Tensor, state_dtype: torch.dtype | None) -> torch.dtype:
    if state_dtype is None:
        return p.dtype
    if torch.is_complex(p):
        return {torch.float32: torch.complex64, torch.float64: torch.complex128}.get(
            state_dtype, p.dtype)
    return state_dtype

