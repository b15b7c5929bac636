"""The torch backend's CPU fast path: torch tensors, as zero-copy NumPy views, through
the one CPU kernel (``_numba_kernels.step_kernel``, shared with the NumPy backend).

An RAdam step is memory-bound.  ``torch.optim.RAdam`` with ``foreach=True`` makes
about nine passes over parameter-sized memory per step; the kernel reads p, g, m, v
once and writes p, m, v once, with all cores working through a table of (tensor,
chunk) work items, so 2,000 small tensors cost one call, not 2,000.

How a tensor reaches the kernel
-------------------------------
``t.detach().numpy()`` (after ``torch.view_as_real`` for complex tensors, and a
``view(torch.int16)`` for float16/bfloat16, whose bit patterns the kernel widens
itself) is a NumPy array over the tensor's own memory; its address must equal
``t.data_ptr()`` (checked for every buffer when a table is built: the view
shares the tensor's memory, nothing was copied).
The tables hold these views, so every buffer the kernel writes stays alive as
long as the table does.  Nothing is copied.

What it takes (:func:`layout_error` says why not, or None)
----------------------------------------------------------
CPU tensors; θ, m, v C-contiguous; g of θ's dtype (any strides: the kernel reads
it through them); dtypes (θ → m, v): float64 → float64; float32 → float32 or
float64; float16 → float16 or float32; bfloat16 → bfloat16 or float32; complex as
their real pairs.  The arithmetic runs in float64 if θ or the state is float64,
else in float32: bfloat16 and float16 parameters, with low-precision or float32
state, are updated in one pass in float32 and rounded once to nearest even (see
``_numba_kernels``).  No two parameters or state buffers may overlap, and a
gradient may not overlap any of them.  Anything else goes to the foreach or
single-tensor path (the caller decides), after :func:`_torch_checks.check_buffers`.

Arithmetic order: ``op_order="spec"`` runs the spec's operations as torch
evaluates them (``ARITH_SPEC_TORCH``: the same as the single-tensor path, see the
bound in ``docs/torch-backend.md``); ``op_order="torch"`` runs torch.optim.RAdam's
(``ARITH_TORCH``: its lerp and L2 decay as fused multiply-adds).

Caching
-------
Building a table validates every tensor (O(number of tensors) Python work).
:class:`FusedPlan` keeps the tables of one parameter group across steps and
re-checks, per step, only what can change cheaply: that the state dicts and state
tensors are the same objects (O(1): the optimizer's state counts its own
mutations, ``_torch_state``), each parameter's address, size and contiguity
(``p.data`` may be replaced), and each gradient (a new gradient of another layout
is checked in full; one of the same layout must not overlap a parameter or state
buffer: one vectorised search over the table's sorted byte spans).  Any change
rebuilds the table before anything is written.  Host scalars are cached per
(config, t, order, dtype).  Not detected: resizing or re-pointing a state tensor
in place (``exp_avg.resize_``/``set_``/``as_strided_``), which no optimizer API
does; replace it (``state[p]["exp_avg"] = ...``) instead.  It is memory-safe all
the same: the table's NumPy views make every storage non-resizable (growing
raises in torch), and keep alive the storage they were built on, which the kernel
keeps writing.
"""

from __future__ import annotations

import functools
import operator

import numpy as np
import torch

from radam_ref import RAdamConfig

from ._torch_checks import TensorMismatchError, check_buffers
from ._spans import reads_written
from ._torch_state import TrackedDict

__all__ = ["AVAILABLE", "UNAVAILABLE_REASON", "FusedPlan", "Batch", "eligible", "layout_error",
           "is_dtensor", "launch", "local_tensor", "prepare", "numpy_view", "update_fused"]

try:  # numba is optional: without it the foreach path is used.
    from . import _numba_kernels as kernels
    from ._element import cached_element_constants
    from ._numpy_plan import _chunks
except ImportError as exc:  # pragma: no cover - exercised only without numba
    AVAILABLE = False
    UNAVAILABLE_REASON = f"numba is not installed ({exc})"
else:
    AVAILABLE = True
    UNAVAILABLE_REASON = ""

