"""Step scalars for the torch backend, taken from the spec's exact schedule.

Two forms, one source (:meth:`radam_ref.RAdamConfig.schedule`, computed at 60
digits and rounded once to float64):

:class:`HostScalars`
    Python floats for one step ``t`` of one config.  Used by every eager path:
    the kernels receive them as arguments, so nothing about ρ_t, r_t or the bias
    corrections is ever computed in a tensor dtype.

:class:`DeviceScalars`
    The same values as 0-d float64 tensors, for code that must not read the host:
    under ``torch.compile`` they are made on the host from :class:`HostScalars`
    (one small non-compiled call per step) and enter the graph as inputs; with
    ``capturable=True`` (CUDA graphs) :func:`device_scalars` looks them up, by the
    step counter *tensor*, in a table of exact rows built on the host
    (:func:`schedule_table`, t = 1 … TABLE_STEPS) and beyond the table evaluates
    the spec's own array form :func:`radam_ref.schedule_array` in float64
    (cancellation-free, within a few ulp of the exact values; see its
    docstring).  The threshold crossing and the first TABLE_STEPS steps, where
    precision matters, are therefore exact, and no step is ever computed in
    float32.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from radam_ref import RAdamConfig, schedule_array

__all__ = [
    "HostScalars",
    "DeviceScalars",
    "TABLE_STEPS",
    "host_scalars",
    "schedule_table",
    "device_scalars",
]

#: Number of exact rows in a device schedule table (t = 1 … TABLE_STEPS).
TABLE_STEPS = 1024

# Columns of a schedule table row.
_BC1, _BC1_NEXT, _BC2, _SQRT_BC2, _R_T, _RECTIFIED = range(6)


@dataclasses.dataclass(frozen=True, slots=True)
class HostScalars:
    """Everything step-dependent that one update at step ``t`` needs (Python floats).

    Attributes:
        t: the step number (1-based) this update performs.
        bias_correction1: 1 − β₁ᵗ (Alg. 2, line 7).
        bias_correction1_next: 1 − β₁ᵗ⁺¹ (only used by ``nesterov``).
        bias_correction2: 1 − β₂ᵗ (line 10).
        rectified: ρ_t passes the threshold (lines 8–9).
        r_t: the rectification term (line 11); 0.0 when not rectified.
        moves: θ changes this step (rectified, or SGD momentum before rectification).
        decays: decoupled weight decay θ ← θ(1 − αλ) applies this step.
    """

    t: int
    bias_correction1: float
    bias_correction1_next: float
    bias_correction2: float
    rectified: bool
    r_t: float
    moves: bool
    decays: bool


def host_scalars(config: RAdamConfig, t: int) -> HostScalars:
    """The exact step scalars of ``config`` at step ``t`` (see the module docstring)."""
    sched = config.schedule(t)
    bc1_next = config.schedule(t + 1).bias_correction1 if config.nesterov else 1.0
    moves = sched.rectified or config.before_rectification == "sgd_momentum"
    mode = config.weight_decay_mode
    decays = config.weight_decay != 0.0 and (
        mode == "decoupled" or (mode == "decoupled_moving" and moves)
    )
    return HostScalars(
        t=t,
        bias_correction1=sched.bias_correction1,
        bias_correction1_next=bc1_next,
        bias_correction2=sched.bias_correction2,
        rectified=sched.rectified,
        r_t=sched.r_t if sched.rectified else 0.0,
        moves=moves,
        decays=decays,
    )


@dataclasses.dataclass(frozen=True)
class DeviceScalars:
    """The step scalars as 0-d float64 tensors on the parameters' device.

    Same meaning as :class:`HostScalars`; ``sqrt_bias_correction2`` is the host's
    ``(1 − β₂ᵗ) ** 0.5`` (so both paths round it identically), ``rectified`` is a
    0-d bool tensor and ``r_t`` is 0 where not rectified.  ``moves`` and
    ``decays`` follow from ``rectified`` and the config, so they are not stored.
    """

    bias_correction1: torch.Tensor
    bias_correction1_next: torch.Tensor
    bias_correction2: torch.Tensor
    sqrt_bias_correction2: torch.Tensor
    rectified: torch.Tensor
    r_t: torch.Tensor


@functools.lru_cache(maxsize=64)
def _table_rows(beta1: float, beta2: float, threshold: float, comparison: str, steps: int):
    """Host rows ``[bc1, bc1_next, bc2, bc2 ** 0.5, r_t (0 if not rectified), rectified]``
    for t = 1…steps."""
    config = RAdamConfig(betas=(beta1, beta2), threshold=threshold, comparison=comparison)
    scheds = [config.schedule(t) for t in range(1, steps + 2)]
    return [
        (
            s.bias_correction1,
            nxt.bias_correction1,
            s.bias_correction2,
            s.bias_correction2 ** 0.5,
            s.r_t if s.rectified else 0.0,
            1.0 if s.rectified else 0.0,
        )
        for s, nxt in zip(scheds[:-1], scheds[1:])
    ]


_TABLES: dict = {}


def schedule_table(config: RAdamConfig, device) -> torch.Tensor:
    """The exact schedule of ``config`` for t = 1…TABLE_STEPS as a float64 tensor
    of shape (TABLE_STEPS, 6) on ``device`` (built once per βs, threshold and device)."""
    return _schedule_table(config.beta1, config.beta2, config.threshold, config.comparison,
                           torch.device(device))


def _schedule_table(beta1: float, beta2: float, threshold: float, comparison: str,
                    device: torch.device) -> torch.Tensor:
    key = (beta1, beta2, threshold, comparison, TABLE_STEPS, device)
    table = _TABLES.get(key)
    if table is None:
        table = torch.tensor(_table_rows(*key[:5]), dtype=torch.float64, device=device)
        _TABLES[key] = table
    return table


def device_scalars(config: RAdamConfig, table: torch.Tensor, step: torch.Tensor) -> DeviceScalars:
    """Look up step ``step`` (a 0-d tensor holding t ≥ 1, already incremented) in
    ``table``; beyond the table use :func:`radam_ref.schedule_array` in float64.

    Pure tensor code without host synchronisation: it can be captured in a CUDA
    graph and traced by ``torch.compile`` without a graph break.
    """
    steps = table.shape[0]
    t = step.to(device=table.device, dtype=torch.float64)
    index = torch.clamp(t, 1.0, float(steps)).to(torch.int64) - 1
    row = table[index]
    in_table = t <= steps
    kwargs = dict(beta1=config.beta1, beta2=config.beta2,
                  threshold=config.threshold, comparison=config.comparison,
                  xp=_torch_namespace(), dtype=torch.float64)
    tail = schedule_array(t, **kwargs)
    bc1_next = schedule_array(t + 1.0, **kwargs).bias_correction1
    return DeviceScalars(
        bias_correction1=torch.where(in_table, row[_BC1], tail.bias_correction1),
        bias_correction1_next=torch.where(in_table, row[_BC1_NEXT], bc1_next),
        bias_correction2=torch.where(in_table, row[_BC2], tail.bias_correction2),
        sqrt_bias_correction2=torch.where(in_table, row[_SQRT_BC2],
                                          torch.sqrt(tail.bias_correction2)),
        rectified=torch.where(in_table, row[_RECTIFIED] != 0.0, tail.rectified),
        r_t=torch.where(in_table, row[_R_T], tail.r_t),
    )


class _HostConstantNamespace:
    """``array_api_compat.torch`` with Python scalars made as CPU 0-d tensors.

    A CUDA graph cannot capture a host-to-device copy, and ``schedule_array``
    makes its constants with ``xp.asarray(python_float, device=...)``.  torch
    passes a CPU 0-d tensor to a device kernel as an argument, so constants made on
    the CPU keep :func:`device_scalars` capturable (and change nothing on the CPU).
    """

    def __init__(self, xp) -> None:
        self._xp = xp

    def __getattr__(self, name):
        return getattr(self._xp, name)

    def asarray(self, obj, /, *, dtype=None, device=None, copy=None):
        if isinstance(obj, (bool, int, float)):
            return torch.tensor(obj, dtype=dtype)
        return self._xp.asarray(obj, dtype=dtype, device=device, copy=copy)


@functools.lru_cache(maxsize=1)
def _torch_namespace():
    import array_api_compat.torch as xp

    return _HostConstantNamespace(xp)
