"""The step scalars of RAdam: ρ∞, ρ_t, r_t and the two bias corrections.

Everything in this module is a scalar that depends only on the step number t
and on (β₁, β₂), never on the data.  Algorithm 2 of Liu et al. (2020) defines

    ρ∞  = 2 / (1 − β₂) − 1                                   (Alg. 2, line 2)
    ρ_t = ρ∞ − 2 t β₂ᵗ / (1 − β₂ᵗ)                           (Alg. 2, line 8; §4.1)
    r_t = sqrt( (ρ_t − 4)(ρ_t − 2) ρ∞ / ((ρ∞ − 4)(ρ∞ − 2) ρ_t) )   (Alg. 2, line 11; §4.2)

and the update uses the bias corrections 1 − β₁ᵗ (line 7) and 1 − β₂ᵗ (line 10).

Numerics
--------
Written naively, ``rho_inf - 2*t*b2**t / (1 - b2**t)`` cancels catastrophically:
at t = 1 it subtracts two numbers of size ρ∞ ≈ 2/(1−β₂) to get ρ_1 = 1, so the
result loses log10(ρ∞) digits (3 for β₂ = 0.999, 7 for β₂ = 1 − 1e-7), and in
float32 it is mostly noise.  ``1 − β₂ᵗ`` cancels as well when β₂ᵗ ≈ 1.

:func:`schedule` therefore evaluates every formula in decimal arithmetic at
60 significant digits, starting from the *exact* value of the float64 β
(``Decimal(float)`` is exact), and rounds each result once to float64 at the
end.  The worst cancellation above costs fewer than 20 digits, so every field is
the correctly rounded float64 of the exact value up to a last-place tie, far
inside the 1e-12 relative accuracy promised.  The cost, about 0.1 ms per call,
is paid once per optimizer step (and cached), never per element.

:func:`schedule_array` is the array form for a step count that is itself an
array (e.g. traced under ``jax.jit``).  It cannot leave the array world, so it
uses a cancellation-free float formula instead (derived in its docstring) with
the β-dependent constants computed exactly on the host.  Its results are within
a few ulp of the array's float dtype for ρ_t and the bias corrections; r_t has
the usual relative error growth ~ ε·ρ_t/(ρ_t − 4) right at the threshold.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import warnings
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext

__all__ = ["StepSchedule", "ArraySchedule", "schedule", "schedule_array", "COMPARISONS"]

#: The two threshold comparisons seen in published implementations.
COMPARISONS = (">", ">=")

_DIGITS = 60


def _check_beta(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not (0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _check_threshold(threshold, comparison) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold must be a real number, got {threshold!r}")
    threshold = float(threshold)
    if not (math.isfinite(threshold) and threshold >= 4.0):
        raise ValueError(
            "threshold must be a finite number >= 4 (r_t is real only for rho_t > 4), "
            f"got {threshold!r}"
        )
    if comparison not in COMPARISONS:
        raise ValueError(f"comparison must be one of {COMPARISONS}, got {comparison!r}")
    return threshold


def _check_step(t) -> int:
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"step t must be a positive integer, got {t!r}")
    t = int(t)
    if t < 1:
        raise ValueError(f"step t must be a positive integer, got {t!r}")
    return t


@dataclasses.dataclass(frozen=True, slots=True)
class StepSchedule:
    """The step scalars of RAdam at step ``t`` (Python floats, float64).

    Attributes:
        t: the step number, 1-based (Alg. 2, line 3).
        rho_inf: ρ∞ = 2/(1 − β₂) − 1, the maximum SMA length (Alg. 2, line 2).
        rho_t: ρ_t = ρ∞ − 2tβ₂ᵗ/(1 − β₂ᵗ), the SMA length at step t (line 8).
        rectified: whether the adaptive (rectified) update is used at step t,
            i.e. ``rho_t > threshold`` (or ``>=``, per ``comparison``) (line 9).
        r_t: the variance rectification term (line 11) when ``rectified``, else None.
        bias_correction1: 1 − β₁ᵗ (line 7).
        bias_correction2: 1 − β₂ᵗ (line 10).
    """

    t: int
    rho_inf: float
    rho_t: float
    rectified: bool
    r_t: float | None
    bias_correction1: float
    bias_correction2: float


def schedule(
    t: int,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    threshold: float = 4.0,
    comparison: str = ">",
) -> StepSchedule:
    """Return the exact step scalars of RAdam at step ``t`` (1-based).

    Args:
        t: step number, a positive integer (the first update is t = 1).
        beta1: first-moment decay β₁ ∈ [0, 1).
        beta2: second-moment decay β₂ ∈ [0, 1).
        threshold: the tractability threshold; the paper uses 4 (Alg. 2, line 9),
            torch.optim.RAdam and most ports use 5.  Must be ≥ 4.
        comparison: ``">"`` (paper, torch) or ``">="`` (authors' code, optax,
            TF-Addons).

    Returns:
        A :class:`StepSchedule`.  Each float is the float64 rounding of the value
        computed at 60 decimal digits from the exact binary values of the βs,
        so it is within 1e-15 relative of the exact value (see module docstring).

    Raises:
        TypeError, ValueError: naming the bad argument and its value.
    """
    t = _check_step(t)
    beta1 = _check_beta("beta1", beta1)
    beta2 = _check_beta("beta2", beta2)
    threshold = _check_threshold(threshold, comparison)
    return _schedule_cached(t, beta1, beta2, threshold, comparison)


_DECIMAL_CONTEXT = Context(prec=_DIGITS, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _context():
    """A private 60-digit decimal context (the caller's context is untouched)."""
    return localcontext(_DECIMAL_CONTEXT)


@functools.lru_cache(maxsize=64)
def _log_beta(beta: float) -> Decimal | None:
    """ln β at 60 digits (None for β = 0, where βᵗ = 0 for every t ≥ 1)."""
    if beta == 0.0:
        return None
    with _context():
        return Decimal(beta).ln()


def _pow_beta(beta: float, t: int) -> Decimal:
    """βᵗ at 60 digits, by exact-integer-exponent decimal power.

    At t = 1 this is β itself, so 1 − βᵗ is exact before its single rounding to
    float64 and equals the IEEE result of ``1.0 - beta`` bit for bit — also when
    1 − β falls exactly halfway between two floats (β < 1/2), where a value only
    60 digits close (e.g. exp(ln β)) could round to the other neighbour.
    """
    with _context():
        return Decimal(beta) ** t


@functools.lru_cache(maxsize=4096)
def _schedule_cached(
    t: int, beta1: float, beta2: float, threshold: float, comparison: str
) -> StepSchedule:
    with _context():
        one, two = Decimal(1), Decimal(2)
        b2 = Decimal(beta2)
        b1t = _pow_beta(beta1, t)
        b2t = _pow_beta(beta2, t)
        bc1 = one - b1t
        bc2 = one - b2t
        rho_inf = two / (one - b2) - one
        rho_t = rho_inf - two * t * b2t / bc2
        thr = Decimal(threshold)
        rectified = rho_t > thr if comparison == ">" else rho_t >= thr
        r_t = None
        if rectified:
            four = Decimal(4)
            r_sq = (rho_t - four) * (rho_t - two) * rho_inf / (
                (rho_inf - four) * (rho_inf - two) * rho_t
            )
            r_t = float(r_sq.sqrt())
        return StepSchedule(
            t=t,
            rho_inf=float(rho_inf),
            rho_t=float(rho_t),
            rectified=bool(rectified),
            r_t=r_t,
            bias_correction1=float(bc1),
            bias_correction2=float(bc2),
        )


# --------------------------------------------------------------------------- #
# Array form, for a step count that is an array (traced under jit).
# --------------------------------------------------------------------------- #

# Taylor coefficients of B(u) = u/(eᵘ − 1) − 1 + u/2 = Σ_{k≥1} B_{2k} u^{2k}/(2k)!
# (B_{2k}: Bernoulli numbers), highest degree first for Horner's rule in w = u².
# For u ≤ 1/2 the omitted terms are below 1e-19 of the first.
_B2K = {1: (1, 6), 2: (-1, 30), 3: (1, 42), 4: (-1, 30), 5: (5, 66), 6: (-691, 2730),
        7: (7, 6), 8: (-3617, 510)}
_BERNOULLI_SERIES = tuple(
    _B2K[k][0] / _B2K[k][1] / math.factorial(2 * k) for k in range(8, 0, -1)
)
_SERIES_CUTOFF = 0.5


class ArraySchedule(tuple):
    """Step scalars as 0-d arrays: ``(rho_inf, rho_t, rectified, r_t, bias_correction1,
    bias_correction2)``; ``r_t`` is 0 where not rectified."""

    __slots__ = ()
    _fields = ("rho_inf", "rho_t", "rectified", "r_t", "bias_correction1", "bias_correction2")

    def __new__(cls, *values):
        return tuple.__new__(cls, values)

    rho_inf = property(lambda self: self[0])
    rho_t = property(lambda self: self[1])
    rectified = property(lambda self: self[2])
    r_t = property(lambda self: self[3])
    bias_correction1 = property(lambda self: self[4])
    bias_correction2 = property(lambda self: self[5])


@functools.lru_cache(maxsize=64)
def _beta_constants(beta: float) -> tuple[float, float, float]:
    """Host constants for β, each correctly rounded from 60 digits.

    Returns (L, rho_inf, c0) with L = −ln β, ρ∞ = 2/(1−β) − 1, and
    c0 = 2/(1−β) − 2/L − 1 (≈ (1−β)/6 for β → 1).  L = inf for β = 0.
    """
    with _context():
        log_beta = _log_beta(beta)
        one, two = Decimal(1), Decimal(2)
        delta = one - Decimal(beta)
        rho_inf = two / delta - one
        if log_beta is None:
            return math.inf, float(rho_inf), math.nan
        big_l = -log_beta
        c0 = two / delta - two / big_l - one
        return float(big_l), float(rho_inf), float(c0)


def _float_dtype(xp, device):
    """float64 where the namespace really provides it on ``device``, else float32."""
    try:
        with warnings.catch_warnings():  # JAX without x64 warns, then truncates
            warnings.simplefilter("ignore")
            probe = xp.asarray(1.0, dtype=xp.float64, device=device)
        if probe.dtype == xp.float64:
            return xp.float64
    except Exception:  # noqa: BLE001 - e.g. a device without float64
        pass
    return xp.float32


def schedule_array(
    t,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    threshold: float = 4.0,
    comparison: str = ">",
    xp=None,
    dtype=None,
) -> ArraySchedule:
    """Array form of :func:`schedule` for an array step count ``t`` (e.g. traced).

    The βs, threshold and comparison are static Python values; only ``t`` may be
    an array (any integer or float dtype, 0-d).  The computation runs in float64
    when the namespace provides it on ``t``'s device (JAX: only with x64
    enabled), else in float32; pass ``dtype`` to force one.

    Derivation (cancellation-free ρ_t).  Let L = −ln β₂ and u = tL, so β₂ᵗ = e^{−u}
    and 2tβ₂ᵗ/(1 − β₂ᵗ) = (2/L)·u/(eᵘ − 1).  For u ≥ 1/2 the direct form
    ρ_t = ρ∞ − (2/L)·u/expm1(u) loses at most a factor ~4.  For u < 1/2 write
    u/(eᵘ − 1) = 1 − u/2 + B(u) with B(u) = Σ B_{2k}u^{2k}/(2k)! (Bernoulli), so

        ρ_t = c0 + t − (2/L)·B(u),   c0 = 2/(1 − β₂) − 2/L − 1,

    where c0 (≈ (1−β₂)/6) is computed exactly on the host and the remaining terms
    neither cancel nor lose digits.  1 − βᵗ = −expm1(−tL).

    Precision: ρ_t, 1−β₁ᵗ, 1−β₂ᵗ to a few ulp of the compute dtype over
    β₂ ∈ [0, 1 − 1e-7]; r_t to a few ulp times ρ_t/(ρ_t − 4).  In float32 the
    threshold decision can differ from :func:`schedule` only when ρ_t is within
    about 1e-6·ρ_t of the threshold.
    """
    import array_api_compat

    beta1 = _check_beta("beta1", beta1)
    beta2 = _check_beta("beta2", beta2)
    threshold = _check_threshold(threshold, comparison)
    if xp is None:
        xp = array_api_compat.array_namespace(t)
    dev = array_api_compat.device(t)
    if dtype is None:
        dtype = _float_dtype(xp, dev)
    tf = xp.astype(xp.asarray(t, device=dev), dtype)

    def const(value):
        return xp.asarray(value, dtype=dtype, device=dev)

    def one_minus_pow(beta):
        big_l = _beta_constants(beta)[0]
        if math.isinf(big_l):
            return xp.ones_like(tf)
        return -xp.expm1(-tf * big_l)

    bc1 = one_minus_pow(beta1)
    bc2 = one_minus_pow(beta2)
    big_l, rho_inf_f, c0 = _beta_constants(beta2)
    rho_inf = const(rho_inf_f)
    if math.isinf(big_l):  # β₂ = 0: β₂ᵗ = 0, ρ_t = ρ∞ = 1.
        rho_t = xp.ones_like(tf) * rho_inf_f
    else:
        u = tf * big_l
        # Direct branch, guarded so the unused lane never divides by zero.
        # Beyond u = 80, (2/L)·u/expm1(u) < 1e-32·ρ∞, far below one ulp of ρ_t:
        # clamp so expm1 cannot overflow, even in float32 (overflow at u ≈ 88.7).
        u_direct = xp.where(u >= _SERIES_CUTOFF, xp.where(u > 80.0, const(80.0), u), const(1.0))
        direct = rho_inf_f - (2.0 / big_l) * (u_direct / xp.expm1(u_direct))
        u_series = xp.where(u < _SERIES_CUTOFF, u, const(0.0))
        w = u_series * u_series
        poly = const(0.0)
        for coeff in _BERNOULLI_SERIES:
            poly = poly * w + coeff
        series = c0 + tf - (2.0 / big_l) * (poly * w)
        rho_t = xp.where(u >= _SERIES_CUTOFF, direct, series)
    thr = const(threshold)
    rectified = (rho_t > thr) if comparison == ">" else (rho_t >= thr)
    # Evaluate r_t on a safe ρ so the unselected lane stays finite.
    safe_rho = xp.where(rectified, rho_t, const(max(rho_inf_f, 5.0)))
    if rho_inf_f > 4.0:
        denom = (rho_inf_f - 4.0) * (rho_inf_f - 2.0)
        r_sq = (safe_rho - 4.0) * (safe_rho - 2.0) * rho_inf_f / (denom * safe_rho)
        r_t = xp.where(rectified, xp.sqrt(r_sq), const(0.0))
    else:  # ρ∞ ≤ 4 ≤ threshold: never rectified.
        r_t = xp.zeros_like(rho_t)
    return ArraySchedule(rho_inf, rho_t, rectified, r_t, bc1, bc2)