_REAL_OF_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}
#: parameter dtype -> the state dtypes the kernel takes with it.
STATE_DTYPES = {
    torch.float64: (torch.float64,),
    torch.float32: (torch.float32, torch.float64),
    torch.float16: (torch.float16, torch.float32),
    torch.bfloat16: (torch.bfloat16, torch.float32),
}
#: torch dtype -> the NumPy dtype the kernel sees (16-bit floats as their bits).
_KERNEL_DTYPE = {
    torch.float64: np.dtype(np.float64),
    torch.float32: np.dtype(np.float32),
    torch.float16: np.dtype(np.uint16),
    torch.bfloat16: np.dtype(np.int16),
}
#: Steps over fewer elements run on the calling thread (waking workers costs more).
PARALLEL_MIN_ELEMENTS = 1 << 17


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return _REAL_OF_COMPLEX.get(dtype, dtype)


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """A NumPy array over ``t``'s memory (no copy): real pairs for complex tensors,
    bit patterns for float16 (uint16) and bfloat16 (int16)."""
    x = t.detach()
    if x.is_complex():
        x = torch.view_as_real(x)
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.view(torch.int16)
    a = x.numpy()
    if t.dtype == torch.float16:
        a = a.view(np.uint16)
    return a


def layout_error(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor):
    """Why the kernel cannot update this (plain, local) parameter in place, or None."""
    if not AVAILABLE:
        return UNAVAILABLE_REASON
    if p.device.type != "cpu":
        return f"it is on {p.device}"
    dtype = _real_dtype(p.dtype)
    if dtype not in STATE_DTYPES:
        return f"its dtype is {p.dtype}"
    if _real_dtype(m.dtype) not in STATE_DTYPES[dtype] or m.dtype != v.dtype:
        return f"its state dtype {m.dtype} is not one of {STATE_DTYPES[dtype]}"
    if m.is_complex() != p.is_complex():
        return f"its state dtype {m.dtype} does not match its dtype {p.dtype}"
    if g.dtype != p.dtype:
        return f"its gradient has dtype {g.dtype}"
    if not (p.is_contiguous() and m.is_contiguous() and v.is_contiguous()):
        return "it or its state is not contiguous"
    if g.layout is not torch.strided or g.device.type != "cpu":
        return "its gradient is not a dense CPU tensor"
    if any(x.is_conj() or x.is_neg() for x in (p, g, m, v)):
        return "it, its gradient or its state is a lazily conjugated or negated view"
    return None


def eligible(p, g, m, v) -> bool:
    """Whether the fused kernel can update this (plain, local) parameter in place."""
    return layout_error(p, g, m, v) is None


def is_dtensor(x) -> bool:
    """Whether ``x`` is a DTensor (a parameter sharded by FSDP2 or tensor parallelism)."""
    return _DTENSOR is not None and isinstance(x, _DTENSOR)


def local_tensor(x: torch.Tensor) -> torch.Tensor:
    """The local shard of a DTensor, sharing its storage."""
    local = getattr(x, "_local_tensor", None)
    return x.to_local() if local is None else local


try:
    from torch.distributed.tensor import DTensor as _DTENSOR
except ImportError:  # pragma: no cover - torch built without distributed
    _DTENSOR = None


def _local(p, g, m, v):
    """Local shards when p, g, m, v are DTensors placed alike; the tensors when none is
    a DTensor; None otherwise (the kernel cannot take them)."""
    dt = [is_dtensor(x) for x in (p, g, m, v)]
    if not any(dt):
        return p, g, m, v
    if all(dt) and g.placements == m.placements == v.placements == p.placements:
        return tuple(local_tensor(x) for x in (p, g, m, v))
    return None


