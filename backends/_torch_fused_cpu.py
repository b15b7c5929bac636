"""The fused CPU path: one numba kernel per dtype per step over every parameter.

Why this design (measured on the 2-core development machine, see
``docs/torch-backend.md``): an RAdam step is memory-bound.  ``torch.optim.RAdam``
with ``foreach=True`` makes about nine passes over parameter-sized memory per step
(lerp, mul, addcmul, sqrt, add, div, reciprocal, add, addcmul) and allocates a
temporary per tensor.  This kernel reads p, g, m, v once and writes p, m, v once
(28 bytes per float32 parameter, the floor), with both cores working through a
list of (tensor, chunk) work items, so 2000 small tensors cost one call, not 2000.

The kernel reaches the tensors through their data pointers (a pointer table built
each step; nothing is copied), so it needs CPU tensors that are contiguous and
whose state has the parameter's dtype.  Others take the foreach or single-tensor
path (the caller decides, see :func:`eligible`).

The per-element arithmetic mirrors :mod:`._torch_single` line by line, with the
same operations in the same order, so in ``op_order="spec"`` it reproduces the
single-tensor path (and hence :func:`radam_ref.step`) bit for bit.  In
``op_order="torch"`` the lerp is written as torch's vectorised CPU lerp computes
it (a fused multiply-add); the other torch kernels may contract differently, so
agreement there is to an ulp or two (tested).  The step scalars come from the
host (:class:`HostScalars`, exact float64) and are rounded to the tensor dtype
once, as torch rounds a Python scalar; the step counters (0-d float64 CPU
tensors) are read and advanced by the kernel module itself.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from radam_ref import RAdamConfig

from ._torch_scalars import HostScalars

__all__ = ["AVAILABLE", "UNAVAILABLE_REASON", "FusedPlan", "eligible", "is_dtensor", "launch_plan",
           "local_tensor", "update_fused"]

try:  # numba is optional: without it the foreach path is used.
    import numba
    from numba import njit, prange, types
    from numba.extending import intrinsic
    from llvmlite import ir as llvmlite_ir
except ImportError as exc:  # pragma: no cover - exercised only without numba
    AVAILABLE = False
    UNAVAILABLE_REASON = f"numba is not installed ({exc})"
else:
    AVAILABLE = True
    UNAVAILABLE_REASON = ""

_DTYPES = (torch.float32, torch.float64)
_REAL_OF_COMPLEX = {torch.complex64: torch.float32, torch.complex128: torch.float64}
_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}
CHUNK = 1 << 15  # elements per work item: 128 KiB of float32 per array
SERIAL_BELOW = 1 << 16  # steps over fewer elements than this run on one thread


def eligible(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether the fused kernel can update this parameter in place (plain tensors;
    the caller passes local shards for DTensors)."""
    dtype = _REAL_OF_COMPLEX.get(p.dtype, p.dtype)
    return (
        AVAILABLE
        and p.device.type == "cpu"
        and dtype in _DTYPES
        and g.dtype == p.dtype
        and m.dtype == p.dtype
        and v.dtype == p.dtype
        and p.is_contiguous()
        and g.is_contiguous()
        and m.is_contiguous()
        and v.is_contiguous()
        and not g.is_sparse
    )


