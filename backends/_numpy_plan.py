"""The NumPy backend's launch plan: validated leaves, grouped by dtype, as kernel tables.

Building a plan runs the spec's checks (:func:`radam_ref._validation.check_leaves`)
plus the in-place ones (params writeable and aligned, state arrays owned and
C-contiguous, params and state not overlapping, no gradient overlapping them), then lays every dtype group out as the
tables :func:`_numba_kernels.step_kernel` takes.

Validating 2,000 arrays costs tens of milliseconds, far more than updating them,
so a plan is reused while it stays valid: the same params objects (the state
keeps references to them, as torch optimizers do), the same state arrays, and
gradients of the same type, shape, strides and dtype — for NumPy arrays these
fully determine what the checks decide.  A gradient object that changed only
costs reading its address (about 1 µs); anything else rebuilds the plan.
"""

from __future__ import annotations

import dataclasses
import operator
import weakref
from typing import Any

import numpy as np

from radam_ref._tree import leaf_paths
from radam_ref._validation import check_leaves

from ._numba_kernels import FLOAT16_BITS, N_SCALARS
from ._spans import reads_written

__all__ = ["Plan", "DtypeGroup", "build_plan", "CHUNK_ELEMENTS", "compute_dtype",
           "SUPPORTED_DTYPES"]

#: Elements per parallel work item (4 arrays × 64 Ki float32 = 1 MiB).
CHUNK_ELEMENTS = 1 << 16

#: Parameter dtypes of the NumPy backend.
SUPPORTED_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def compute_dtype(dtype) -> np.dtype:
    """Dtype of the state and of the arithmetic for a parameter dtype:
    float32 for float16 parameters, the parameter dtype otherwise."""
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


@dataclasses.dataclass
class DtypeGroup:
    """The kernel tables of every tensor with one parameter dtype."""

    storage: np.dtype
    compute: np.dtype
    leaves: np.ndarray          # int64[n]: leaf index of each tensor
    addresses: np.ndarray       # int64[n, 4]: p, g, m, v data addresses
    chunk_tensor: np.ndarray    # int64[c]
    chunk_start: np.ndarray     # int64[c]
    chunk_end: np.ndarray       # int64[c]
    row_length: np.ndarray      # int64[n]: 0 if p and g are C-contiguous
    ndims: np.ndarray           # int64[n]
    shapes: np.ndarray          # int64[n, d]
    p_strides: np.ndarray       # int64[n, d] (bytes)
    g_strides: np.ndarray       # int64[n, d] (bytes)
    p_proto: np.ndarray         # empty array of the storage dtype the kernel sees
    m_proto: np.ndarray         # empty array of the compute dtype
    scalars: np.ndarray         # compute dtype[N_SCALARS], filled per step
    elements: int               # parameters in the group


@dataclasses.dataclass
class Plan:
    """A validated layout of (params, grads, state) and its kernel tables."""

    params: list                # the params leaves (strong references)
    grad_refs: list             # weak references to the grads leaves last seen
    grad_layout: list           # (type, shape, strides, dtype) each grads leaf must keep
    m: list
    v: list
    groups: list                # [DtypeGroup]
    where: list                 # leaf index -> (group, row)
    written: tuple = ((), ())   # sorted lows, highs of the params and state (disjoint)
    grad_extent: Any = None     # int64[n, 2]: each grad's byte bounds minus its address

    def reusable(self, p_leaves: list, g_leaves: list, m: list, v: list) -> bool:
        """True if the plan still describes these arrays (refreshing grad addresses)."""
        if not (len(p_leaves) == len(self.params)
                and all(map(operator.is_, p_leaves, self.params))
                and all(map(operator.is_, m, self.m))
                and all(map(operator.is_, v, self.v))
                and all(p.flags.writeable for p in p_leaves)):
            return False
        replaced = []
        for index, (g, ref) in enumerate(zip(g_leaves, self.grad_refs)):
            if ref() is g:
                continue
            layout = self.grad_layout[index]
            if (type(g), g.shape, g.strides, g.dtype) != layout or not g.flags.aligned:
                return False
            replaced.append((index, g.ctypes.data))
        if replaced and _reads_written(replaced, self.grad_extent, *self.written):
            return False  # a new gradient overlaps a parameter or state: rebuild (and raise)
        for index, address in replaced:
            group, row = self.where[index]
            group.addresses[row, 1] = address
            self.grad_refs[index] = weakref.ref(g_leaves[index])
        return True


