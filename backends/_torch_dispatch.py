"""Path selection for one torch-backend step over lists of tensors.

* ``torch.compile`` tracing: :func:`apply_traced` — exact host scalars passed in as
  0-d tensors (one small non-compiled call), then the whole update as one graph.
* ``capturable``: :func:`apply_device_scalars` — scalars looked up on the device
  from the step-counter tensor (``_torch_scalars``), no host synchronisation.
* ``differentiable`` or ``foreach=False``: the single-tensor path.
* otherwise the fused CPU kernel for the tensors it can take (``fused`` not False)
  and the foreach path, grouped by device, dtype and step, for the rest.

State step counters are 0-d tensors holding the number of steps already taken;
every path advances them by one.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import torch

from radam_ref import NonFiniteGradientError, RAdamConfig

from . import _torch_fused_cpu as _fused
from ._torch_checks import check_buffers, check_disjoint
from ._torch_config import group_config, lr_value, resolve_op_order
from ._torch_foreach import update_foreach
from ._torch_scalars import DeviceScalars, device_scalars, host_scalars, schedule_table
from ._torch_single import update_single

__all__ = ["apply", "apply_traced", "check_finite", "is_dtensor", "steps_taken",
           "traced_group_config"]

is_dtensor = _fused.is_dtensor


def check_finite(grads, where: Callable[[int], str], t_of) -> None:
    """Raise :class:`radam_ref.NonFiniteGradientError` naming the first gradient that holds
    NaN or ±inf.  One reduction per (device, dtype) group, not one per tensor."""
    grads = list(grads)
    if not grads:
        return
    groups: dict = {}
    for index, g in enumerate(grads):
        if is_dtensor(g):
            g = _fused.local_tensor(g)
        groups.setdefault((g.device, g.dtype), ([], []))
        groups[(g.device, g.dtype)][0].append(index)
        if g.numel():  # an empty gradient is finite
            groups[(g.device, g.dtype)][1].append(g)
        else:
            groups[(g.device, g.dtype)][0].pop()
    bad = []
    for indices, tensors in groups.values():
        if not tensors:
            continue
        if tensors[0].is_complex():
            tensors = [torch.view_as_real(x) for x in tensors]
        # The max-norm is NaN or inf exactly when some element is (0 for empty tensors).
        finite = torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf"))))
        if not bool(finite.all()):
            bad.extend(i for i, ok in zip(indices, finite.tolist()) if not ok)
    if bad:
        index = min(bad)
        raise NonFiniteGradientError(
            f"{where(index)} has non-finite elements at step {t_of(index)}; "
            "nothing was updated (nonfinite='raise')"
        )


def apply(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr, foreach, fused,
           capturable, differentiable, op_order, labels=None, checked=False) -> None:
    """One eager step over the lists (see the module docstring for the path taken).

    Every parameter's gradient and state are checked (:func:`check_buffers`) before
    anything is written, unless the caller did (``checked``).  ``labels`` name the
    parameters in errors (default ``params[i]``).
    """
    if not params:
        return
    if labels is None:
        labels = [f"params[{i}]" for i in range(len(params))]
    if not checked:
        for label, p, g, m, v, step in zip(labels, params, grads, exp_avgs, exp_avg_sqs,
                                           state_steps):
            check_buffers(label, p, g, m, v, step)
    if capturable:
        _apply_device_scalars(params, grads, exp_avgs, exp_avg_sqs, state_steps, config,
                              lr=lr, op_order=op_order)
        return
    scalars_for = functools.partial(host_scalars, config)
    if not differentiable:
        _check_multi_tensor(labels, params, exp_avgs, exp_avg_sqs, foreach, fused, grads)
    if differentiable or (foreach is False and not fused):
        _apply_single(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, lr=lr,
                      op_order=op_order, scalars_for=scalars_for)
        return
    lr_float = lr_value(lr)
    rest = ([], [], [], [], [])
    fused_rows = ([], [], [], [], [], [])
    use_fused = fused is not False and foreach is not True and _fused.AVAILABLE
    for label, *quintuple in zip(labels, params, grads, exp_avgs, exp_avg_sqs, state_steps):
        p, g, m, v, step = quintuple
        local = _fused._local(p, g, m, v)
        reason = ("its tensors are DTensors placed differently" if local is None
                  else _fused.layout_error(*local))
        if reason is None and not _fused._step_ok(step):
            reason = "its step counter is not a float64 CPU tensor"
        if use_fused and reason is None:
            for bucket, x in zip(fused_rows, (*quintuple, label)):
                bucket.append(x)
        else:
            if fused:
                raise RuntimeError(
                    "fused=True supports CPU tensors of dtype float16, bfloat16, float32, "
                    "float64 (or complex) that are contiguous, with state of a supported "
                    f"dtype and gradients of their dtype; {label} cannot: {reason} "
                    f"(a {p.dtype} tensor on {p.device}, contiguous: {p.is_contiguous()}, "
                    f"state dtype: {m.dtype})"
                )
            for bucket, x in zip(rest, quintuple):
                bucket.append(x)
    if fused_rows[0]:
        _fused.update_fused(*fused_rows[:5], config, lr=lr_float, op_order=op_order,
                            labels=fused_rows[5])
    if rest[0]:
        _apply_foreach(*rest, config, lr=lr_float, op_order=op_order, scalars_for=scalars_for)


def _check_multi_tensor(labels, params, exp_avgs, exp_avg_sqs, foreach, fused,
                        grads=None) -> None:
    """The overlap check of the multi-tensor paths (the single-tensor path is sequential,
    the reference, and needs none; the fused kernel checks its own tables)."""
    if not (foreach is False and not fused):
        check_disjoint(labels, params, exp_avgs, exp_avg_sqs, grads)


def _apply_single(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr, op_order,
                  scalars_for) -> None:
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
        t = steps_taken(step) + 1
        update_single(p, g, m, v, scalars_for(t), config, lr=lr, op_order=op_order)
        step += 1


def steps_taken(step: torch.Tensor) -> int:
    """The count held by a state step tensor (steps already taken), checked."""
    value = float(step.item())
    if not (value.is_integer() and value >= 0):
        raise ValueError(f"state step must be a non-negative integer count, got {value!r}")
    return int(value)


def _apply_foreach(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr, op_order,
                   scalars_for) -> None:
    """Group by (device, dtype, state dtype, step) and run the foreach update per group."""
    buckets: dict = {}
    numbers = [steps_taken(step) + 1 for step in state_steps]
    single = ([], [], [], [], [])
    for p, g, m, v, t, step in zip(params, grads, exp_avgs, exp_avg_sqs, numbers, state_steps):
        if g.dtype != p.dtype:  # a narrower gradient: exactly as the single-tensor path
            for bucket, x in zip(single, (p, g, m, v, step)):
                bucket.append(x)
            continue
        key = (p.device, p.dtype, m.dtype, t, is_dtensor(p))
        buckets.setdefault(key, ([], [], [], []))
        for bucket, x in zip(buckets[key], (p, g, m, v)):
            bucket.append(x)
    for (_, _, _, t, _), lists in buckets.items():
        update_foreach(*lists, scalars_for(t), config, lr=lr, op_order=op_order)
    _advance([s for s in state_steps if not any(s is x for x in single[4])])
    if single[0]:
        _apply_single(*single, config, lr=lr, op_order=op_order, scalars_for=scalars_for)


def _advance(state_steps: list[torch.Tensor]) -> None:
    for step in state_steps:
        step += 1


@torch.compiler.disable
def _traced_step_scalars(config: RAdamConfig, grads, state_steps) -> list[DeviceScalars]:
    """Host side of a compiled step: exact step scalars as 0-d float64 tensors.

    ``torch.compile`` runs this between graphs (one graph break before the update,
    next to the two that torch.optim places around every step), so the scalars are
    the spec's exact values for every t while the update itself is one graph.
    With ``nonfinite="raise"`` the gradients are checked here, before any write.
    """
    taken = [steps_taken(step) for step in state_steps]
    if config.nonfinite == "raise":
        check_finite(grads, lambda i: f"grads[{i}]", lambda i: taken[i] + 1)
    made: dict = {}
    out = []
    for g, t in zip(grads, taken):
        key = (t, g.device)
        if key not in made:
            s = host_scalars(config, t + 1)
            values = torch.tensor(
                [s.bias_correction1, s.bias_correction1_next, s.bias_correction2,
                 s.bias_correction2 ** 0.5, s.r_t],
                dtype=torch.float64, device=g.device)
            bc1, bc1_next, bc2, sqrt_bc2, r_t = values.unbind()
            made[key] = DeviceScalars(
                bias_correction1=bc1, bias_correction1_next=bc1_next, bias_correction2=bc2,
                sqrt_bias_correction2=sqrt_bc2, r_t=r_t,
                rectified=torch.tensor(s.rectified, device=g.device))
        out.append(made[key])
    return out


def apply_traced(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr,
                 op_order) -> None:
    """The update as traced by ``torch.compile``: tensor scalars, no host reads."""
    scalars = _traced_step_scalars(config, grads, state_steps)
    for p, g, m, v, s in zip(params, grads, exp_avgs, exp_avg_sqs, scalars):
        update_single(p, g, m, v, s, config, lr=lr, op_order=op_order)
    for step in state_steps:
        step += 1


def _apply_device_scalars(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr,
                          op_order) -> None:
    """Per-tensor update with step scalars looked up on the device (see ``_torch_scalars``)."""
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
        step += 1
        table = schedule_table(config, p.device)
        update_single(p, g, m, v, device_scalars(config, table, step), config,
                      lr=lr, op_order=op_order)



@torch.compiler.disable
def traced_group_config(group: dict) -> tuple[RAdamConfig, str]:
    """Config and arithmetic order of a group, computed on the host under ``torch.compile``."""
    config = group_config(group)
    return config, resolve_op_order(config, group["op_order"])
