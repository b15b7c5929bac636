"""The paper's variance analysis of the adaptive learning rate (§3.2, §4.1–4.3).

Setting (§3.2, Theorem 1).  Write x = ψ²(·) for the squared adaptive rate and
assume x ~ Scale-inv-χ²(ρ, τ²), τ² = 1/σ², with density (eq. 2)

    p(x) = (τ²ρ/2)^{ρ/2} / Γ(ρ/2) · exp(−ρτ²/(2x)) / x^{1+ρ/2},   x > 0.

Then x = ρτ²/(2Y) with Y ~ Gamma(ρ/2, 1), and E[Y^s] = Γ(ρ/2 + s)/Γ(ρ/2) gives

    E[x]  = ρτ²/(ρ − 2)                                   (eq. 2; ρ > 2)
    E[√x] = τ √(ρ/2) Γ((ρ − 1)/2) / Γ(ρ/2)                 (eq. 3; ρ > 1)
    Var[ψ] = E[x] − E[√x]²
           = τ² ( ρ/(ρ − 2) − (ρ/2) Γ((ρ−1)/2)² / Γ(ρ/2)² )                     (eq. 4)
           = τ² ( ρ/(ρ − 2) − ρ 2^{2ρ−5}/π · B((ρ−1)/2, (ρ−1)/2)² ).

The last line follows from Legendre's duplication formula
Γ(ρ − 1) = 2^{ρ−2} Γ((ρ−1)/2) Γ(ρ/2) / √π, so that
Γ((ρ−1)/2)/Γ(ρ/2) = 2^{ρ−2} B((ρ−1)/2, (ρ−1)/2)/√π.

Two transcription slips in the paper's printed text, both checked against
direct numerical integration of eq. 2 in the tests:

* Eq. 3 is printed with Γ(ρ/2 − 1) in the numerator.  The correct argument is
  (ρ − 1)/2 = ρ/2 − 1/2: with Γ(ρ/2 − 1) the "variance" would tend to τ², not 0.
  The paper's own Appendix A (eq. 7) and the Beta form of eq. 4 use Γ((ρ−1)/2).
* Eq. 4 is printed with the factor ρ^{2ρ−5}/π; §4.2 and Appendix A write it
  ρ·2^{2ρ−5}/π, which is what the derivation gives.

Domain.  Var[ψ] is finite for every ρ > 2 (E[x] exists); the paper states eq. 4
"for ρ > 4" because its first-order approximation (eq. 6) needs Var[x], which
exists only for ρ > 4.  :func:`variance_exact` accepts ρ > 2.

Numerics.  Both terms of eq. 4 tend to 1 while their difference is ≈ 1/(2ρ):
written directly (or with log-gamma differences) eq. 4 loses about log10(ρ)
digits to cancellation, and log Γ at ρ = 10⁶ carries an absolute error larger
than the answer.  We write instead

    Var[ψ]/τ² = ρ/(ρ − 2) · (−expm1(L)),   L = ln((ρ − 2)/2) − 2 ln(Γ(a + ½)/Γ(a)),

with a = (ρ − 1)/2, and evaluate L without cancellation: Stirling's series for
ln Γ(z + ½) − ln Γ(z) at z ≥ 12 (after shifting a upward with the recurrence
Γ(w + 1) = wΓ(w)), with every O(1) part cancelled analytically, so L ≈ −1/(2ρ)
is a sum of terms of its own size.  Result: a few ulp up to ρ = 10⁶ and beyond,
with no overflow (no Γ or 2^{2ρ} is ever formed), using only log1p, log, expm1
and arithmetic, so the same code runs on Python floats and on any array-API
namespace.

The rest of the module relates the analysis to Algorithm 2.  ρ_t and ρ∞ (§4.1)
are *not* recomputed here: they come from :func:`radam_ref.schedule` (Python
integers, exact) or :func:`radam_ref.schedule_array` (arrays of steps).  The
rectification term (§4.2) is r_t = sqrt(C_var / Var[ψ](ρ_t)) with
C_var = Var[ψ](ρ∞); with eq. 6 in place of eq. 4 it is Algorithm 2's closed form
(line 11).  Linear warmup (§4.3) scales the rate by min(t, T_w)/T_w.
"""

