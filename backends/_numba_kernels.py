"""The CPU kernel of RAdam: the element update and the multi-tensor loop.

One kernel serves both CPU backends: :mod:`radam_ref.backends.numpy` calls it on
its arrays, and the torch backend's CPU path on zero-copy NumPy views of its
tensors (``_torch_fused_cpu``).  ``_element`` is a line-by-line mirror of
``radam_element`` in ``radam_element.cuh`` (the CUDA element update); read them
side by side.  These two are the only renderings of the element update.
``step_kernel`` runs it over every tensor of one dtype group in one parallel
pass: a table of addresses (p, g, m, v per tensor) and a table of chunks
(tensor, first element, end) replace one call per array, and ``prange`` spreads
the chunks over all cores.  Compiled with ``error_model="numpy"`` (IEEE division:
x/0 is ±inf or NaN, no exception check in the loop) and without fastmath (no
reassociation, no FMA contraction), so each operation rounds like the spec's.

Storage and compute dtypes: the arithmetic runs in the dtype of the scalar
array (float32 or float64).  Parameters, gradients and moments are each read in
their storage dtype and widened exactly: float32 and float64 as is, float16
through its bit patterns (uint16: LLVM ``fpext``), bfloat16 through its bit
patterns (int16: the 16 bits become the high half of a float32).  Results are
rounded once back to their storage dtype, to nearest even: ``fptrunc`` for
float16 and float32, and for bfloat16 the integer rule of ``radam_bf16_bits_rn``
in ``radam_element.cuh`` (add 0x7FFF plus the lowest kept bit, keep the high 16
bits; a NaN stays a quiet NaN with its sign).  So a bfloat16 or float16 parameter
with float32 moments costs one pass over memory (2 + 2 + 4 + 4 bytes read, 2 + 4
+ 4 written) and its update equals the float32 update of the widened values,
rounded once.

Every address the kernels dereference comes from a table the caller built from
arrays it validated and keeps alive (``_numpy_plan``, ``_torch_fused_cpu``): the
kernels themselves check nothing (numba does not bounds-check raw pointers).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit, prange
from numba.core import types
from numba.extending import intrinsic
from llvmlite import ir

__all__ = ["step_kernel", "step_kernel_serial", "first_nonfinite_tensor", "parallel_copy",
           "parallel_accumulate", "read_steps", "advance_steps", "FLOAT16_BITS", "BFLOAT16_BITS",
           "LAUNCH_LOCK", "ARITH_SPEC", "ARITH_SPEC_TORCH", "ARITH_TORCH", "N_FLAGS", "N_SCALARS"]

#: Held around every launch: numba's default threading layer is not re-entrant, and
#: both CPU backends launch these kernels.
LAUNCH_LOCK = threading.Lock()

#: NumPy dtype the kernels see for float16 storage (its bit patterns).
FLOAT16_BITS = np.uint16
#: NumPy dtype the kernels see for bfloat16 storage (its bit patterns).
BFLOAT16_BITS = np.int16


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


def _to_compute(builder, value, target):
    """fpext/fptrunc ``value`` (an LLVM float) to the LLVM float type ``target``."""
    if value.type == target:
        return value
    if isinstance(target, ir.DoubleType) or (isinstance(target, ir.FloatType)
                                             and isinstance(value.type, ir.HalfType)):
        return builder.fpext(value, target)
    return builder.fptrunc(value, target)


@intrinsic
def _widen(typingctx, x, proto):
    """Storage value -> the compute type (``proto``'s element type), exactly:
    float16 bits (uint16) and bfloat16 bits (int16) become float32 (then float64 if
    the compute type is float64); float32 -> float64 is exact too."""
    if not (isinstance(proto, types.Array) and isinstance(proto.dtype, types.Float)):
        return None
    out = proto.dtype
    if isinstance(x, types.Float):
        if x.bitwidth > out.bitwidth:
            return None

        def codegen(context, builder, signature, args):
            return _to_compute(builder, args[0], context.get_value_type(out))
        return out(x, proto), codegen
    if x == types.uint16:
        def codegen(context, builder, signature, args):
            half = builder.bitcast(args[0], ir.HalfType())
            return _to_compute(builder, half, context.get_value_type(out))
        return out(x, proto), codegen
    if x == types.int16:
        def codegen(context, builder, signature, args):
            wide = builder.shl(builder.zext(args[0], ir.IntType(32)), ir.Constant(ir.IntType(32), 16))
            single = builder.bitcast(wide, ir.FloatType())
            return _to_compute(builder, single, context.get_value_type(out))
        return out(x, proto), codegen
    return None


def _bf16_bits_rn(builder, single):
    """float32 -> bfloat16 bits (i16), round to nearest even; NaN stays a quiet NaN
    with its sign (the rule of ``radam_bf16_bits_rn`` in radam_element.cuh)."""
    i32 = ir.IntType(32)
    u = builder.bitcast(single, i32)
    high = builder.lshr(u, ir.Constant(i32, 16))
    magnitude = builder.and_(u, ir.Constant(i32, 0x7FFFFFFF))
    is_nan = builder.icmp_unsigned(">", magnitude, ir.Constant(i32, 0x7F800000))
    quiet = builder.or_(high, ir.Constant(i32, 0x0040))
    odd = builder.and_(high, ir.Constant(i32, 1))
    rounded = builder.lshr(builder.add(builder.add(u, ir.Constant(i32, 0x7FFF)), odd),
                           ir.Constant(i32, 16))
    return builder.trunc(builder.select(is_nan, quiet, rounded), ir.IntType(16))


@intrinsic
def _narrow(typingctx, x, proto):
    """Compute value -> ``proto``'s storage type, rounded once to nearest even:
    float16 bits (uint16, LLVM ``fptrunc``), bfloat16 bits (int16, from float32),
    float32 (from float64); identity when the storage is the compute type."""
    if not (isinstance(proto, types.Array) and isinstance(x, types.Float)):
        return None
    storage = proto.dtype
    if storage == x:
        def codegen(context, builder, signature, args):
            return args[0]
        return x(x, proto), codegen
    if isinstance(storage, types.Float) and storage.bitwidth < x.bitwidth:
        def codegen(context, builder, signature, args):
            return builder.fptrunc(args[0], context.get_value_type(storage))
        return storage(x, proto), codegen
    if storage == types.uint16:
        def codegen(context, builder, signature, args):
            half = builder.fptrunc(args[0], ir.HalfType())
            return builder.bitcast(half, ir.IntType(16))
        return types.uint16(x, proto), codegen
    if storage == types.int16 and x == types.float32:
        def codegen(context, builder, signature, args):
            return _bf16_bits_rn(builder, args[0])
        return types.int16(x, proto), codegen
    return None


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c with one rounding (``llvm.fma``), as torch's vectorised CPU kernels."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


# Update kinds, as in radam_element.cuh / _element.py.
_MOMENTS_ONLY = 0
_MOMENTUM = 1
_ADAPTIVE = 2
# Decoupled decay forms, as in radam_element.cuh / _element.py.
_DECAY_SUBTRACT = 1
_DECAY_MULTIPLY = 2

#: Arithmetic orders of the element update (flag 7; the CUDA source has the first).
#: The spec's operations in the spec's order, as NumPy evaluates them.
ARITH_SPEC = 0
#: The same, as torch evaluates the spec: ``float / tensor`` is ``tensor.reciprocal()
#: * float``, so D_t = (1/(sqrt(v) + ε)) · sqrt(1 − β₂ᵗ).
ARITH_SPEC_TORCH = 1
#: torch.optim.RAdam's order: lerp and L2 decay as fused multiply-adds,
#: v·β₂ + ((1 − β₂)g)g, and θ − ((m̂·α)·D_t)·r_t.
ARITH_TORCH = 2

#: Length of the flag array: ElementFlags (7) + the arithmetic order.
N_FLAGS = 8
#: Length of the scalar array: ElementScalars (13) + α, r_t, (1 − β₁) − 1.
N_SCALARS = 16


@njit(error_model="numpy", cache=True)
def _element(update, eps_after, eps_root_flag, l2, decay, nesterov, maximize, arith,
             beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay_factor,
             bias_correction1, bias_correction1_next, sqrt_bias_correction2,
             bias_correction2, eps, eps_root, step_size, lr, r_t, lerp_big,
             p, g, m, v):
    """Mirror of radam_element (radam_element.cuh); returns the new (p, m, v).

    ``arith`` selects how the same operations are evaluated (ARITH_* above); with
    ARITH_SPEC this is radam_element line for line.
    """
    if maximize:
        g = -g
    if arith == ARITH_TORCH:
        if l2:
            g = _fma(p, weight_decay, g)                    # g.add(θ, alpha=λ)
        diff = g - m                                        # m.lerp_(g, 1 − β₁)
        if abs(one_minus_beta1) < 0.5:
            m = _fma(one_minus_beta1, diff, m)
        else:
            m = _fma(lerp_big, diff, g)
        v = v * beta2 + (one_minus_beta2 * g) * g           # v.mul_(β₂).addcmul_(g, g)
    else:
        if l2:
            g = g + weight_decay * p
        m = beta1 * m + one_minus_beta1 * g                 # Alg. 2, line 6
        v = beta2 * v + one_minus_beta2 * (g * g)           # Alg. 2, line 5
    if nesterov:                                            # Alg. 2, line 7
        m_hat = (beta1 * (m / bias_correction1_next)
                 + one_minus_beta1 * (g / bias_correction1))
    else:
        m_hat = m / bias_correction1
    if decay == _DECAY_SUBTRACT:                            # section 5
        p = p - decay_factor * p
    elif decay == _DECAY_MULTIPLY:
        p = p * decay_factor
    if update == _ADAPTIVE:                                 # D_t, Alg. 2 line 10
        if eps_after:
            v_hat = v / bias_correction2
            root = _sqrt(v_hat + eps_root) if eps_root_flag else _sqrt(v_hat)
            adaptive = _one(v) / (root + eps)
        else:
            root = _sqrt(v + eps_root) if eps_root_flag else _sqrt(v)
            if arith == ARITH_SPEC:
                adaptive = sqrt_bias_correction2 / (root + eps)
            else:
                adaptive = (_one(v) / (root + eps)) * sqrt_bias_correction2
        if arith == ARITH_TORCH:
            p = p - ((m_hat * lr) * adaptive) * r_t
        else:
            p = p - step_size * (m_hat * adaptive)          # Alg. 2, line 12
    elif update == _MOMENTUM:
        if arith == ARITH_TORCH:
            p = p - m_hat * lr
        else:
            p = p - step_size * m_hat                       # Alg. 2, line 14
    return p, m, v


@njit(nogil=True, error_model="numpy", cache=True)
def _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end,
                row_length, ndims, shapes, p_strides, g_strides,
                flags, scalars, p_proto, s_proto):
    """Chunk ``c`` of :func:`step_kernel` (arguments as there)."""
    update, eps_after, eps_root_flag = flags[0], flags[1], flags[2]
    l2, decay, nesterov, maximize, arith = flags[3], flags[4], flags[5], flags[6], flags[7]
    (beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay, decay_factor,
     bias_correction1, bias_correction1_next, sqrt_bias_correction2, bias_correction2,
     eps, eps_root, step_size, lr, r_t, lerp_big) = (
        scalars[0], scalars[1], scalars[2], scalars[3], scalars[4], scalars[5], scalars[6],
        scalars[7], scalars[8], scalars[9], scalars[10], scalars[11], scalars[12],
        scalars[13], scalars[14], scalars[15])
    # θ is read only when something uses it and written only when it changes.
    writes_p = update != _MOMENTS_ONLY or decay != 0
    reads_p = writes_p or l2 != 0
    zero = _zero(beta1)
    k = chunk_tensor[c]
    start = chunk_start[c]
    end = chunk_end[c]
    m = _pointer(addresses[k, 2], s_proto)
    v = _pointer(addresses[k, 3], s_proto)
    if row_length[k] == 0:
        p = _pointer(addresses[k, 0], p_proto)
        g = _pointer(addresses[k, 1], p_proto)
        for i in range(start, end):
            pi = _widen(p[i], scalars) if reads_p else zero
            pi, mi, vi = _element(
                update, eps_after, eps_root_flag, l2, decay, nesterov, maximize, arith,
                beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay,
                decay_factor, bias_correction1, bias_correction1_next,
                sqrt_bias_correction2, bias_correction2, eps, eps_root, step_size,
                lr, r_t, lerp_big,
                pi, _widen(g[i], scalars), _widen(m[i], scalars), _widen(v[i], scalars))
            if writes_p:
                p[i] = _narrow(pi, p_proto)
            m[i] = _narrow(mi, s_proto)
            v[i] = _narrow(vi, s_proto)
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
                pi = _widen(p[0], scalars) if reads_p else zero
                pi, mi, vi = _element(
                    update, eps_after, eps_root_flag, l2, decay, nesterov, maximize, arith,
                    beta1, one_minus_beta1, beta2, one_minus_beta2, weight_decay,
                    decay_factor, bias_correction1, bias_correction1_next,
                    sqrt_bias_correction2, bias_correction2, eps, eps_root, step_size,
                    lr, r_t, lerp_big,
                    pi, _widen(g[0], scalars), _widen(m[i], scalars), _widen(v[i], scalars))
                if writes_p:
                    p[0] = _narrow(pi, p_proto)
                m[i] = _narrow(mi, s_proto)
                v[i] = _narrow(vi, s_proto)


@njit(parallel=True, error_model="numpy", cache=True)
def step_kernel(addresses, chunk_tensor, chunk_start, chunk_end,
                row_length, ndims, shapes, p_strides, g_strides,
                flags, scalars, p_proto, s_proto):
    """One RAdam step of every tensor of one dtype group, in place, on all cores.

    Args:
        addresses: int64[n, 4], the data addresses of p, g, m, v of each tensor.
        chunk_tensor, chunk_start, chunk_end: int64[c], chunk c covers elements
            [start, end) of tensor ``chunk_tensor[c]`` (whole rows if strided).
        row_length: int64[n], 0 for a C-contiguous p and g; else the length of the
            last axis, and ``ndims``/``shapes``/``p_strides``/``g_strides`` (bytes)
            describe the strided p and g (m and v are always C-contiguous).
        flags: int64[N_FLAGS]: ElementFlags, then the arithmetic order (ARITH_*).
        scalars: compute dtype[N_SCALARS]: ElementScalars, then α, r_t, (1 − β₁) − 1
            (read by ARITH_TORCH only); its dtype is the compute dtype.
        p_proto, s_proto: empty arrays of the storage dtypes the kernel sees for
            p and g (float64, float32, uint16 = float16 bits, int16 = bfloat16
            bits) and for m and v (the same choices, never narrower than p's).
    """
    for c in prange(chunk_tensor.size):
        _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end, row_length, ndims,
                    shapes, p_strides, g_strides, flags, scalars, p_proto, s_proto)


@njit(nogil=True, error_model="numpy", cache=True)
def step_kernel_serial(addresses, chunk_tensor, chunk_start, chunk_end,
                       row_length, ndims, shapes, p_strides, g_strides,
                       flags, scalars, p_proto, s_proto):
    """:func:`step_kernel` on the calling thread (small steps: no thread wake-up)."""
    for c in range(chunk_tensor.size):
        _step_chunk(c, addresses, chunk_tensor, chunk_start, chunk_end, row_length, ndims,
                    shapes, p_strides, g_strides, flags, scalars, p_proto, s_proto)


@njit(nogil=True, error_model="numpy", cache=True)
def first_nonfinite_tensor(addresses, chunk_tensor, chunk_start, chunk_end,
                           row_length, ndims, shapes, g_strides, g_proto, c_proto):
    """The smallest tensor index whose gradient has a NaN or ±inf, or -1.

    Reads the gradients only (same tables as :func:`step_kernel`; ``c_proto`` is an
    array of the compute dtype).
    """
    n_tensors = addresses.shape[0]
    found = n_tensors
    for c in range(chunk_tensor.size):
        k = chunk_tensor[c]
        bad = False
        if row_length[k] == 0:
            g = _pointer(addresses[k, 1], g_proto)
            for i in range(chunk_start[c], chunk_end[c]):
                x = _widen(g[i], c_proto)
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
                                        g_proto)[0], c_proto)
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


@njit(nogil=True, cache=True)
def read_steps(addresses, out):
    """``out[k]`` = the float64 at ``addresses[k]`` (the torch backend's 0-d step
    counters, whose addresses it validated and keeps alive).  Returns ``(bad, low,
    high)``: the first k whose value is not a non-negative integer below 2⁵³ (or -1),
    and the smallest and largest value."""
    proto = out[:0]
    bad = -1
    low = np.inf
    high = -np.inf
    for k in range(addresses.size):
        x = _pointer(addresses[k], proto)[0]
        out[k] = x
        if bad < 0 and not (x >= 0.0 and x < 9007199254740992.0 and x == np.floor(x)):
            bad = k
        low = min(low, x)
        high = max(high, x)
    return bad, low, high


@njit(nogil=True, cache=True)
def advance_steps(addresses, proto):
    """Add 1 to the float64 at each of ``addresses`` (``proto``: an empty float64 array)."""
    for k in range(addresses.size):
        counter = _pointer(addresses[k], proto)
        counter[0] = counter[0] + 1.0