class Batch:
    """The kernel tables of every row with one (parameter dtype, state dtype).

    Rows are (param, p, g, m, v, step) with p, g, m, v local tensors.  The NumPy views
    of every buffer are held here, so the addresses in the tables stay valid.
    """

    def __init__(self, rows: list, labels: list) -> None:
        p0, m0 = rows[0][1], rows[0][3]
        self.param_dtype = _real_dtype(p0.dtype)
        self.state_dtype = _real_dtype(m0.dtype)
        wide = torch.float64 in (self.param_dtype, self.state_dtype)
        self.compute = np.dtype(np.float64 if wide else np.float32)
        self.p_proto = np.empty(0, _KERNEL_DTYPE[self.param_dtype])
        self.s_proto = np.empty(0, _KERNEL_DTYPE[self.state_dtype])
        self.params = [r[0] for r in rows]
        self.labels = labels
        n = len(rows)
        self.views = []
        self.addresses = np.empty((n, 4), np.int64)
        self.steps = [r[5] for r in rows]
        self.step_addresses = np.empty(n, np.int64)
        sizes = np.empty(n, np.int64)
        layouts = []
        for k, (_, p, g, m, v, step) in enumerate(rows):
            views = [numpy_view(x) for x in (p, g, m, v)]
            for x, a in zip((p, g, m, v), views):
                if a.size and a.__array_interface__["data"][0] != x.data_ptr():
                    raise AssertionError(f"{labels[k]}: a NumPy view does not share memory "
                                         "with its tensor")
            pv, gv, mv, vv = views
            self.views.append(views)
            self.addresses[k] = (pv.ctypes.data, gv.ctypes.data, mv.ctypes.data,
                                 vv.ctypes.data)
            self.step_addresses[k] = step.data_ptr()
            sizes[k] = pv.size
            layouts.append(self._layout(pv, gv))
        self.sizes = sizes
        width = max([1] + [len(shape) for _, shape, _ in layouts])
        self.row_length = np.zeros(n, np.int64)
        self.ndims = np.zeros(n, np.int64)
        self.shapes = np.zeros((n, width), np.int64)
        self.p_strides = np.zeros((n, width), np.int64)
        self.g_strides = np.zeros((n, width), np.int64)
        for k, (length, shape, g_strides) in enumerate(layouts):
            if length:
                self.row_length[k] = length
                self.ndims[k] = len(shape)
                self.shapes[k, :len(shape)] = shape
                self.p_strides[k, :len(shape)] = _c_strides(shape, self.p_proto.itemsize)
                self.g_strides[k, :len(shape)] = g_strides
        self.chunk_tensor, self.chunk_start, self.chunk_end = _chunks(sizes, self.row_length)
        self.elements = int(sizes.sum())
        self._taken = np.empty(n, np.float64)

    @staticmethod
    def _layout(pv: np.ndarray, gv: np.ndarray):
        if gv.flags.c_contiguous or gv.size == 0:
            return 0, (), ()
        return pv.shape[-1], pv.shape, gv.strides

    def subset(self, rows: np.ndarray) -> "Batch":
        """The tables of ``rows`` only (used when they are at different steps)."""
        sub = object.__new__(Batch)
        sub.__dict__.update(self.__dict__)
        sub.params = [self.params[k] for k in rows]
        sub.labels = [self.labels[k] for k in rows]
        sub.views = [self.views[k] for k in rows]
        sub.steps = [self.steps[k] for k in rows]
        for name in ("addresses", "step_addresses", "sizes", "row_length", "ndims", "shapes",
                     "p_strides", "g_strides"):
            setattr(sub, name, np.ascontiguousarray(getattr(self, name)[rows]))
        sub.chunk_tensor, sub.chunk_start, sub.chunk_end = _chunks(sub.sizes, sub.row_length)
        sub.elements = int(sub.sizes.sum())
        sub._taken = np.empty(len(rows), np.float64)
        return sub


def _c_strides(shape, itemsize: int):
    strides, acc = [], itemsize
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(int(n), 1)
    return tuple(reversed(strides))


def _check_no_overlap(batches: list) -> None:
    """No parameter or state buffer overlaps another, and no gradient overlaps one."""
    spans = []
    for batch in batches:
        for views, label in zip(batch.views, batch.labels):
            for kind, a in zip(("parameter", "grad", "exp_avg", "exp_avg_sq"), views):
                if a.size:
                    low = a.__array_interface__["data"][0]
                    high = low + a.size * a.itemsize if a.flags.c_contiguous else \
                        low + sum((n - 1) * abs(s) for n, s in zip(a.shape, a.strides)) + \
                        a.itemsize
                    spans.append((low, high, kind, label, a))
    spans.sort(key=lambda s: (s[0], s[1]))
    for i, (low, high, kind, label, a) in enumerate(spans):
        for low2, high2, kind2, label2, b in spans[i + 1:]:
            if low2 >= high:
                break
            if kind == kind2 == "grad":
                continue  # gradients are only read: they may share memory
            if np.shares_memory(a, b):
                raise TensorMismatchError(
                    f"{label} {kind} and {label2} {kind2} share memory; the fused step "
                    "writes parameters and state in place and needs them disjoint")