from __future__ import annotations

import math
import numbers

import array_api_compat

from ._schedule import schedule, schedule_array

__all__ = [
    "variance_exact",
    "variance_approx",
    "mean_squared_adaptive_rate",
    "mean_adaptive_rate",
    "rho_t",
    "rho_inf",
    "c_var",
    "rectification_exact",
    "rectification_approx",
    "warmup_factor",
]

# Stirling's series ln Γ(z) = (z − ½)ln z − z + ½ln 2π + S(z),
# S(z) = Σ_k B_{2k} / (2k(2k − 1) z^{2k−1}); coefficients B_{2k}/(2k(2k−1)), k = 1..8.
_STIRLING = (
    1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400,
)
# Shift the argument up to z ≥ 12 before using the series: the first omitted term,
# B_18/(18·17·z^17), is then below 1e-19.
_STIRLING_MIN_Z = 12.0
_MAX_SHIFTS = 12  # a = (ρ − 1)/2 > ½ needs at most 12 shifts to reach 12
# Terms of ½(log1p(h)/h − 1) = ½ Σ_{k≥1} (−1)^k h^k/(k + 1) for h = 1/(2z) ≤ 1/24.
_LOG1P_TERMS = 16


# --------------------------------------------------------------------------- #
# One implementation for Python floats and for arrays: `ops` provides the few
# elementwise functions used.
# --------------------------------------------------------------------------- #


class _ScalarOps:
    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    log1p = staticmethod(math.log1p)
    expm1 = staticmethod(math.expm1)
    sqrt = staticmethod(math.sqrt)

    @staticmethod
    def where(cond, a, b):
        return a if cond else b

    @staticmethod
    def const(value, like):
        return float(value)


class _ArrayOps:
    def __init__(self, xp):
        self.xp = xp
        self.exp = xp.exp
        self.log = xp.log
        self.log1p = xp.log1p
        self.expm1 = xp.expm1
        self.sqrt = xp.sqrt
        self.where = xp.where

    def const(self, value, like):
        return self.xp.full_like(like, value)


def _stirling_correction(z, ops):
    """Stirling's correction S(z) = ln Γ(z) − (z − ½)ln z + z − ½ln 2π, by Horner in 1/z²."""
    w = 1.0 / (z * z)
    acc = ops.const(_STIRLING[-1], z)
    for coeff in reversed(_STIRLING[:-1]):
        acc = acc * w + coeff
    return acc / z


def _half_log1p_ratio_minus_half(z, ops):
    """E(z) = z·log1p(1/(2z)) − ½ = ½(log1p(h)/h − 1), h = 1/(2z), by its series."""
    h = 1.0 / (2.0 * z)
    # Σ_{k=1}^{K} (−1)^k h^k/(k+1) = h·Σ_{k=1}^{K} (−1)^k h^{k−1}/(k+1), Horner.
    acc = ops.const((-1) ** _LOG1P_TERMS / (_LOG1P_TERMS + 1), z)
    for k in range(_LOG1P_TERMS - 1, 0, -1):
        acc = acc * h + (-1) ** k / (k + 1)
    return 0.5 * h * acc


