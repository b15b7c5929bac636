"""Fused, in-place RAdam on CuPy arrays: one kernel launch per dtype group per step.

:func:`step_` performs the math of :func:`radam_ref.step` (Algorithm 2 of Liu
et al. 2020, every option of :class:`radam_ref.RAdamConfig`) on the GPU, in
place: each element's θ, g, m, v are read once and θ, m, v written once.

Kernels
-------
Every kernel is generated from one template (``radam_multi_tensor.cuh`` around
the element update ``radam_element.cuh``; see ``_cuda_source.py``), specialised
per storage dtype and *variant* — the step's flags: adaptive / momentum /
moments-only update, ε placement, eps_root, L2 or decoupled decay, Nesterov,
maximize — and named after it (``radam_f16_adaptive_l2``).  They are compiled
with NVRTC on first use and cached per (dtype, variant, device).

One launch updates every tensor of a dtype group: the host uploads one table of
(p, g, m, v addresses, size) per tensor and (tensor, first element) per chunk
of 16 Ki elements; blocks stride over the chunks.  The table is re-uploaded only
when an address changes.

The step scalars (r_t, 1 − β₁ᵗ, 1 − β₂ᵗ, …) are computed on the host in float64
by :func:`radam_ref.schedule` (:func:`._element.element_constants`) and passed
as kernel arguments, rounded once to the compute dtype.

Dtypes
------
Storage dtype = the parameter's: float16, bfloat16 (``ml_dtypes.bfloat16``
arrays, CuPy ≥ 14), float32 or float64.  Compute and state dtype: float32 for
float16 and bfloat16 (θ widened exactly, rounded once to nearest even on the
way back), the parameter dtype otherwise.  Kernels are built with
``--fmad=false`` and IEEE division and square root, so float32/float64 results
equal :func:`radam_ref.step` on the same device's arrays operation for
operation.

Layouts: parameters, gradients and state must be C-contiguous (a non-contiguous
view raises ``ValueError`` naming it; pass ``cupy.ascontiguousarray`` copies).

Without CuPy this module still imports; :func:`step_` and :func:`init` raise
``ImportError``.  Run ``make gpu-check`` on a machine with an NVIDIA GPU.
"""

from __future__ import annotations

from radam_ref._extras import require

# NumPy is needed to import this module; CuPy only to run a step (init/step_ raise
# ImportError without it), so the launch tables and sources are testable anywhere.
require("radam_ref.backends.cupy", "cupy", modules=("numpy",))

import dataclasses
import numbers
from typing import Any, Callable

import numpy as np

from radam_ref import NonFiniteGradientError, RAdamConfig, RAdamState
from radam_ref._tree import leaf_paths, unflatten
from radam_ref._validation import check_count, check_leaves, check_structures

from ._cuda_source import BLOCK_SIZE, COMPILE_OPTIONS, STORAGE, kernel_name, kernel_source
from ._element import ElementFlags, element_constants
from ._spans import first_overlap, reads_written

__all__ = ["State", "init", "step_", "from_spec_state", "to_spec_state", "compute_dtype_name",
           "available", "KernelCache", "build_table", "CHUNK_ELEMENTS"]

#: Elements per chunk (one block's work item).
CHUNK_ELEMENTS = 1 << 14
#: Blocks per SM of a launch (the grid strides over the chunks).
_BLOCKS_PER_SM = 8


def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(
            "radam_ref.backends.cupy needs CuPy and an NVIDIA GPU "
            "(pip install 'radam-ref[cupy]')"
        ) from exc
    return cupy


def available() -> bool:
    """True if CuPy imports and sees at least one CUDA device."""
    try:
        cupy = _cupy()
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device
        return False


def compute_dtype_name(storage: str) -> str:
    """Compute/state dtype for a storage dtype name: float32 for float16 and
    bfloat16, the storage dtype otherwise."""
    if storage not in STORAGE:
        raise TypeError(f"unsupported dtype {storage!r} (supported: {sorted(STORAGE)})")
    return "float64" if storage == "float64" else "float32"