def _bounds(a: np.ndarray):
    """[first byte, past the last byte) of ``a`` (through its strides)."""
    low = a.__array_interface__["data"][0]
    if a.flags.c_contiguous:
        return low, low + a.size * a.itemsize
    return (low + sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s < 0),
            low + sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s > 0) + a.itemsize)


_PLAIN = (torch.float32, torch.float64)  # dtypes whose ``.numpy()`` is the kernel's view


def _grad_layout(g):
    """What a cached table assumes of a gradient (None: never reused)."""
    if type(g) is not torch.Tensor or g.layout is not torch.strided:
        return None
    return (g.dtype, g.shape, g.stride(), g.device, g.is_conj(), g.is_neg())


def _written_spans(batches: list):
    """Sorted (lows, highs) of every parameter and state buffer the kernel writes
    (disjoint: :func:`_check_no_overlap` passed)."""
    spans = sorted(_bounds(a) for batch in batches for views in batch.views
                   for a in (views[0], views[2], views[3]) if a.size)
    return (np.array([s[0] for s in spans], np.int64), np.array([s[1] for s in spans], np.int64))


def _grad_extents(grads: list) -> np.ndarray:
    """Per gradient, its byte bounds minus its address (fixed by shape, strides, dtype)."""
    out = np.zeros((len(grads), 2), np.int64)
    for k, g in enumerate(grads):
        if g.numel():
            low, high = _bounds(numpy_view(g))
            out[k] = (low - g.data_ptr(), high - g.data_ptr())
    return out


def _reads_written(addresses: list, extents: np.ndarray, lows: np.ndarray,
                   highs: np.ndarray) -> bool:
    """Whether any gradient at ``addresses`` (with ``extents``) meets a written span:
    one vectorised search, so replaced gradients cost O(1) NumPy calls per step."""
    address = np.array(addresses, np.int64)
    return bool(reads_written(lows, highs, address + extents[:, 0],
                              address + extents[:, 1]).any())


@functools.lru_cache(maxsize=512)
def _constants(config: RAdamConfig, t: int, arith: int, compute: np.dtype):
    """Kernel flag and scalar arrays of step ``t`` (read-only, cached)."""
    flags, scalars = cached_element_constants(config, t)
    flag_array = np.array((*flags.as_ints(), arith), dtype=np.int64)
    r_t = 0.0
    if arith == kernels.ARITH_TORCH:
        sched = config.schedule(t)
        r_t = sched.r_t if sched.rectified else 0.0
    values = np.array((*scalars, config.lr, r_t, 0.0), dtype=np.float64).astype(compute)
    values[15] = values[1] - compute.type(1.0)  # torch's lerp: weight − 1 in the compute dtype
    flag_array.flags.writeable = False
    values.flags.writeable = False
    return flag_array, values


def prepare(batches: list) -> None:
    """Read and check the step counters of every batch (before any is launched)."""
    for batch in batches:
        if batch.params:
            bad, low, high = kernels.read_steps(batch.step_addresses, batch._taken)
            if bad >= 0:
                raise ValueError(f"{batch.labels[bad]}: state step must be a non-negative "
                                 f"integer count, got {batch._taken[bad]!r}")
            batch._steps_read = (low, high)


def launch(batch: Batch, config: RAdamConfig, op_order: str) -> None:
    """One step of every row of ``batch`` (after :func:`prepare`): runs the kernel,
    advances the counters and tells autograd the parameters changed."""
    if not batch.params:
        return
    taken = batch._taken
    low, high = batch._steps_read
    batch._steps_read = None
    if low != high:  # rows at different steps: one launch per step
        for value in np.unique(taken):
            sub = batch.subset(np.flatnonzero(taken == value))
            prepare([sub])
            launch(sub, config, op_order)
        return
    arith = kernels.ARITH_TORCH if op_order == "torch" else kernels.ARITH_SPEC_TORCH
    flags, scalars = _constants(config, int(low) + 1, arith, batch.compute)
    kernel = (kernels.step_kernel if batch.elements >= PARALLEL_MIN_ELEMENTS
              else kernels.step_kernel_serial)
    with kernels.LAUNCH_LOCK:
        kernel(batch.addresses, batch.chunk_tensor, batch.chunk_start, batch.chunk_end,
               batch.row_length, batch.ndims, batch.shapes, batch.p_strides, batch.g_strides,
               flags, scalars, batch.p_proto, batch.s_proto)
        kernels.advance_steps(batch.step_addresses, batch._taken[:0])
    torch.autograd.graph.increment_version(batch.params)