def _log_variance_ratio(rho, ops):
    """L(ρ) = ln((ρ − 2)/2) − 2 ln(Γ(a + ½)/Γ(a)), a = (ρ − 1)/2, without cancellation.

    With z = a + n (n shifts, z ≥ 12) and ln Γ(z + ½) − ln Γ(z) from Stirling:

        ln Γ(z+½) − ln Γ(z) = ½ ln z + E(z) + S(z+½) − S(z),  E(z) = z log1p(1/(2z)) − ½
        ln(Γ(a+½)/Γ(a)) = ln(Γ(z+½)/Γ(z)) − Σ_{k<n} log1p(1/(2(a+k)))

    and ln((ρ−2)/2) − ln a = log1p(−1/(ρ − 1)), ln a − ln z = −Σ_{k<n} log1p(1/(a+k)), so

        L = log1p(−1/(ρ−1)) − 2E(z) − 2(S(z+½) − S(z))
            + Σ_{k<n} [2 log1p(1/(2(a+k))) − log1p(1/(a+k))].
    """
    a = (rho - 1.0) / 2.0
    z = a
    shift_sum = ops.const(0.0, rho)
    for _ in range(_MAX_SHIFTS):
        below = z < _STIRLING_MIN_Z
        term = 2.0 * ops.log1p(1.0 / (2.0 * z)) - ops.log1p(1.0 / z)
        shift_sum = shift_sum + ops.where(below, term, ops.const(0.0, rho))
        z = ops.where(below, z + 1.0, z)
    stirling_difference = _stirling_correction(z + 0.5, ops) - _stirling_correction(z, ops)
    return (
        ops.log1p(-1.0 / (rho - 1.0))
        - 2.0 * _half_log1p_ratio_minus_half(z, ops)
        - 2.0 * stirling_difference
        + shift_sum
    )


def _log_gamma_half_ratio(rho, ops):
    """ln(Γ((ρ−1)/2) / Γ(ρ/2)) = −ln(Γ(a + ½)/Γ(a)), a = (ρ − 1)/2 (ρ > 1)."""
    a = (rho - 1.0) / 2.0
    z = a
    shift_sum = ops.const(0.0, rho)
    for _ in range(_MAX_SHIFTS + 1):
        below = z < _STIRLING_MIN_Z
        shift_sum = shift_sum + ops.where(below, ops.log1p(1.0 / (2.0 * z)), ops.const(0.0, rho))
        z = ops.where(below, z + 1.0, z)
    log_ratio_z = (
        0.5 * ops.log(z)
        + _half_log1p_ratio_minus_half(z, ops)
        + _stirling_correction(z + 0.5, ops)
        - _stirling_correction(z, ops)
    )
    return -(log_ratio_z - shift_sum)


# --------------------------------------------------------------------------- #
# Argument handling
# --------------------------------------------------------------------------- #


def _check_tau(tau) -> float:
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real):
        raise TypeError(f"tau must be a real number, got {tau!r}")
    tau = float(tau)
    if not (math.isfinite(tau) and tau > 0.0):
        raise ValueError(f"tau must be a finite positive number, got {tau!r}")
    return tau


def _prepare_rho(rho, lower: float, why: str):
    """Return (rho, ops, is_array) after checking ρ > lower (finite) elementwise."""
    if array_api_compat.is_array_api_obj(rho):
        xp = array_api_compat.array_namespace(rho)
        if xp.isdtype(rho.dtype, "bool") or not xp.isdtype(rho.dtype, ("real floating", "integral")):
            raise TypeError(f"rho must be a real array, got dtype {rho.dtype}")
        if not xp.isdtype(rho.dtype, "real floating"):
            rho = xp.astype(rho, xp.float64)
        bad = ~(xp.isfinite(rho) & (rho > lower))
        if bool(xp.any(bad)):
            first = rho[bad][0] if rho.ndim else rho
            raise ValueError(
                f"rho must be finite and > {lower:g} ({why}), got an array containing {float(first)!r}"
            )
        return rho, _ArrayOps(xp), True
    if isinstance(rho, bool) or not isinstance(rho, numbers.Real):
        raise TypeError(f"rho must be a real number or a real array, got {rho!r}")
    value = float(rho)
    if not (math.isfinite(value) and value > lower):
        raise ValueError(f"rho must be finite and > {lower:g} ({why}), got {rho!r}")
    return value, _ScalarOps, False


# --------------------------------------------------------------------------- #
# §3.2: the variance of the adaptive rate
# --------------------------------------------------------------------------- #


