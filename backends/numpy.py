"""Fused, in-place RAdam on NumPy arrays: one parallel pass over memory per dtype group.

:func:`step_` performs the same math as :func:`radam_ref.step` (Algorithm 2 of
Liu et al. 2020; every option of :class:`radam_ref.RAdamConfig`), but writes
the parameters and the state in place, reading p, g, m, v and writing p, m, v
once each: 28 bytes per float32 parameter, the memory floor of the step.

How
---
The step scalars (r_t, 1 − β₁ᵗ, 1 − β₂ᵗ, …) come from ``config.schedule(t)``,
exact in float64, via :func:`._element.element_constants`; the kernel only does
elementwise work.  The element function ``_element`` in ``_numba_kernels.py``
mirrors ``radam_element`` of ``radam_element.cuh`` (the CUDA kernels') line by
line (the torch backend's CPU path runs the same kernel), and performs the spec's
operations in the spec's order, each rounded to the
compute dtype, without FMA contraction: on IEEE hardware the results equal
:func:`radam_ref.step`'s bit for bit (the tests allow 4 ulp per step).

All tensors of one dtype go through one ``numba`` ``prange`` loop over chunks
of 64 Ki elements (a multi-tensor launch: an address table instead of one call
per array), on every core, with no allocation per step.  Groups smaller than
``PARALLEL_MIN_ELEMENTS`` (128 Ki) run the same chunk loop on the calling thread.

Why numba — measured in one interleaved run on the 2-core development machine
(busy with other jobs at the time: its copy bandwidth was 10.8 GB/s instead of
the ~50 GB/s it shows idle), one float32 array of 16 Mi elements, rectified
step, median of 15 steps.  The ratios within the run are the robust part:

==========================================  ============  ========  =====================
tool                                        G params/s    × numba   passes over memory
==========================================  ============  ========  =====================
numba ``prange``, fused, address table      0.54          1         1 (28 B/param)
chunked in-place ufuncs, 2 threads          0.27          0.49      1, ~12 over L2 blocks
plain NumPy ``out=`` ufuncs, 1 thread       0.15          0.27      ~10
numexpr, 3 expressions (m, v, then θ)       0.09          0.16      3 (40 B/param)
==========================================  ============  ========  =====================

On the idle machine the same numba kernel ran at 1.1–1.4 G params/s.  Only
numba gives one pass over memory with every operation in the spec's order;
numexpr writes one output per pass.  Two numba details matter:
``error_model="numpy"`` (otherwise every division tests for zero and the loop is not
vectorised) and raw pointers from the address table (array structs reloaded
after each store also block vectorisation).  Run ``radam-ref bench`` for the
figures of your machine.

Dtypes
------
Storage dtype = the parameter's dtype (float16, float32 or float64).  Compute
and state dtype: float32 for float16 parameters (θ is widened exactly, updated
in float32 and rounded once back to float16; m and v are float32), the
parameter dtype otherwise.  The float16 step therefore equals the spec run on
float32 copies of θ and g with float32 state, followed by one rounding of θ.
bfloat16 is not a NumPy dtype; use the CuPy or torch backends for it.

Layouts
-------
Parameters and gradients may be non-contiguous views (slices, transposes): they
are updated in place through their strides, more slowly (a scalar loop per row
instead of a vectorised one).  The state is always C-contiguous.  Parameters
must be writeable, aligned and must not overlap one another or the state, and no
gradient may share memory with a parameter or the state (the kernel writes θ, m, v
in place while it reads g; pass a copy).  A reused plan re-checks replaced
gradients against the written byte spans in one vectorised search.

Validation and caching
----------------------
The first step validates with :mod:`radam_ref._validation` (structure, shapes,
dtypes) plus the in-place checks, then keeps the kernel tables in the state
(with references to the parameter arrays, as torch optimizers keep theirs).
Later steps revalidate only what changed (see ``_numpy_plan.py``); a bad call
raises ``TypeError``/``ValueError`` naming the argument before anything is
written.  ``nonfinite="raise"`` scans the gradients first (one extra read).

Concurrency: steps are serialised by a lock (numba's default threading layer
is not re-entrant).
"""

from __future__ import annotations

from radam_ref._extras import require

require("radam_ref.backends.numpy", "numpy")  # one line naming the extra, not a bare ModuleNotFoundError

import dataclasses
import functools
import numbers
import threading
from typing import Any

import numpy as np