def _batches(rows: list, labels: list) -> list[Batch]:
    """Group rows by (parameter dtype, state dtype) into tables; check overlap."""
    keyed: dict = {}
    for row, label in zip(rows, labels):
        key = (_real_dtype(row[1].dtype), _real_dtype(row[3].dtype))
        keyed.setdefault(key, ([], []))
        keyed[key][0].append(row)
        keyed[key][1].append(label)
    batches = [Batch(r, lab) for r, lab in keyed.values()]
    _check_no_overlap(batches)
    return batches


def _with_lr(config: RAdamConfig, lr: float) -> RAdamConfig:
    return config if config.lr == lr else _replace_lr(config, lr)


@functools.lru_cache(maxsize=64)
def _replace_lr(config: RAdamConfig, lr: float) -> RAdamConfig:
    return config.replace(lr=lr)


def update_fused(params, grads, exp_avgs, exp_avg_sqs, state_steps, config: RAdamConfig, *,
                 lr: float, op_order: str, labels=None) -> None:
    """One step, in place, for parameters that pass :func:`eligible` (plain or DTensor
    local shards; state steps 0-d float64 CPU tensors, advanced by one).  Builds the
    tables afresh (the functional form; :class:`FusedPlan` caches them)."""
    if not params:
        return
    labels = labels or [f"params[{i}]" for i in range(len(params))]
    rows = []
    for p, g, m, v, step in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
        local = _local(p, g, m, v)
        rows.append((p, *local, step))
    config = _with_lr(config, lr)
    batches = _batches(rows, labels)
    prepare(batches)
    for batch in batches:
        launch(batch, config, op_order)


def _step_ok(step) -> bool:
    return (isinstance(step, torch.Tensor) and not is_dtensor(step)
            and step.dtype == torch.float64 and step.device.type == "cpu"
            and step.numel() == 1)


