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
from ._torch_config import group_config, lr_value, resolve_op_order
from ._torch_foreach import update_foreach
from ._torch_scalars import DeviceScalars, device_scalars, host_scalars, schedule_table
from ._torch_single import update_single

__all__ = ["apply", "apply_traced", "check_finite", "is_dtensor", "steps_taken",
           "traced_group_config"]

is_dtensor = _fused.is_dtensor


def _local_views(p, g, m, v):
    """Local shards of DTensors sharded alike (the step is elementwise), else None."""
    if not all(is_dtensor(x) for x in (p, g, m, v)):
        return None
    placements = p.placements
    if any(x.placements != placements for x in (g, m, v)):
        return None
    return tuple(_fused.local_tensor(x) for x in (p, g, m, v))


def check_finite(grads: Iterable[torch.Tensor], where: Callable[[int], str], t_of) -> None:
    """Raise :class:`radam_ref.NonFiniteGradientError` if a gradient holds NaN or inf."""
    for index, g in enumerate(grads):
        if not bool(torch.isfinite(g).all()):
            raise NonFiniteGradientError(
                f"{where(index)} has non-finite elements at step {t_of(index)}; "
                "nothing was updated (nonfinite='raise')"
            )


def apply(params, grads, exp_avgs, exp_avg_sqs, state_steps, config, *, lr, foreach, fused,
           capturable, differentiable, op_order) -> None:
    """One eager step over the lists (see the module docstring for the path taken)."""
    if not params:
        return
    if capturable:
        _apply_device_scalars(params, grads, exp_avgs, exp_avg_sqs, state_steps, config,
                              lr=lr, op_order=op_order)
        return
    scalars_for = functools.partial(host_scalars, config)
    if differentiable or (foreach is False and not fused):
        for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
            t = steps_taken(step) + 1
            update_single(p, g, m, v, scalars_for(t), config, lr=lr, op_order=op_order)
            step += 1
        return
    lr_float = lr_value(lr)
    rest = ([], [], [], [], [])
    fused_groups: dict = {}
    use_fused = fused is not False and foreach is not True and _fused.AVAILABLE
    for quintuple in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
        p, g, m, v, step = quintuple
        local = _local_views(p, g, m, v) if is_dtensor(p) else (p, g, m, v)
        if (use_fused and local is not None and _fused.eligible(*local)
                and step.dtype == torch.float64 and step.device.type == "cpu"):
            fused_groups.setdefault(local[0].dtype, ([], [], [], [], []))
            for bucket, x in zip(fused_groups[local[0].dtype], (*local, step)):
                bucket.append(x)
        else:
            if fused:
                raise RuntimeError(
                    "fused=True supports contiguous float32/float64 (or complex) CPU tensors "
                    f"whose state has their dtype; got a {p.dtype} tensor on {p.device} "
                    f"(contiguous: {p.is_contiguous()}, state dtype: {m.dtype})"
                )
            for bucket, x in zip(rest, quintuple):
                bucket.append(x)
    for bucket in fused_groups.values():
        _fused.update_fused(*bucket, config, lr=lr_float, op_order=op_order,
                            scalars_for=scalars_for)
    if rest[0]:
        _apply_foreach(*rest, config, lr=lr_float, op_order=op_order, scalars_for=scalars_for)


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
    for p, g, m, v, t in zip(params, grads, exp_avgs, exp_avg_sqs, numbers):
        key = (p.device, p.dtype, m.dtype, t, is_dtensor(p))
        buckets.setdefault(key, ([], [], [], []))
        for bucket, x in zip(buckets[key], (p, g, m, v)):
            bucket.append(x)
    for (_, _, _, t, _), lists in buckets.items():
        update_foreach(*lists, scalars_for(t), config, lr=lr, op_order=op_order)
    _advance(state_steps)


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