if AVAILABLE:

    @intrinsic
    def _pointer(typingctx, address, like):
        """Reinterpret an integer address as a pointer to ``like``'s type."""
        ptr_type = types.CPointer(like)
        sig = ptr_type(address, like)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(ptr_type))

        return sig, codegen

    @intrinsic
    def _fma(typingctx, a, b, c):
        """a·b + c with one rounding (llvm.fma), as torch's vectorised lerp."""
        if not (a == b == c):
            return None
        sig = a(a, b, c)

        def codegen(context, builder, signature, args):
            ty = args[0].type
            fn = builder.module.declare_intrinsic(
                "llvm.fma", [ty], llvmlite_ir.FunctionType(ty, [ty, ty, ty]))
            return builder.call(fn, args)

        return sig, codegen

    @njit(cache=True)
    def _read_steps(step_ptrs):
        out = np.empty(step_ptrs.size, np.float64)
        zero = np.float64(0.0)
        for k in range(step_ptrs.size):
            out[k] = numba.carray(_pointer(step_ptrs[k], zero), 1)[0]
        return out

    @njit(cache=True)
    def _advance_steps(step_ptrs):
        zero = np.float64(0.0)
        for k in range(step_ptrs.size):
            s = numba.carray(_pointer(step_ptrs[k], zero), 1)
            s[0] = s[0] + 1.0

    @njit(parallel=True, cache=True)
    def _kernel(p_ptr, g_ptr, m_ptr, v_ptr, tensor_row, item_tensor, item_lo, item_n,
                rows_f, rows_i, consts, flags):
        """RAdam over work items.  See ``_torch_single`` for the math; the lines below
        follow it one operation at a time.

        rows_f[row] = bc1, bc1_next, bc2, sqrt(bc2), α·r_t, r_t, 1 − αλ   (dtype T)
        rows_i[row] = rectified, moves, decays
        consts = β₁, 1−β₁, β₂, 1−β₂, α, λ, ε, eps_root, 1, (1−β₁)−1   (dtype T)
        flags = maximize, l2, torch order, nesterov, eps after bias correction, eps_root ≠ 0
        """
        like = consts[0]  # a scalar of the tensor dtype, for the pointer casts
        itemsize = consts.itemsize
        b1 = consts[0]
        omb1 = consts[1]
        b2 = consts[2]
        omb2 = consts[3]
        lr = consts[4]
        wd = consts[5]
        eps = consts[6]
        eps_root = consts[7]
        one = consts[8]
        lerp_big = consts[9]
        maximize = flags[0] != 0
        l2 = flags[1] != 0
        torch_order = flags[2] != 0
        nesterov = flags[3] != 0
        eps_after = flags[4] != 0
        has_eps_root = flags[5] != 0
        lerp_small = abs(omb1) < 0.5
        for j in prange(item_tensor.size):
            k = item_tensor[j]
            n = item_n[j]
            offset = item_lo[j] * itemsize
            row = tensor_row[k]
            bc1 = rows_f[row, 0]
            bc1_next = rows_f[row, 1]
            bc2 = rows_f[row, 2]
            sqrt_bc2 = rows_f[row, 3]
            lr_r = rows_f[row, 4]
            r_t = rows_f[row, 5]
            decay = rows_f[row, 6]
            rectified = rows_i[row, 0] != 0
            moves = rows_i[row, 1] != 0
            decays = rows_i[row, 2] != 0
            p = numba.carray(_pointer(p_ptr[k] + offset, like), n)
            g = numba.carray(_pointer(g_ptr[k] + offset, like), n)
            m = numba.carray(_pointer(m_ptr[k] + offset, like), n)
            v = numba.carray(_pointer(v_ptr[k] + offset, like), n)
            for i in range(n):
                gi = g[i]
                if maximize:
                    gi = -gi
                pi = p[i]
                if torch_order:
                    if l2:
                        gi = _fma(pi, wd, gi)
                    diff = gi - m[i]
                    if lerp_small:
                        mi = _fma(omb1, diff, m[i])
                    else:
                        mi = _fma(lerp_big, diff, gi)
                    vi = v[i] * b2 + (omb2 * gi) * gi
                else:
                    if l2:
                        gi = gi + wd * pi
                    mi = b1 * m[i] + omb1 * gi
                    vi = b2 * v[i] + omb2 * (gi * gi)
                m[i] = mi
                v[i] = vi
                if nesterov:
                    m_hat = b1 * (mi / bc1_next) + omb1 * (gi / bc1)
                else:
                    m_hat = mi / bc1
                if decays:
                    pi = pi * decay
                if rectified:
                    if eps_after:
                        v_hat = vi / bc2
                        root = np.sqrt(v_hat + eps_root) if has_eps_root else np.sqrt(v_hat)
                        adaptive = one / (root + eps)
                    else:
                        root = np.sqrt(vi + eps_root) if has_eps_root else np.sqrt(vi)
                        adaptive = (one / (root + eps)) * sqrt_bc2
                    if torch_order:
                        pi = pi - ((m_hat * lr) * adaptive) * r_t
                    else:
                        pi = pi - lr_r * (m_hat * adaptive)
                elif moves:
                    if torch_order:
                        pi = pi - m_hat * lr
                    else:
                        pi = pi - lr * m_hat
                p[i] = pi