def variance_exact(rho, tau: float = 1.0):
    """Var[ψ] under ψ² ~ Scale-inv-χ²(ρ, τ²): eq. 4, computed without cancellation.

        Var[ψ] = τ² ( ρ/(ρ − 2) − ρ 2^{2ρ−5}/π · B((ρ−1)/2, (ρ−1)/2)² )
               = τ² ( ρ/(ρ − 2) − (ρ/2) Γ((ρ−1)/2)²/Γ(ρ/2)² )

    (The paper's eq. 4 is printed with ρ^{2ρ−5}; the correct factor, as in §4.2,
    is ρ·2^{2ρ−5} — see the module docstring.)  Decreasing in ρ (Theorem 1),
    ≈ τ²/(2ρ) for large ρ.

    Args:
        rho: degrees of freedom ρ > 2 (finite): a Python real (returns a float64
            Python float) or a real array of any array-API namespace (returns an
            array of its namespace, device and floating dtype; integer arrays are
            computed in float64).
        tau: scale τ > 0 (τ² = 1/σ² for g ~ N(0, σ²)).

    Accuracy: a few ulp of the result for every ρ > 2 in float64 (tested against
    mpmath at 50 digits for ρ up to 10⁶ and beyond).

    Raises:
        TypeError, ValueError: naming ``rho`` or ``tau`` and the bad value.
    """
    tau = _check_tau(tau)
    rho, ops, _ = _prepare_rho(rho, 2.0, "Var[psi] is infinite for rho <= 2")
    log_ratio = _log_variance_ratio(rho, ops)
    return (tau * tau) * (rho / (rho - 2.0)) * (-ops.expm1(log_ratio))


def variance_approx(rho, tau: float = 1.0):
    """First-order approximation of Var[ψ] (eq. 6): τ² ρ / (2 (ρ − 2)(ρ − 4)).

    From ψ = sqrt(x) ≈ sqrt(E[x]) + (x − E[x])/(2 sqrt(E[x])) (§4.2), so
    Var[ψ] ≈ Var[x]/(4 E[x]) with E[x] = ρτ²/(ρ−2) and Var[x] = 2ρ²τ⁴/((ρ−2)²(ρ−4)).

    Args:
        rho: ρ > 4 (Var[x] is infinite for ρ ≤ 4), Python real or real array.
        tau: scale τ > 0.

    Raises:
        TypeError, ValueError: naming ``rho`` or ``tau`` and the bad value.
    """
    tau = _check_tau(tau)
    rho, _, _ = _prepare_rho(rho, 4.0, "eq. 6 needs Var[psi^2], infinite for rho <= 4")
    return (tau * tau) * rho / (2.0 * (rho - 2.0) * (rho - 4.0))


def mean_squared_adaptive_rate(rho, tau: float = 1.0):
    """E[ψ²] = E[x] = ρτ²/(ρ − 2) (eq. 2), for ρ > 2."""
    tau = _check_tau(tau)
    rho, _, _ = _prepare_rho(rho, 2.0, "E[psi^2] is infinite for rho <= 2")
    return (tau * tau) * rho / (rho - 2.0)


def mean_adaptive_rate(rho, tau: float = 1.0):
    """E[ψ] = E[√x] = τ √(ρ/2) Γ((ρ − 1)/2) / Γ(ρ/2) (eq. 3, corrected), for ρ > 1.

    The paper prints Γ(ρ/2 − 1) in the numerator of eq. 3; integrating eq. 2
    gives Γ((ρ − 1)/2) (see the module docstring).  Evaluated through a
    cancellation-free log-gamma ratio (no Γ is formed, no overflow).
    """
    tau = _check_tau(tau)
    rho, ops, _ = _prepare_rho(rho, 1.0, "E[psi] is infinite for rho <= 1")
    return tau * ops.sqrt(rho / 2.0) * ops.exp(_log_gamma_half_ratio(rho, ops))


# --------------------------------------------------------------------------- #
# §4.1–4.3: ρ_t, ρ∞, the rectification term and linear warmup
# --------------------------------------------------------------------------- #


