"""Numba kernels of the NumPy backend: the element update and the multi-tensor loop.

``_element`` is a line-by-line mirror of ``radam_element`` in
``radam_element.cuh`` (the CUDA element update); read them side by side.
``step_kernel`` runs it over every tensor of one dtype group in one parallel
pass: a table of addresses (p, g, m, v per tensor) and a table of chunks
(tensor, first element, end) replace one call per array, and ``prange`` spreads
the chunks over all cores.  Compiled with ``error_model="numpy"`` (IEEE division:
x/0 is ±inf or NaN, no exception check in the loop) and without fastmath (no
reassociation, no FMA contraction), so each operation rounds like the spec's.

Storage: float32 and float64 tensors are used as is; float16 tensors are read
through their bit patterns (uint16) and widened exactly to float32, and the new θ
is rounded once back to float16 (LLVM ``fpext``/``fptrunc``: IEEE round to
nearest even).  Their moments are float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic
from llvmlite import ir

__all__ = ["step_kernel", "step_kernel_serial", "first_nonfinite_tensor", "parallel_copy", "parallel_accumulate",
           "FLOAT16_BITS"]

#: NumPy dtype the kernels see for float16 storage (its bit patterns).
FLOAT16_BITS = np.uint16


@intrinsic
def _pointer(typingctx, address, proto):
    """``address`` (int64) as a pointer to ``proto``'s element type."""
    if not isinstance(proto, types.Array):
        return None
    sig = types.CPointer(proto.dtype)(address, proto)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

    return sig, codegen