def build_table(tensors: list[tuple[int, int, int, int, int]], chunk_elements: int) -> np.ndarray:
    """The kernel's int64 table: ``5·n`` entries (p, g, m, v address, size) per tensor,
    then ``2·c`` entries (tensor index, first element) per chunk.

    Every element of every tensor lies in exactly one chunk; empty tensors have none.
    """
    n = len(tensors)
    sizes = np.array([t[4] for t in tensors], dtype=np.int64)
    counts = -(-sizes // chunk_elements)
    tensor_of_chunk = np.repeat(np.arange(n, dtype=np.int64), counts)
    first_chunk = np.cumsum(counts) - counts
    ordinal = np.arange(tensor_of_chunk.size, dtype=np.int64) - np.repeat(first_chunk, counts)
    chunks = np.stack([tensor_of_chunk, ordinal * chunk_elements], axis=1)
    head = np.array(tensors, dtype=np.int64).reshape(n, 5)
    return np.concatenate([head.reshape(-1), chunks.reshape(-1)])


class KernelCache:
    """Compiled kernels by (storage dtype, variant, device id).

    ``compile(source, name, options)`` returns a callable kernel; the default
    compiles with CuPy's NVRTC (``cupy.RawModule``) on the current device.
    """

    def __init__(self, compile: Callable | None = None):
        self._compile = compile or _nvrtc_compile
        self._kernels: dict = {}

    def get(self, storage: str, flags: ElementFlags, device_id: int):
        key = (storage, flags.variant, device_id)
        kernel = self._kernels.get(key)
        if kernel is None:
            name = kernel_name(storage, flags)
            kernel = self._compile(kernel_source([(storage, flags)]), name, COMPILE_OPTIONS)
            self._kernels[key] = kernel
        return kernel

    def keys(self):
        return list(self._kernels)


def _nvrtc_compile(source: str, name: str, options: tuple):
    cupy = _cupy()
    module = cupy.RawModule(code=source, options=options, backend="nvrtc")
    return module.get_function(name)


_KERNELS = KernelCache()
_SM_COUNTS: dict = {}


def _multiprocessors(device) -> int:
    if device.id not in _SM_COUNTS:
        _SM_COUNTS[device.id] = int(device.attributes["MultiProcessorCount"])
    return _SM_COUNTS[device.id]


@dataclasses.dataclass(eq=False)
class State:
    """State of the in-place CuPy step (mutable).

    Attributes:
        count: steps taken so far; the next step is t = count + 1.
        m, v: moments, one C-contiguous CuPy array per parameter leaf (flattened
            order), dtype ``compute_dtype_name(param dtype)``.
        treedef: the structure of the params it was built for.
    """

    count: int
    m: list
    v: list
    treedef: Any = dataclasses.field(repr=False)
    _groups: Any = dataclasses.field(default=None, repr=False)
    _signature: Any = dataclasses.field(default=None, repr=False)

    def __getstate__(self):
        return {"count": self.count, "m": self.m, "v": self.v, "treedef": self.treedef}

    def __setstate__(self, values):
        self.__dict__.update(values, _groups=None, _signature=None)


def _storage_name(x) -> str:
    return getattr(x.dtype, "name", str(x.dtype))


def init(params: Any) -> State:
    """Zero state for ``params`` (CuPy arrays, one or a list/tuple/dict tree)."""
    cupy = _cupy()
    treedef, (leaves,) = check_structures([("params", params)])
    for path, p in zip(leaf_paths(treedef, "params"), leaves):
        if not isinstance(p, cupy.ndarray) or _storage_name(p) not in STORAGE:
            raise TypeError(f"{path} must be a cupy.ndarray of dtype {sorted(STORAGE)}, got "
                            f"{type(p).__qualname__}(dtype={getattr(p, 'dtype', None)})")
    zeros = {}
    for name in ("m", "v"):
        zeros[name] = []
        for p in leaves:
            with p.device:
                zeros[name].append(cupy.zeros(p.shape, dtype=compute_dtype_name(_storage_name(p))))
    return State(count=0, m=zeros["m"], v=zeros["v"], treedef=treedef)


def _validation_view(x):
    """bfloat16 arrays viewed as float16 (same size), so the spec's checks, which
    know only standard dtypes, can check shape, namespace and device."""
    return x.view("float16") if _storage_name(x) == "bfloat16" else x


def _validate(treedef, p_leaves, g_leaves, m, v) -> None:
    cupy = _cupy()
    p_paths = leaf_paths(treedef, "params")
    g_paths = leaf_paths(treedef, "grads")
    for path, x in zip(p_paths + g_paths, p_leaves + g_leaves):
        if not isinstance(x, cupy.ndarray):
            raise TypeError(f"{path} must be a cupy.ndarray, got {type(x).__qualname__}")
        if _storage_name(x) not in STORAGE:
            raise TypeError(f"{path} has dtype {_storage_name(x)}; supported: {sorted(STORAGE)}")
        if not x.flags.c_contiguous:
            raise ValueError(f"{path} is not C-contiguous (strides {x.strides}); the CuPy "
                             "backend updates contiguous arrays (use cupy.ascontiguousarray)")
    for p_path, g_path, p, g in zip(p_paths, g_paths, p_leaves, g_leaves):
        if _storage_name(p) != _storage_name(g):
            raise TypeError(f"{g_path} has dtype {_storage_name(g)} but {p_path} has dtype "
                            f"{_storage_name(p)}")
    check_leaves(treedef, [("params", [_validation_view(x) for x in p_leaves]),
                           ("grads", [_validation_view(x) for x in g_leaves])])
    device = p_leaves[0].device
    for name, moments in (("m", m), ("v", v)):
        for path, p_path, p, x in zip(leaf_paths(treedef, f"state.{name}"), p_paths,
                                      p_leaves, moments):
            expected = compute_dtype_name(_storage_name(p))
            if (not isinstance(x, cupy.ndarray) or _storage_name(x) != expected
                    or x.shape != p.shape or not x.flags.c_contiguous or x.device != device):
                raise ValueError(
                    f"{path} must be a C-contiguous cupy.ndarray of dtype {expected}, shape "
                    f"{p.shape} on {device} for {p_path}; build the state with init() or "
                    "from_spec_state()"
                )


def _check_disjoint(treedef, p_leaves, g_leaves, m, v) -> None:
    """Every step (pointers may change while the layout does not): no two of the
    params and state arrays share memory, and no gradient shares memory with one of
    them (the kernel writes θ, m, v in place while it reads g).  The arrays are
    C-contiguous, so byte spans that meet share memory."""
    written = list(p_leaves) + list(m) + list(v)
    paths = (leaf_paths(treedef, "params") + leaf_paths(treedef, "state.m")
             + leaf_paths(treedef, "state.v"))
    lows = np.array([x.data.ptr for x in written], np.int64)
    highs = lows + np.array([x.nbytes for x in written], np.int64)
    pair = first_overlap(lows, highs)
    if pair is not None:
        raise ValueError(f"{paths[pair[0]]} and {paths[pair[1]]} share memory; an in-place "
                         "step needs parameters and state arrays that do not overlap")
    g_lows = np.array([g.data.ptr for g in g_leaves], np.int64)
    g_highs = g_lows + np.array([g.nbytes for g in g_leaves], np.int64)
    order = np.argsort(lows)
    bad = np.flatnonzero(reads_written(lows[order], highs[order], g_lows, g_highs))
    if bad.size:
        path = leaf_paths(treedef, "grads")[int(bad[0])]
        raise ValueError(f"{path} shares memory with a parameter or state array; the "
                         "in-place step writes those while it reads the gradient (pass a copy)")


def _signature(p_leaves, g_leaves, m, v):
    return tuple((type(x), x.shape, x.strides, _storage_name(x), x.device.id)
                 for leaves in (p_leaves, g_leaves, m, v) for x in leaves)


@dataclasses.dataclass
class _Group:
    storage: str
    leaves: list
    host_table: np.ndarray | None = None
    device_table: Any = None
    n_chunks: int = 0


def _groups(p_leaves) -> list[_Group]:
    by_dtype: dict = {}
    for index, p in enumerate(p_leaves):
        by_dtype.setdefault(_storage_name(p), []).append(index)
    return [_Group(storage, leaves) for storage, leaves in sorted(by_dtype.items())]


def _upload(group: _Group, p_leaves, g_leaves, m, v) -> None:
    cupy = _cupy()
    tensors = [(p_leaves[i].data.ptr, g_leaves[i].data.ptr, m[i].data.ptr, v[i].data.ptr,
                p_leaves[i].size) for i in group.leaves]
    table = build_table(tensors, CHUNK_ELEMENTS)
    if group.host_table is None or not np.array_equal(table, group.host_table):
        group.host_table = table
        group.device_table = cupy.asarray(table)
        group.n_chunks = (table.size - 5 * len(tensors)) // 2


def _check_finite(treedef, g_leaves, t: int) -> None:
    cupy = _cupy()
    for path, g in zip(leaf_paths(treedef, "grads"), g_leaves):
        name = _storage_name(g)
        if name in ("float16", "bfloat16"):
            exponent = 0x7C00 if name == "float16" else 0x7F80
            bad = bool(((g.view(cupy.uint16) & exponent) == exponent).any())
        else:
            bad = not bool(cupy.isfinite(g).all())
        if bad:
            raise NonFiniteGradientError(
                f"{path} has non-finite elements at step {t}; nothing was updated "
                "(config.nonfinite='raise')"
            )


def step_(params: Any, grads: Any, state: State, config: RAdamConfig | None = None) -> None:
    """One RAdam step in place on CuPy arrays: writes ``params``, ``state.m``,
    ``state.v`` and advances ``state.count``.  Same math and errors as
    :func:`radam_ref.backends.numpy.step_`."""
    _cupy()
    if config is None:
        config = RAdamConfig()
    if not isinstance(config, RAdamConfig):
        raise TypeError(f"config must be a RAdamConfig, got {config!r}")
    if not isinstance(state, State):
        raise TypeError(f"state must be a radam_ref.backends.cupy.State, got {type(state)!r}")
    check_count(state.count)
    if not isinstance(state.count, numbers.Integral):
        raise TypeError(f"state.count must be a Python integer, got {state.count!r}")
    treedef, (p_leaves, g_leaves) = check_structures([("params", params), ("grads", grads)])
    if treedef != state.treedef or len(state.m) != len(p_leaves) or len(state.v) != len(p_leaves):
        raise ValueError("params has a different structure from the one the state was built for")
    signature = _signature(p_leaves, g_leaves, state.m, state.v)
    if signature != state._signature:
        _validate(treedef, p_leaves, g_leaves, state.m, state.v)
        state._groups, state._signature = _groups(p_leaves), signature
    _check_disjoint(treedef, p_leaves, g_leaves, state.m, state.v)
    t = int(state.count) + 1
    if config.nonfinite == "raise":
        _check_finite(treedef, g_leaves, t)
    flags, scalars = element_constants(config, t)
    device = p_leaves[0].device
    with device:
        sms = _multiprocessors(device)
        for group in state._groups:
            _upload(group, p_leaves, g_leaves, state.m, state.v)
            if group.n_chunks == 0:
                continue
            kernel = _KERNELS.get(group.storage, flags, device.id)
            compute = np.dtype(compute_dtype_name(group.storage)).type
            grid = min(group.n_chunks, _BLOCKS_PER_SM * sms)
            kernel((grid,), (BLOCK_SIZE,),
                   (group.device_table, np.int64(len(group.leaves)), np.int64(group.n_chunks),
                    np.int64(CHUNK_ELEMENTS), *(compute(x) for x in scalars)))
    state.count = t


def from_spec_state(spec_state: RAdamState, params: Any) -> State:
    """A backend state holding copies of a :class:`radam_ref.RAdamState` for ``params``
    (moments of the parameter dtype or the compute dtype, converted exactly)."""
    cupy = _cupy()
    if not isinstance(spec_state, RAdamState):
        raise TypeError(f"spec_state must be a radam_ref.RAdamState, got {type(spec_state)!r}")
    check_count(spec_state.count)
    treedef, (p_leaves, m_leaves, v_leaves) = check_structures(
        [("params", params), ("spec_state.m", spec_state.m), ("spec_state.v", spec_state.v)])
    out = {"m": [], "v": []}
    for name, leaves in (("m", m_leaves), ("v", v_leaves)):
        for path, p, x in zip(leaf_paths(treedef, f"spec_state.{name}"), p_leaves, leaves):
            target = compute_dtype_name(_storage_name(p))
            if _storage_name(x) not in (_storage_name(p), target) or x.shape != p.shape:
                raise ValueError(f"{path} has shape {x.shape} and dtype {_storage_name(x)}; "
                                 f"expected shape {p.shape} and dtype {_storage_name(p)} or {target}")
            with p.device:
                out[name].append(cupy.array(x, dtype=target, order="C", copy=True))
    return State(count=int(spec_state.count), m=out["m"], v=out["v"], treedef=treedef)


def to_spec_state(state: State) -> RAdamState:
    """The state as a :class:`radam_ref.RAdamState` of CuPy arrays (copies)."""
    if not isinstance(state, State):
        raise TypeError(f"state must be a radam_ref.backends.cupy.State, got {type(state)!r}")
    return RAdamState(count=int(state.count),
                      m=unflatten(state.treedef, [x.copy() for x in state.m]),
                      v=unflatten(state.treedef, [x.copy() for x in state.v]))