class FusedPlan:
    """The kernel tables of one parameter group, kept across steps (see the module
    docstring): rebuilt whenever a parameter, its state or its gradient changed in a
    way that the tables depend on."""

    def __init__(self, params: list, state, group_index: int = 0) -> None:
        self.params = params
        self.count = len(params)
        self.state = state
        self.group_index = group_index
        # A parameter listed twice would be updated by two threads at once: the
        # optimizer then steps the group with the single-tensor path instead.
        self.distinct = len({id(p) for p in params}) == len(params)
        #: per parameter: a tuple (state dict, m, v, step, address, numel) when the
        #: kernel takes it, False when it does not (another path), None before use.
        self.entries: list = [None] * len(params)
        self._cache = None

    def matches(self, params: list, state) -> bool:
        return params is self.params and len(params) == self.count and state is self.state

    def label(self, index: int) -> str:
        return f"param_groups[{self.group_index}] parameter {index}"

    def collect(self, init_state):
        """This step's work: ``(batches, others)``.  ``batches`` are ready tables;
        ``others`` lists parameters with a gradient the kernel cannot take (checked
        with :func:`check_buffers`; they go to another path).  Raises
        :class:`TensorMismatchError` naming the parameter before anything is written.
        """
        cache = self._cache
        if cache is not None and self._unchanged(cache):
            return cache[0], []
        self._cache = None
        return self._collect(init_state)

    def _unchanged(self, cache) -> bool:
        """Whether the cached tables still describe every parameter (refreshing the
        gradient addresses of gradients replaced by equal-layout ones)."""
        (batches, sds, ms, vs, steps, addresses, numels, grads, where, g_addresses,
         seen, written, extents, layouts, scatter) = cache
        params, state = self.params, self.state
        counter = getattr(state, "counter", None)
        if counter is None or counter.value != seen[0]:
            # Something in the state changed: compare every state dict and tensor.
            current = list(map(state.get, params))
            if not (all(map(operator.is_, current, sds))
                    and all(map(operator.is_, [sd.get("exp_avg") for sd in current], ms))
                    and all(map(operator.is_, [sd.get("exp_avg_sq") for sd in current], vs))
                    and all(map(operator.is_, [sd.get("step") for sd in current], steps))):
                return False
            if seen[1]:  # every state dict is tracked: later mutations bump the counter
                seen[0] = counter.value
        if not (list(map(torch.Tensor.data_ptr, params)) == addresses
                and list(map(torch.Tensor.numel, params)) == numels
                and all(map(torch.Tensor.is_contiguous, params))):
            return False
        new_grads = [p.grad for p in params]
        if all(map(operator.is_, new_grads, grads)):
            return list(map(torch.Tensor.data_ptr, new_grads)) == g_addresses
        # Some gradients were replaced (``zero_grad()`` sets them to None, so this is
        # the usual training loop): accept them if every gradient keeps its layout,
        # no kept one moved, and none overlaps a written buffer.  List-wide C-level
        # comparisons and one vectorised search.
        if list(map(_grad_layout, new_grads)) != layouts:
            return False
        new_addresses = list(map(torch.Tensor.data_ptr, new_grads))
        kept = np.fromiter(map(operator.is_, new_grads, grads), bool, len(grads))
        if kept.any() and not np.array_equal(np.array(new_addresses)[kept],
                                             np.array(g_addresses)[kept]):
            return False
        if _reads_written(new_addresses, extents, *written):
            return False  # a new gradient overlaps a parameter or state: rebuild (and raise)
        address = np.array(new_addresses, np.int64)
        for batch, indices in scatter:
            batch.addresses[:, 1] = address[indices]
            for views, g in zip(batch.views, map(new_grads.__getitem__, indices.tolist())):
                # a NumPy view, as when the table was built: it makes the storage
                # non-resizable, so the address cannot go stale before the next check
                views[1] = g.numpy() if g.dtype in _PLAIN and not g.requires_grad \
                    else numpy_view(g)
        grads[:] = new_grads
        g_addresses[:] = new_addresses
        return True

    def _collect(self, init_state):
        state = self.state
        rows, labels, others, indices = [], [], [], []
        for index, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            if g.is_sparse:
                raise RuntimeError("RAdam does not support sparse gradients")
            sd = init_state(p)
            label = self.label(index)
            m, v, step = sd.get("exp_avg"), sd.get("exp_avg_sq"), sd.get("step")
            check_buffers(label, p, g, m, v, step)
            local = _local(p, g, m, v)
            if (local is None or not _step_ok(step) or layout_error(*local) is not None):
                self.entries[index] = False
                others.append(p)
                continue
            self.entries[index] = (sd, m, v, step, p.data_ptr(), p.numel())
            rows.append((p, *local, step))
            labels.append(label)
            indices.append(index)
        batches = _batches(rows, labels) if rows else []
        if not others and len(indices) == self.count and not any(is_dtensor(p) for p in self.params):
            where = [None] * self.count
            for batch in batches:
                for row, param in enumerate(batch.params):
                    where[self._index_of(param)] = (batch, row)
            grads = [p.grad for p in self.params]
            entries = self.entries
            counter = getattr(self.state, "counter", None)
            tracked_all = counter is not None and all(
                isinstance(e[0], TrackedDict) and e[0].counter is counter
                for e in entries)
            self._cache = (batches, [e[0] for e in entries], [e[1] for e in entries],
                           [e[2] for e in entries], [e[3] for e in entries],
                           [e[4] for e in entries], [e[5] for e in entries], grads, where,
                           list(map(torch.Tensor.data_ptr, grads)),
                           [counter.value if tracked_all else None, tracked_all],
                           _written_spans(batches), _grad_extents(grads),
                           list(map(_grad_layout, grads)),
                           [(batch, np.array([self._index_of(q) for q in batch.params], np.int64))
                            for batch in batches])
            if None in self._cache[13]:
                self._cache = None  # a gradient of a tensor subclass: rebuilt every step
        return batches, others

    def _index_of(self, param) -> int:
        if not hasattr(self, "_positions"):
            self._positions = {id(p): i for i, p in enumerate(self.params)}
        return self._positions[id(param)]


def launch_plan(batches: list, config: RAdamConfig, *, lr: float, op_order: str) -> None:
    """Run the kernel for every batch gathered by :meth:`FusedPlan.collect` (and
    checked by :func:`prepare`)."""
    config = _with_lr(config, lr)
    for batch in batches:
        launch(batch, config, op_order)