@intrinsic
def _sqrt(typingctx, x):
    """IEEE square root (``llvm.sqrt``: correctly rounded, vectorisable)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.sqrt", [args[0].type])
        return builder.call(fn, args)

    return x(x), codegen


@intrinsic
def _one(typingctx, x):
    """1 in the floating type of ``x`` (the CUDA source's ``T(1)``)."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return context.get_constant(signature.return_type, 1)

    return x(x), codegen


@intrinsic
def _zero(typingctx, x):
    """0 in the floating type of ``x``."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return context.get_constant(signature.return_type, 0)

    return x(x), codegen


@intrinsic
def _widen(typingctx, x):
    """Storage value -> compute value: float16 bits (uint16) -> float32, exactly;
    float32/float64 unchanged."""
    if isinstance(x, types.Float):
        def codegen(context, builder, signature, args):
            return args[0]
        return x(x), codegen
    if x == types.uint16:
        def codegen(context, builder, signature, args):
            half = builder.bitcast(args[0], ir.HalfType())
            return builder.fpext(half, ir.FloatType())
        return types.float32(x), codegen
    return None


@intrinsic
def _narrow(typingctx, x, proto):
    """Compute value -> ``proto``'s storage type: float32 -> float16 bits rounded to
    nearest even; identity when the storage is the compute type."""
    if not isinstance(proto, types.Array):
        return None
    if proto.dtype == x:
        def codegen(context, builder, signature, args):
            return args[0]
        return x(x, proto), codegen
    if proto.dtype == types.uint16 and x == types.float32:
        def codegen(context, builder, signature, args):
            half = builder.fptrunc(args[0], ir.HalfType())
            return builder.bitcast(half, ir.IntType(16))
        return types.uint16(x, proto), codegen
    return None


# Update kinds, as in radam_element.cuh / _element.py.
_MOMENTS_ONLY = 0
_MOMENTUM = 1
_ADAPTIVE = 2


@njit(error_model="numpy", cache=True)
def _element(update, eps_after, eps_root_flag, l2, decay, nesterov, maximize,
             beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay_factor,
             bias_correction1, bias_correction1_next, sqrt_bias_correction2,
             bias_correction2, eps, eps_root, step_size,
             p, g, m, v):
    """Mirror of radam_element (radam_element.cuh); returns the new (p, m, v)."""
    if maximize:
        g = -g
    if l2:
        g = g + weight_decay * p
    m = beta1 * m + one_minus_beta1 * g                     # Alg. 2, line 6
    v = beta2 * v + one_minus_beta2 * (g * g)               # Alg. 2, line 5
    if nesterov:                                            # Alg. 2, line 7
        m_hat = (beta1 * (m / bias_correction1_next)
                 + one_minus_beta1 * (g / bias_correction1))
    else:
        m_hat = m / bias_correction1
    if decay:
        p = p * decay_factor                                # section 5
    if update == _ADAPTIVE:                                 # D_t, Alg. 2 line 10
        if eps_after:
            v_hat = v / bias_correction2
            root = _sqrt(v_hat + eps_root) if eps_root_flag else _sqrt(v_hat)
            adaptive = _one(v) / (root + eps)
        else:
            root = _sqrt(v + eps_root) if eps_root_flag else _sqrt(v)
            adaptive = sqrt_bias_correction2 / (root + eps)
        p = p - step_size * (m_hat * adaptive)              # Alg. 2, line 12
    elif update == _MOMENTUM:
        p = p - step_size * m_hat                           # Alg. 2, line 14
    return p, m, v


@njit(nogil=True, error_model="numpy", cache=True)
def _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end,
                row_length, ndims, shapes, p_strides, g_strides,
                flags, scalars, p_proto, m_proto):
    """Chunk ``c`` of :func:`step_kernel` (arguments as there)."""
    update, eps_after, eps_root_flag = flags[0], flags[1], flags[2]
    l2, decay, nesterov, maximize = flags[3], flags[4], flags[5], flags[6]
    (beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay_factor,
     bias_correction1, bias_correction1_next, sqrt_bias_correction2, bias_correction2,
     eps, eps_root, step_size) = (
        scalars[0], scalars[1], scalars[2], scalars[3], scalars[4], scalars[5], scalars[6],
        scalars[7], scalars[8], scalars[9], scalars[10], scalars[11], scalars[12])
    # θ is read only when something uses it and written only when it changes.
    writes_p = update != _MOMENTS_ONLY or decay != 0
    reads_p = writes_p or l2 != 0
    zero = _zero(beta1)
    k = chunk_tensor[c]
    start = chunk_start[c]
    end = chunk_end[c]
    m = _pointer(addresses[k, 2], m_proto)
    v = _pointer(addresses[k, 3], m_proto)
    if row_length[k] == 0:
        p = _pointer(addresses[k, 0], p_proto)
        g = _pointer(addresses[k, 1], p_proto)
        for i in range(start, end):
            pi = _widen(p[i]) if reads_p else zero
            pi, mi, vi = _element(
                update, eps_after, eps_root_flag, l2, decay, nesterov, maximize,
                beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay,
                decay_factor, bias_correction1, bias_correction1_next,
                sqrt_bias_correction2, bias_correction2, eps, eps_root, step_size,
                pi, _widen(g[i]), m[i], v[i])
            if writes_p:
                p[i] = _narrow(pi, p_proto)
            m[i] = mi
            v[i] = vi
    else:
        length = row_length[k]
        last = ndims[k] - 1
        p_step = p_strides[k, last]
        g_step = g_strides[k, last]
        for row in range(start // length, end // length):
            # Byte offsets of the row's first element in p and g.
            rest = row
            p_offset = 0
            g_offset = 0
            for d in range(last - 1, -1, -1):
                index = rest % shapes[k, d]
                rest //= shapes[k, d]
                p_offset += index * p_strides[k, d]
                g_offset += index * g_strides[k, d]
            p_row = addresses[k, 0] + p_offset
            g_row = addresses[k, 1] + g_offset
            first = row * length
            for j in range(length):
                p = _pointer(p_row + j * p_step, p_proto)
                g = _pointer(g_row + j * g_step, p_proto)
                i = first + j
                pi = _widen(p[0]) if reads_p else zero
                pi, mi, vi = _element(
                    update, eps_after, eps_root_flag, l2, decay, nesterov, maximize,
                    beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay,
                    decay_factor, bias_correction1, bias_correction1_next,
                    sqrt_bias_correction2, bias_correction2, eps, eps_root, step_size,
                    pi, _widen(g[0]), m[i], v[i])
                if writes_p:
                    p[0] = _narrow(pi, p_proto)
                m[i] = mi
                v[i] = vi




@njit(parallel=True, error_model="numpy", cache=True)
def step_kernel(addresses, chunk_tensor, chunk_start, chunk_end,
                row_length, ndims, shapes, p_strides, g_strides,
                flags, scalars, p_proto, m_proto):
    """One RAdam step of every tensor of one dtype group, in place, on all cores.

    Args:
        addresses: int64[n, 4], the data addresses of p, g, m, v of each tensor.
        chunk_tensor, chunk_start, chunk_end: int64[c], chunk c covers elements
            [start, end) of tensor ``chunk_tensor[c]`` (whole rows if strided).
        row_length: int64[n], 0 for a C-contiguous p and g; else the length of the
            last axis, and ``ndims``/``shapes``/``p_strides``/``g_strides`` (bytes)
            describe the strided p and g (m and v are always C-contiguous).
        flags: int64[7], ElementFlags.  scalars: compute dtype[13], ElementScalars.
        p_proto, m_proto: empty arrays of the storage and compute dtypes.
    """
    for c in prange(chunk_tensor.size):
        _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end, row_length, ndims,
                    shapes, p_strides, g_strides, flags, scalars, p_proto, m_proto)


@njit(nogil=True, error_model="numpy", cache=True)
def step_kernel_serial(addresses, chunk_tensor, chunk_start, chunk_end,
                       row_length, ndims, shapes, p_strides, g_strides,
                       flags, scalars, p_proto, m_proto):
    """:func:`step_kernel` on the calling thread (small steps: no thread wake-up)."""
    for c in range(chunk_tensor.size):
        _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end, row_length, ndims,
                    shapes, p_strides, g_strides, flags, scalars, p_proto, m_proto)


@njit(nogil=True, error_model="numpy", cache=True)
def first_nonfinite_tensor(addresses, chunk_tensor, chunk_start, chunk_end,
                           row_length, ndims, shapes, g_strides, g_proto):
    """The smallest tensor index whose gradient has a NaN or ±inf, or -1.

    Reads the gradients only (same tables as :func:`step_kernel`).
    """
    n_tensors = addresses.shape[0]
    found = n_tensors
    for c in range(chunk_tensor.size):
        k = chunk_tensor[c]
        bad = False
        if row_length[k] == 0:
            g = _pointer(addresses[k, 1], g_proto)
            for i in range(chunk_start[c], chunk_end[c]):
                x = _widen(g[i])
                if not np.isfinite(x):
                    bad = True
        else:
            length = row_length[k]
            last = ndims[k] - 1
            for row in range(chunk_start[c] // length, chunk_end[c] // length):
                rest = row
                offset = 0
                for d in range(last - 1, -1, -1):
                    offset += (rest % shapes[k, d]) * g_strides[k, d]
                    rest //= shapes[k, d]
                for j in range(length):
                    x = _widen(_pointer(addresses[k, 1] + offset + j * g_strides[k, last],
                                        g_proto)[0])
                    if not np.isfinite(x):
                        bad = True
        found = min(found, k if bad else n_tensors)
    return found if found < n_tensors else -1


@njit(parallel=True, cache=True)
def parallel_copy(destination, source):
    """``destination[:] = source`` over all cores (the benchmark's roofline)."""
    for i in prange(source.size):
        destination[i] = source[i]


@njit(parallel=True, cache=True)
def parallel_accumulate(destination, source):
    """``destination += source`` over all cores: in-place read-modify-write traffic
    (no write-allocate reads), the benchmark's second bandwidth reference."""
    for i in prange(source.size):
        destination[i] += source[i]