def _work_items(sizes: np.ndarray):
    """Split tensors of ``sizes`` elements into chunks: (tensor, start, length) arrays."""
    chunks = (sizes + (CHUNK - 1)) // CHUNK
    tensor = np.repeat(np.arange(sizes.size, dtype=np.int64), chunks)
    first = np.cumsum(chunks) - chunks
    local = np.arange(tensor.size, dtype=np.int64) - np.repeat(first, chunks)
    start = local * CHUNK
    length = np.minimum(CHUNK, sizes[tensor] - start)
    return tensor, start, length


def _rows(scalars: list[HostScalars], config: RAdamConfig, lr: float, dtype):
    f = np.array(
        [
            (s.bias_correction1, s.bias_correction1_next, s.bias_correction2,
             s.bias_correction2 ** 0.5, lr * s.r_t, s.r_t, 1.0 - lr * config.weight_decay)
            for s in scalars
        ],
        dtype=np.float64,
    ).astype(dtype)
    i = np.array([(s.rectified, s.moves, s.decays) for s in scalars], dtype=np.int64)
    return f, i


def _launch(np_dtype, pointers, sizes, config: RAdamConfig, lr: float, op_order: str,
            scalars_for) -> None:
    """Run the kernel over tensors given by ``pointers`` = (p, g, m, v, step) address
    arrays and ``sizes`` (real elements per tensor), all of dtype ``np_dtype``."""
    p_ptr, g_ptr, m_ptr, v_ptr, step_ptr = pointers
    taken = _read_steps(step_ptr)
    unique_taken, tensor_row = np.unique(taken, return_inverse=True)
    for value in unique_taken:
        if not (value >= 0 and float(value).is_integer()):
            raise ValueError(f"state step must be a non-negative integer count, got {value!r}")
    scalars = [scalars_for(int(t) + 1) for t in unique_taken]
    rows_f, rows_i = _rows(scalars, config, lr, np_dtype)
    b1, b2 = config.betas
    consts = np.array(
        [b1, 1.0 - b1, b2, 1.0 - b2, lr, config.weight_decay, config.eps,
         config.eps_root, 1.0, 0.0],
        dtype=np.float64,
    ).astype(np_dtype)
    consts[9] = consts[1] - np_dtype(1.0)  # torch's lerp: weight − 1 in the tensor dtype
    flags = np.array(
        [config.maximize,
         config.weight_decay_mode == "l2" and config.weight_decay != 0.0,
         op_order == "torch",
         config.nesterov,
         config.eps_placement == "after_bias_correction",
         config.eps_root != 0.0],
        dtype=np.int64,
    )
    item_tensor, item_lo, item_n = _work_items(sizes)
    args = (p_ptr, g_ptr, m_ptr, v_ptr, tensor_row.reshape(-1).astype(np.int64),
            item_tensor, item_lo, item_n, rows_f, rows_i, consts, flags)
    if int(sizes.sum()) < SERIAL_BELOW:
        # Waking the worker threads costs more than a small step itself (and far
        # more on a busy machine): small steps run on the calling thread.
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            _kernel(*args)
        finally:
            numba.set_num_threads(threads)
    else:
        _kernel(*args)
    _advance_steps(step_ptr)


def _real_numel(x: torch.Tensor) -> int:
    return x.numel() * (2 if x.is_complex() else 1)