def _reads_written(replaced, grad_extent, lows, highs) -> bool:
    """Whether any replaced gradient's byte bounds meet a parameter's or state array's."""
    index, address = np.array(replaced, dtype=np.int64).T
    return bool(reads_written(lows, highs, address + grad_extent[index, 0],
                              address + grad_extent[index, 1]).any())


def _check_in_place(treedef, p_leaves, g_leaves, m, v):
    """The checks an in-place step adds to the spec's (check_leaves)."""
    p_paths = leaf_paths(treedef, "params")
    g_paths = leaf_paths(treedef, "grads")
    for path, x in zip(p_paths + g_paths, p_leaves + g_leaves):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{path} must be a numpy.ndarray, got {type(x).__module__}."
                            f"{type(x).__qualname__} (the NumPy backend)")
        if x.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{path} has dtype {x.dtype}; the NumPy backend supports "
                            f"{[str(d) for d in SUPPORTED_DTYPES]}")
        if not x.flags.aligned:
            raise ValueError(f"{path} is not aligned to its dtype (copy it with np.array)")
    for path, p in zip(p_paths, p_leaves):
        if not p.flags.writeable:
            raise ValueError(f"{path} is read-only; step_ writes the parameters in place")
    m_paths = leaf_paths(treedef, "state.m")
    v_paths = leaf_paths(treedef, "state.v")
    for paths, moments in ((m_paths, m), (v_paths, v)):
        for path, p_path, p, x in zip(paths, p_paths, p_leaves, moments):
            expected = compute_dtype(p.dtype)
            if not isinstance(x, np.ndarray) or x.dtype != expected or x.shape != p.shape:
                raise ValueError(
                    f"{path} must be a numpy.ndarray of dtype {expected} and shape "
                    f"{p.shape} for {p_path}, got {type(x).__qualname__}"
                    f"(shape={getattr(x, 'shape', None)}, dtype={getattr(x, 'dtype', None)}); "
                    "build the state with init() or from_spec_state()"
                )
            if not (x.flags.c_contiguous and x.flags.writeable and x.flags.aligned):
                raise ValueError(f"{path} must be a writeable C-contiguous array")
    return _check_no_overlap(p_leaves + list(m) + list(v), p_paths + m_paths + v_paths,
                             g_leaves, g_paths)


_byte_bounds = getattr(getattr(np.lib, "array_utils", np), "byte_bounds", None) or np.byte_bounds


def _check_no_overlap(arrays, paths, grads=(), grad_paths=()):
    """No two of ``arrays`` (params and state, written in place) share memory, and no
    gradient (only read; gradients may share memory with each other) shares memory
    with one of them: the in-place kernel would read a value it already updated, not
    the spec's g_t.  Returns the sorted (lows, highs) byte spans of ``arrays``."""
    spans = []
    for index, x in enumerate(arrays):
        if x.size:
            low, high = _byte_bounds(x)
            spans.append((low, high, index))
    spans.sort()
    for (low_a, high_a, a), (low_b, high_b, b) in zip(spans, spans[1:]):
        if low_b < high_a and np.shares_memory(arrays[a], arrays[b]):
            raise ValueError(
                f"{paths[a]} and {paths[b]} share memory; an in-place step needs "
                "parameters and state arrays that do not overlap"
            )
    lows = np.array([s[0] for s in spans], dtype=np.int64)
    highs = np.array([s[1] for s in spans], dtype=np.int64)
    for path, g in zip(grad_paths, grads):
        if not g.size or not len(spans):
            continue
        low, high = _byte_bounds(g)
        k = int(np.searchsorted(lows, high, side="left")) - 1
        while k >= 0 and highs[k] > low:
            other = spans[k][2]
            if np.shares_memory(g, arrays[other]):
                raise ValueError(
                    f"{path} shares memory with {paths[other]}; the in-place step writes "
                    f"{paths[other]} while it reads {path} (pass a copy of the gradient)")
            k -= 1
    return lows, highs


def _layout_row(p: np.ndarray, g: np.ndarray):
    """(row_length, shape, p_strides, g_strides) of one tensor for the kernel."""
    if p.flags.c_contiguous and g.flags.c_contiguous:
        return 0, (), (), ()
    return p.shape[-1], p.shape, p.strides, g.strides