from radam_ref import NonFiniteGradientError, RAdamConfig, RAdamState
from radam_ref._tree import leaf_paths, unflatten
from radam_ref._validation import check_count, check_structures

from . import _numba_kernels as kernels
from ._element import cached_element_constants
from ._numpy_plan import Plan, build_plan, compute_dtype, SUPPORTED_DTYPES

__all__ = ["State", "init", "step_", "from_spec_state", "to_spec_state", "compute_dtype",
           "SUPPORTED_DTYPES"]

_LAUNCH_LOCK = kernels.LAUNCH_LOCK

#: Dtype groups with fewer parameters run on the calling thread: waking the other
#: cores costs more than it saves (and idle worker threads would spin).
PARALLEL_MIN_ELEMENTS = 1 << 17


@dataclasses.dataclass(eq=False)
class State:
    """State of the in-place NumPy step (mutable: :func:`step_` updates it).

    Attributes:
        count: steps taken so far (Python int); the next step is t = count + 1.
        m: first moments, one C-contiguous array per parameter leaf (flattened
            order), dtype ``compute_dtype(param.dtype)``.
        v: second moments, likewise.
        treedef: the structure of the params it was built for.
    """

    count: int
    m: list
    v: list
    treedef: Any = dataclasses.field(repr=False)
    _plan: Plan | None = dataclasses.field(default=None, repr=False)

    def __getstate__(self):
        # The cached plan holds addresses and weak references: never pickled.
        return {"count": self.count, "m": self.m, "v": self.v, "treedef": self.treedef}

    def __setstate__(self, values):
        self.__dict__.update(values, _plan=None)


def init(params: Any) -> State:
    """Zero state (Alg. 2, line 1) for ``params`` (one array or a list/tuple/dict tree)."""
    treedef, (leaves,) = check_structures([("params", params)])
    for path, p in zip(leaf_paths(treedef, "params"), leaves):
        if not isinstance(p, np.ndarray) or p.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{path} must be a numpy.ndarray of dtype float16, float32 or float64, got "
                f"{type(p).__qualname__}(dtype={getattr(p, 'dtype', None)})"
            )
    m = [np.zeros(p.shape, dtype=compute_dtype(p.dtype)) for p in leaves]
    v = [np.zeros(p.shape, dtype=compute_dtype(p.dtype)) for p in leaves]
    return State(count=0, m=m, v=v, treedef=treedef)


def step_(params: Any, grads: Any, state: State, config: RAdamConfig | None = None) -> None:
    """One RAdam step, in place: writes ``params``, ``state.m``, ``state.v`` and
    advances ``state.count``.

    Same math as :func:`radam_ref.step` (see its module docstring for the
    equations and Algorithm 2 line numbers); ``config`` defaults to the paper
    profile.  ``params`` and ``grads`` have the same structure, shapes and dtype.

    Raises:
        TypeError / ValueError: naming the bad argument, before anything is written.
        NonFiniteGradientError: with ``config.nonfinite == "raise"``, when a
            gradient holds NaN or ±inf (nothing is written).
    """
    if config is None:
        config = RAdamConfig()
    if not isinstance(config, RAdamConfig):
        raise TypeError(f"config must be a RAdamConfig, got {config!r}")
    if not isinstance(state, State):
        raise TypeError(
            f"state must be a radam_ref.backends.numpy.State (from init or from_spec_state), "
            f"got {type(state)!r}"
        )
    check_count(state.count)
    if not isinstance(state.count, numbers.Integral):
        raise TypeError(f"state.count must be a Python integer, got {state.count!r}")
    treedef, (p_leaves, g_leaves) = check_structures([("params", params), ("grads", grads)])
    if treedef != state.treedef:
        raise ValueError("params has a different structure from the one the state was built "
                         f"for: {leaf_paths(treedef, 'params')[:4]}... vs "
                         f"{leaf_paths(state.treedef, 'params')[:4]}...")
    if len(state.m) != len(p_leaves) or len(state.v) != len(p_leaves):
        raise ValueError(f"state holds {len(state.m)}/{len(state.v)} moments for "
                         f"{len(p_leaves)} parameters")
    plan = state._plan
    if plan is None or not plan.reusable(p_leaves, g_leaves, state.m, state.v):
        plan = build_plan(treedef, p_leaves, g_leaves, state.m, state.v)
        state._plan = plan
    t = int(state.count) + 1
    if config.nonfinite == "raise":
        _check_finite(plan, treedef, t)
    flag_array, scalars = _constants(config, t)
    with _LAUNCH_LOCK:
        for group in plan.groups:
            group.scalars[:] = scalars  # one rounding of each float64 to the compute dtype
            parallel = group.elements >= PARALLEL_MIN_ELEMENTS
            (kernels.step_kernel if parallel else kernels.step_kernel_serial)(
                group.addresses, group.chunk_tensor, group.chunk_start, group.chunk_end,
                group.row_length, group.ndims, group.shapes, group.p_strides,
                group.g_strides, flag_array, group.scalars, group.p_proto, group.m_proto)
    state.count = t