def rho_t(t, *, beta2: float = 0.999):
    """ρ_t = ρ∞ − 2tβ₂ᵗ/(1 − β₂ᵗ), the SMA length at step t (§4.1; Alg. 2 line 8).

    Delegates to :func:`radam_ref.schedule` for an integer ``t`` and to
    :func:`radam_ref.schedule_array` for an array of steps.
    """
    if array_api_compat.is_array_api_obj(t):
        return schedule_array(t, beta2=beta2).rho_t
    return schedule(t, beta2=beta2).rho_t


def rho_inf(beta2: float = 0.999) -> float:
    """ρ∞ = 2/(1 − β₂) − 1 = lim ρ_t, the maximum SMA length (§4.1; Alg. 2 line 2)."""
    return schedule(1, beta2=beta2).rho_inf


def c_var(beta2: float = 0.999, tau: float = 1.0) -> float:
    """C_var = min_ρ Var[ψ] = Var[ψ](ρ∞) (§4.2; exact, eq. 4).  Needs ρ∞ > 2 (β₂ > 1/3)."""
    return variance_exact(rho_inf(beta2), tau)


def _rho_pair(t, beta2):
    if array_api_compat.is_array_api_obj(t):
        sched = schedule_array(t, beta2=beta2)
        return sched.rho_t, float(sched.rho_inf)
    sched = schedule(t, beta2=beta2)
    return sched.rho_t, sched.rho_inf


def rectification_exact(t, *, beta2: float = 0.999):
    """r_t = sqrt(C_var / Var[ψ](ρ_t)) with the exact variance (eq. 4) (§4.2).

    Defined wherever ρ_t > 2 (for β₂ = 0.999 from t = 3 on), whereas Algorithm 2
    only rectifies for ρ_t > 4.  ρ_t, ρ∞ come from :func:`radam_ref.schedule`
    (integer t) or :func:`radam_ref.schedule_array` (array t).

    Raises:
        ValueError: if ρ_t ≤ 2 (naming ``rho``) or ρ∞ ≤ 2.
    """
    rho, rho_max = _rho_pair(t, beta2)
    ratio = variance_exact(rho_max) / variance_exact(rho)
    return _sqrt(ratio)


def rectification_approx(t, *, beta2: float = 0.999):
    """r_t = sqrt(C_var / Var[ψ](ρ_t)) with eq. 6 for both variances (§4.2).

    Algebraically equal to Algorithm 2 line 11,
    sqrt((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t)); computed here as the
    ratio of eq. 6 values, independently of that closed form.

    Raises:
        ValueError: if ρ_t ≤ 4 (naming ``rho``) or ρ∞ ≤ 4.
    """
    rho, rho_max = _rho_pair(t, beta2)
    ratio = variance_approx(rho_max) / variance_approx(rho)
    return _sqrt(ratio)


def _sqrt(x):
    if array_api_compat.is_array_api_obj(x):
        return array_api_compat.array_namespace(x).sqrt(x)
    return math.sqrt(x)


def warmup_factor(t, warmup_steps: int):
    """Linear warmup's factor min(t, T_w)/T_w (§4.3), for steps t ≥ 1.

    Args:
        t: positive integer, or an array of steps.
        warmup_steps: T_w, a positive integer.

    Raises:
        TypeError, ValueError: naming ``t`` or ``warmup_steps`` and the bad value.
    """
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, numbers.Integral):
        raise TypeError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
    if warmup_steps < 1:
        raise ValueError(f"warmup_steps must be a positive integer, got {warmup_steps!r}")
    if array_api_compat.is_array_api_obj(t):
        xp = array_api_compat.array_namespace(t)
        tf = t if xp.isdtype(t.dtype, "real floating") else xp.astype(t, xp.float64)
        if bool(xp.any(~(tf >= 1.0))):
            raise ValueError("t must hold steps >= 1, got an array containing "
                             f"{float(tf[~(tf >= 1.0)][0]) if tf.ndim else float(tf)!r}")
        return xp.minimum(tf, xp.full_like(tf, float(warmup_steps))) / float(warmup_steps)
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"t must be a positive integer, got {t!r}")
    if t < 1:
        raise ValueError(f"t must be a positive integer, got {t!r}")
    return min(int(t), warmup_steps) / warmup_steps