def _chunks(sizes: np.ndarray, row_length: np.ndarray):
    """Split every tensor into chunks of about CHUNK_ELEMENTS (whole rows if strided)."""
    step = np.where(row_length > 0,
                    np.maximum(1, CHUNK_ELEMENTS // np.maximum(row_length, 1)) * row_length,
                    CHUNK_ELEMENTS)
    counts = np.where(sizes > 0, -(-sizes // step), 0)
    tensor = np.repeat(np.arange(sizes.size, dtype=np.int64), counts)
    first_chunk = np.cumsum(counts) - counts
    ordinal = np.arange(tensor.size, dtype=np.int64) - np.repeat(first_chunk, counts)
    start = ordinal * step[tensor]
    end = np.minimum(start + step[tensor], sizes[tensor])
    return tensor, start.astype(np.int64), end.astype(np.int64)


def _group(storage, leaves, p_leaves, g_leaves, m, v) -> DtypeGroup:
    n = len(leaves)
    addresses = np.empty((n, 4), dtype=np.int64)
    layouts = []
    for row, index in enumerate(leaves):
        p, g = p_leaves[index], g_leaves[index]
        addresses[row] = (p.ctypes.data, g.ctypes.data, m[index].ctypes.data,
                          v[index].ctypes.data)
        layouts.append(_layout_row(p, g))
    width = max([1] + [len(shape) for _, shape, _, _ in layouts])
    shapes = np.zeros((n, width), dtype=np.int64)
    p_strides = np.zeros((n, width), dtype=np.int64)
    g_strides = np.zeros((n, width), dtype=np.int64)
    ndims = np.zeros(n, dtype=np.int64)
    row_length = np.zeros(n, dtype=np.int64)
    for row, (length, shape, ps, gs) in enumerate(layouts):
        row_length[row] = length
        ndims[row] = len(shape)
        shapes[row, :len(shape)] = shape
        p_strides[row, :len(shape)] = ps
        g_strides[row, :len(shape)] = gs
    sizes = np.array([p_leaves[index].size for index in leaves], dtype=np.int64)
    chunk_tensor, chunk_start, chunk_end = _chunks(sizes, row_length)
    compute = compute_dtype(storage)
    kernel_storage = np.dtype(FLOAT16_BITS) if storage == np.float16 else storage
    return DtypeGroup(
        storage=storage, compute=compute, leaves=np.asarray(leaves, dtype=np.int64),
        addresses=addresses, chunk_tensor=chunk_tensor, chunk_start=chunk_start,
        chunk_end=chunk_end, row_length=row_length, ndims=ndims, shapes=shapes,
        p_strides=p_strides, g_strides=g_strides,
        p_proto=np.empty(0, dtype=kernel_storage), m_proto=np.empty(0, dtype=compute),
        scalars=np.zeros(N_SCALARS, dtype=compute), elements=int(sizes.sum()),
    )


def build_plan(treedef: Any, p_leaves: list, g_leaves: list, m: list, v: list) -> Plan:
    """Validate everything and lay it out; raises before anything is written."""
    written = _check_in_place(treedef, p_leaves, g_leaves, m, v)
    check_leaves(treedef, [("params", p_leaves), ("grads", g_leaves)])
    by_dtype: dict = {}
    for index, p in enumerate(p_leaves):
        by_dtype.setdefault(p.dtype, []).append(index)
    groups, where = [], [None] * len(p_leaves)
    for storage in SUPPORTED_DTYPES:
        if storage in by_dtype:
            group = _group(storage, by_dtype[storage], p_leaves, g_leaves, m, v)
            for row, index in enumerate(by_dtype[storage]):
                where[index] = (group, row)
            groups.append(group)
    return Plan(
        params=list(p_leaves),
        grad_refs=[weakref.ref(g) for g in g_leaves],
        grad_layout=[(type(g), g.shape, g.strides, g.dtype) for g in g_leaves],
        m=list(m), v=list(v), groups=groups, where=where, written=written,
        grad_extent=np.array([_extent(g) for g in g_leaves], dtype=np.int64).reshape(-1, 2),
    )


def _extent(g: np.ndarray):
    """``g``'s byte bounds relative to its address (fixed by its shape and strides)."""
    if not g.size:
        return (0, 0)
    low, high = _byte_bounds(g)
    return (low - g.ctypes.data, high - g.ctypes.data)