@functools.lru_cache(maxsize=256)
def _cached_constants(config: RAdamConfig, t: int):
    flags, scalars = cached_element_constants(config, t)
    flag_array = np.array((*flags.as_ints(), kernels.ARITH_SPEC), dtype=np.int64)
    values = np.zeros(kernels.N_SCALARS, dtype=np.float64)
    values[:len(scalars)] = scalars
    flag_array.flags.writeable = False
    values.flags.writeable = False
    return flag_array, values


def _constants(config: RAdamConfig, t: int):
    """The kernel's flag and float64 scalar arrays for step ``t`` (cached per (config, t))."""
    try:
        return _cached_constants(config, t)
    except TypeError:  # an unhashable config field: compute without the cache
        return _cached_constants.__wrapped__(config, t)


def _check_finite(plan: Plan, treedef, t: int) -> None:
    paths = leaf_paths(treedef, "grads")
    bad = []
    with _LAUNCH_LOCK:
        for group in plan.groups:
            row = kernels.first_nonfinite_tensor(
                group.addresses, group.chunk_tensor, group.chunk_start, group.chunk_end,
                group.row_length, group.ndims, group.shapes, group.g_strides, group.p_proto,
                group.scalars)
            if row >= 0:
                bad.append(int(group.leaves[row]))
    if bad:
        raise NonFiniteGradientError(
            f"{paths[min(bad)]} has non-finite elements at step {t}; nothing was updated "
            "(config.nonfinite='raise')"
        )


def from_spec_state(spec_state: RAdamState, params: Any) -> State:
    """A backend state holding copies of a :class:`radam_ref.RAdamState` (e.g. from
    :func:`radam_ref.step` or :func:`to_spec_state`) for ``params``.

    Moments may have the parameter dtype or the compute dtype; they are converted
    exactly (float16 → float32 or unchanged), never rounded.
    """
    if not isinstance(spec_state, RAdamState):
        raise TypeError(f"spec_state must be a radam_ref.RAdamState, got {type(spec_state)!r}")
    check_count(spec_state.count)
    if not isinstance(spec_state.count, numbers.Integral):
        raise TypeError(f"spec_state.count must be an integer, got {spec_state.count!r}")
    treedef, (p_leaves, m_leaves, v_leaves) = check_structures(
        [("params", params), ("spec_state.m", spec_state.m), ("spec_state.v", spec_state.v)]
    )
    moments = {"m": [], "v": []}
    for name, leaves in (("m", m_leaves), ("v", v_leaves)):
        paths = leaf_paths(treedef, f"spec_state.{name}")
        for path, p, x in zip(paths, p_leaves, leaves):
            x = np.asarray(x)
            target = compute_dtype(p.dtype)
            if x.dtype not in (p.dtype, target) or x.shape != p.shape:
                raise ValueError(
                    f"{path} has shape {x.shape} and dtype {x.dtype}; expected shape "
                    f"{p.shape} and dtype {p.dtype} or {target}"
                )
            moments[name].append(np.array(x, dtype=target, order="C", copy=True))
    return State(count=int(spec_state.count), m=moments["m"], v=moments["v"], treedef=treedef)


def to_spec_state(state: State) -> RAdamState:
    """The state as a :class:`radam_ref.RAdamState` (copies, in the params' structure).

    Moments keep the compute dtype, so ``from_spec_state(to_spec_state(s), params)``
    is bit-identical to ``s``.  For float32/float64 parameters the result is exactly
    what :func:`radam_ref.step` would carry.
    """
    if not isinstance(state, State):
        raise TypeError(f"state must be a radam_ref.backends.numpy.State, got {type(state)!r}")
    return RAdamState(
        count=int(state.count),
        m=unflatten(state.treedef, [x.copy() for x in state.m]),
        v=unflatten(state.treedef, [x.copy() for x in state.v]),
    )