def update_fused(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    state_steps: list[torch.Tensor],
    config: RAdamConfig,
    *,
    lr: float,
    op_order: str,
    scalars_for,
) -> None:
    """One RAdam step, in place, for tensors that pass :func:`eligible` and share a dtype.

    ``state_steps`` are 0-d float64 CPU tensors (steps taken so far); each is
    advanced by one.  ``scalars_for(t)`` returns the :class:`HostScalars` of step t.
    """
    if not params:
        return
    dtype = _REAL_OF_COMPLEX.get(params[0].dtype, params[0].dtype)
    sizes = np.fromiter((_real_numel(p) for p in params), np.int64, len(params))
    pointers = [np.fromiter((x.data_ptr() for x in xs), np.int64, len(xs))
                for xs in (params, grads, exp_avgs, exp_avg_sqs, state_steps)]
    _launch(_NUMPY[dtype], pointers, sizes, config, lr, op_order, scalars_for)
    # Tell autograd the parameters changed (the kernel wrote through pointers).
    torch.autograd.graph.increment_version(params)


class FusedPlan:
    """What the fused kernel needs about each parameter of one group, kept across steps.

    Building a pointer table costs a few Python calls per tensor; this plan keeps,
    for every parameter, its address, size and state tensors, and re-checks each
    step only what can change: the gradient (read every step), the parameter's
    address (``p.data`` may be replaced) and the identity of its state dict and
    state tensors (``load_state_dict`` or user code may replace them).  Any change
    rebuilds that parameter's entry, so the kernel never writes to a stale address.
    """

    def __init__(self, params: list, state) -> None:
        self.params = params
        self.count = len(params)
        self.state = state
        self.entries: list = [None] * len(params)
        # A parameter listed twice would be updated by two threads at once: the
        # optimizer then steps the group with the single-tensor path instead.
        self.distinct = len({id(p) for p in params}) == len(params)
        # When every parameter of the group is in the kernel's batch, its columns
        # (state dicts, tensors, address arrays) are kept for a vectorised check.
        self.columns = None

    def matches(self, params: list, state) -> bool:
        return params is self.params and len(params) == self.count and state is self.state

    def _entry(self, p: torch.Tensor, sd: dict):
        """Addresses and sizes of ``p`` and its state, or False if the kernel cannot
        take it.  DTensors (FSDP2) sharded alike are updated through their local
        shards: the step is elementwise, so each rank updates what it holds."""
        m, v, step = sd["exp_avg"], sd["exp_avg_sq"], sd["step"]
        placements = None
        if is_dtensor(p):
            if not (is_dtensor(m) and is_dtensor(v)
                    and m.placements == p.placements == v.placements):
                return False
            placements = p.placements
            p, m, v = local_tensor(p), local_tensor(m), local_tensor(v)
        elif is_dtensor(m) or is_dtensor(v):
            return False
        dtype = _REAL_OF_COMPLEX.get(p.dtype, p.dtype)
        if not (
            p.device.type == "cpu"
            and dtype in _DTYPES
            and m.dtype == p.dtype
            and v.dtype == p.dtype
            and p.is_contiguous()
            and m.is_contiguous()
            and v.is_contiguous()
            and isinstance(step, torch.Tensor)
            and not is_dtensor(step)
            and step.dtype == torch.float64
            and step.device.type == "cpu"
            and step.numel() == 1
        ):
            return False
        return (p.data_ptr(), _NUMPY[dtype], _real_numel(p), sd, sd["exp_avg"],
                sd["exp_avg_sq"], step, m.data_ptr(), v.data_ptr(), step.data_ptr(),
                placements)

    def collect(self, init_state):
        """Gather this step's work.

        ``init_state(p)`` returns the (lazily created) state dict of ``p``.
        Returns ``(batches, others)``: ``batches`` maps a numpy dtype to
        ``(params, pointer arrays, sizes, tensors to keep alive)``; ``others`` lists
        the parameters with a gradient that the kernel cannot take (they go to
        another path).  A non-contiguous gradient is read from a contiguous copy.
        """
        if self.columns is not None:
            batches = self._collect_unchanged()
            if batches is not None:
                return batches, []
        batches, others = self._collect(init_state)
        self.columns = None
        if not others and len(batches) == 1:
            (np_dtype, (params, pointers, sizes, _)), = batches.items()
            if len(params) == self.count and all(e[10] is None for e in self.entries):
                self.columns = (np_dtype, [e[3] for e in self.entries],
                                [e[4] for e in self.entries], [e[5] for e in self.entries],
                                [e[6] for e in self.entries], pointers[0].tolist(),
                                pointers, sizes)
        return batches, others

    def _collect_unchanged(self):
        """The batch of the last step with fresh gradient addresses, if nothing else
        changed (every parameter has a contiguous gradient, the same address, and the
        same state dict and state tensors); else None.  List-wide checks in C
        instead of a Python loop per parameter."""
        np_dtype, sds, ms, vs, steps, p_addresses, pointers, sizes = self.columns
        params = self.params
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            return None
        current = list(map(self.state.get, params))
        if not (all(map(operator.is_, current, sds))
                and [p.data_ptr() for p in params] == p_addresses
                and all(map(operator.is_, [sd.get("exp_avg") for sd in current], ms))
                and all(map(operator.is_, [sd.get("exp_avg_sq") for sd in current], vs))
                and all(map(operator.is_, [sd.get("step") for sd in current], steps))
                and all(g.layout is torch.strided and type(g) is torch.Tensor
                        and g.is_contiguous() for g in grads)):
            return None
        g_pointers = np.fromiter((g.data_ptr() for g in grads), np.int64, len(grads))
        return {np_dtype: (params, [pointers[0], g_pointers, *pointers[2:]], sizes, grads)}

    def _collect(self, init_state):
        """The per-parameter form of :meth:`collect` (re-validates every entry)."""
        state = self.state
        rows: dict = {}  # numpy dtype -> (params, [(p, g, m, v, step addresses, size)])
        others = []
        entries = self.entries
        for index, p in enumerate(self.params):
            g = p.grad
            if g is None:
                continue
            sd = state.get(p)
            entry = entries[index]
            if entry is None or entry is False or sd is not entry[3] or (
                (p.data_ptr() if entry[10] is None else local_tensor(p).data_ptr()) != entry[0]
                or sd.get("exp_avg") is not entry[4]
                or sd.get("exp_avg_sq") is not entry[5]
                or sd.get("step") is not entry[6]
            ):
                sd = init_state(p)
                entry = entries[index] = self._entry(p, sd)
            if entry is False or g.is_sparse:
                others.append(p)
                continue
            if entry[10] is not None:
                if not (is_dtensor(g) and g.placements == entry[10]):
                    others.append(p)
                    continue
                g = local_tensor(g)
            batch = rows.get(entry[1])
            if batch is None:
                batch = rows[entry[1]] = ([], [], [])
            if not g.is_contiguous():  # the kernel only reads g: a contiguous copy will do
                g = g.contiguous()
                batch[2].append(g)  # kept alive until the kernel has run
            batch[0].append(p)
            batch[1].append((entry[0], g.data_ptr(), entry[7], entry[8], entry[9], entry[2]))
        batches = {}
        for np_dtype, (ps, table, copies) in rows.items():
            table = np.array(table, dtype=np.int64).T
            batches[np_dtype] = (ps, [np.ascontiguousarray(column) for column in table[:5]],
                                 np.ascontiguousarray(table[5]), copies)
        return batches, others


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


def launch_plan(batches: dict, config: RAdamConfig, *, lr: float, op_order: str,
                scalars_for) -> None:
    """Run the kernel for every dtype batch gathered by :meth:`FusedPlan.collect`."""
    for np_dtype, (params, pointers, sizes, _keep_alive) in batches.items():
        _launch(np_dtype, pointers, sizes, config, lr, op_order, scalars_for)
        torch.autograd.graph.increment_version(params)
