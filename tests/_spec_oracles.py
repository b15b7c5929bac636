"""Independent oracles for the spec's tests.

Nothing here imports ``radam_ref``: every value the spec is checked against is
recomputed from the paper's formulas (Liu et al., ICLR 2020, Algorithm 2; ρ_t from
§4.1, r_t from §4.2, ψ̂ from §3.1) in exact or high-precision arithmetic.

- :func:`exact_scalars` — ρ∞, ρ_t, r_t², 1 − β₁ᵗ, 1 − β₂ᵗ as ``fractions.Fraction``
  (exact; used for t ≤ ``FRACTION_MAX_T``) or as mpmath numbers at 60 digits
  (``mpmath.mpf(float)`` is exact, so the only error is the working precision).
- :func:`oracle_trajectory` — Algorithm 2 per element in mpmath at 40 digits, with
  every axis of the spec's config written out from the peers' definitions.
- :func:`to_numpy`, :func:`assert_close` — comparison helpers.
"""

from __future__ import annotations

import functools
from fractions import Fraction

import mpmath
import numpy as np

__all__ = [
    "FRACTION_MAX_T",
    "exact_scalars",
    "exact_rectified",
    "oracle_trajectory",
    "to_numpy",
    "assert_close",
    "fewer_examples",
]

#: Up to this t the exact rational route is cheap (βᵗ has ≤ 53·t bits).
FRACTION_MAX_T = 300

_SCHEDULE_DPS = 60
_TRAJECTORY_DPS = 40


# --------------------------------------------------------------------------- #
# Step scalars
# --------------------------------------------------------------------------- #


def _scalars_fraction(t: int, beta1: float, beta2: float) -> dict:
    b1, b2 = Fraction(beta1), Fraction(beta2)
    b1t, b2t = b1**t, b2**t
    bc1, bc2 = 1 - b1t, 1 - b2t
    rho_inf = Fraction(2) / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2t / bc2
    return dict(rho_inf=rho_inf, rho_t=rho_t, bias_correction1=bc1, bias_correction2=bc2)


def _scalars_mpmath(t: int, beta1: float, beta2: float) -> dict:
    with mpmath.workdps(_SCHEDULE_DPS):
        b1, b2 = mpmath.mpf(beta1), mpmath.mpf(beta2)
        b1t, b2t = b1**t, b2**t
        bc1, bc2 = 1 - b1t, 1 - b2t
        rho_inf = 2 / (1 - b2) - 1
        rho_t = rho_inf - 2 * t * b2t / bc2
        return dict(rho_inf=rho_inf, rho_t=rho_t, bias_correction1=bc1, bias_correction2=bc2)


@functools.lru_cache(maxsize=4096)
def _exact_scalars_cached(t: int, beta1: float, beta2: float) -> tuple:
    return tuple(_exact_scalars(t, beta1, beta2).items())


def exact_scalars(t: int, beta1: float, beta2: float) -> dict:
    """See :func:`_exact_scalars` (memoised: the values are immutable)."""
    return dict(_exact_scalars_cached(int(t), float(beta1), float(beta2)))


def _exact_scalars(t: int, beta1: float, beta2: float) -> dict:
    """ρ∞ (Alg. 2 line 2), ρ_t (line 8), 1 − β₁ᵗ (line 7), 1 − β₂ᵗ (line 10) and
    r_t² (line 11, only meaningful for ρ_t > 4) at step ``t``.

    Fractions for t ≤ FRACTION_MAX_T (exact), mpmath at 60 digits beyond (the
    worst cancellation, ρ_1 for β₂ = 1 − 1e-7, costs about 14 digits).
    """
    vals = (_scalars_fraction if t <= FRACTION_MAX_T else _scalars_mpmath)(t, beta1, beta2)
    rho_t, rho_inf = vals["rho_t"], vals["rho_inf"]
    if rho_inf > 4 and rho_t > 0:
        if isinstance(rho_t, Fraction):
            vals["r_t_squared"] = (rho_t - 4) * (rho_t - 2) * rho_inf / (
                (rho_inf - 4) * (rho_inf - 2) * rho_t
            )
        else:
            with mpmath.workdps(_SCHEDULE_DPS):
                vals["r_t_squared"] = (rho_t - 4) * (rho_t - 2) * rho_inf / (
                    (rho_inf - 4) * (rho_inf - 2) * rho_t
                )
    else:
        vals["r_t_squared"] = None
    return vals


def exact_rectified(rho_t, threshold: float, comparison: str) -> bool:
    """The threshold decision of Alg. 2 line 9, on the exact ρ_t."""
    thr = Fraction(threshold) if isinstance(rho_t, Fraction) else mpmath.mpf(threshold)
    return bool(rho_t > thr) if comparison == ">" else bool(rho_t >= thr)


def relative_error(value: float, exact) -> float:
    """|value − exact| / |exact| computed exactly (Fraction) or at 60 digits."""
    if isinstance(exact, Fraction):
        return float(abs(Fraction(value) - exact) / abs(exact))
    with mpmath.workdps(_SCHEDULE_DPS):
        return float(abs(mpmath.mpf(value) - exact) / abs(exact))


def relative_error_of_root(value: float, exact_square) -> float:
    """Relative error of ``value`` as sqrt(exact_square), from |value² / square − 1|
    (exact for a Fraction square: the relative error of a square root is half
    that of its square, to first order)."""
    if isinstance(exact_square, Fraction):
        ratio = Fraction(value) ** 2 / exact_square
        return float(abs(ratio - 1)) / 2
    with mpmath.workdps(_SCHEDULE_DPS):
        return float(abs(mpmath.mpf(value) - mpmath.sqrt(exact_square)) / mpmath.sqrt(exact_square))


# --------------------------------------------------------------------------- #
# Algorithm 2, per element, in mpmath
# --------------------------------------------------------------------------- #


@functools.lru_cache(maxsize=4096)
def _mp_schedule(t: int, beta1: float, beta2: float, threshold: float, comparison: str):
    """(rectified, r_t, 1 − β₁ᵗ, 1 − β₂ᵗ) as mpmath numbers, decision made exactly."""
    vals = exact_scalars(t, beta1, beta2)
    rectified = exact_rectified(vals["rho_t"], threshold, comparison)

    def mp(x):
        return mpmath.mpf(x.numerator) / x.denominator if isinstance(x, Fraction) else mpmath.mpf(x)

    with mpmath.workdps(_TRAJECTORY_DPS):
        r_t = mpmath.sqrt(mp(vals["r_t_squared"])) if rectified else None
        return rectified, r_t, mp(vals["bias_correction1"]), mp(vals["bias_correction2"])


def _ieee_div(a, b):
    """a / b with IEEE semantics for b = +0 (the only zero a denominator here can be)."""
    if b == 0:
        if a == 0 or mpmath.isnan(a):
            return mpmath.mpf("nan")
        return mpmath.mpf("inf") if a > 0 else mpmath.mpf("-inf")
    return a / b


def oracle_trajectory(
    theta0,
    grads,
    m0,
    v0,
    count0: int,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    threshold: float,
    comparison: str,
    eps_placement: str,
    eps_root: float,
    weight_decay_mode: str,
    before_rectification: str,
    nesterov: bool,
    maximize: bool,
):
    """Algorithm 2 for one element, from step count0 + 1 on, in mpmath at 40 digits.

    Per step t (the definitions of the peers each axis comes from):
      g ← −g (maximize, torch);  g ← g + λθ (L2, torch's default weight decay)
      m = β₁m + (1−β₁)g  (line 6);  v = β₂v + (1−β₂)g²  (line 5)
      m̂ = m/(1−β₁ᵗ)  (line 7);  Nesterov (optax): β₁m/(1−β₁ᵗ⁺¹) + (1−β₁)g/(1−β₁ᵗ)
      θ ← θ(1−αλ)  decoupled (§5; every step, or only on moving steps for the authors' code)
      rectified (line 9): θ ← θ − α r_t m̂ ψ̂ with
            ψ̂ = sqrt(1−β₂ᵗ)/(sqrt(v + eps_root) + ε)      (§3.1, ε before bias correction)
            ψ̂ = 1/(sqrt(v/(1−β₂ᵗ) + eps_root) + ε)        (ε after, optax/TF-Addons)
      otherwise: θ ← θ − α m̂ (line 14), or θ unchanged (authors' code since 2021).

    Returns a list, one (θ_t, m_t, v_t) triple of mpmath numbers per gradient.
    """
    out = []
    with mpmath.workdps(_TRAJECTORY_DPS):
        mpf = mpmath.mpf
        theta, m, v = mpf(theta0), mpf(m0), mpf(v0)
        b1, b2 = mpf(beta1), mpf(beta2)
        alpha, lam = mpf(lr), mpf(weight_decay)
        for k, g in enumerate(grads):
            t = count0 + k + 1
            g = mpf(g)
            if maximize:
                g = -g
            if weight_decay_mode == "l2":
                g = g + lam * theta
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            rectified, r_t, bc1, bc2 = _mp_schedule(t, beta1, beta2, threshold, comparison)
            if nesterov:
                bc1_next = _mp_schedule(t + 1, beta1, beta2, threshold, comparison)[2]
                m_hat = b1 * m / bc1_next + (1 - b1) * g / bc1
            else:
                m_hat = m / bc1
            moves = rectified or before_rectification == "sgd_momentum"
            if weight_decay_mode == "decoupled" or (weight_decay_mode == "decoupled_moving" and moves):
                theta = theta * (1 - alpha * lam)
            if rectified:
                if eps_placement == "before_bias_correction":
                    psi = _ieee_div(mpmath.sqrt(bc2), mpmath.sqrt(v + eps_root) + eps)
                else:
                    psi = _ieee_div(mpf(1), mpmath.sqrt(v / bc2 + eps_root) + eps)
                theta = theta - alpha * r_t * (m_hat * psi)
            elif moves:
                theta = theta - alpha * m_hat
            out.append((theta, m, v))
    return out


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def fewer_examples(n: int, **kwargs):
    """``@settings`` lowering an expensive property's example count to ``n`` under
    the default ``ci`` profile only; ``thorough`` keeps its own (≥ 500) count."""
    from hypothesis import settings

    current = settings.default.max_examples
    return settings(max_examples=min(n, current) if current < 500 else current, **kwargs)


def to_numpy(x) -> np.ndarray:
    """A NumPy copy of an array from any namespace under test (any device)."""
    module = type(x).__module__
    if module.startswith("array_api_strict"):
        import array_api_strict

        x = x.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.array(x, copy=True)
    if module.startswith("torch"):
        return x.detach().cpu().numpy().copy()
    return np.array(x, copy=True)


def assert_close(actual, expected, tol, *, what: str = "") -> None:
    """Elementwise: NaN where expected is NaN, equal infinities, and
    |actual − expected| ≤ tol (an array or scalar) elsewhere."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), expected.shape)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(actual), nan), f"{what}: NaN at {np.isnan(actual)} vs {nan}"
    inf = np.isinf(expected)
    assert np.array_equal(actual[inf], expected[inf]), f"{what}: inf mismatch"
    finite = np.isfinite(expected)
    assert not np.isnan(tol[finite]).any(), f"{what}: the tolerance itself is NaN"
    err = np.abs(actual[finite] - expected[finite])
    bad = err > tol[finite]
    if bad.any():
        i = int(np.argmax(bad))
        raise AssertionError(
            f"{what}: {int(bad.sum())} element(s) off; first: actual {actual[finite][i]!r} "
            f"expected {expected[finite][i]!r} |diff| {err[i]:.3e} > tol {tol[finite][i]:.3e}"
        )


def ulp_tolerance(dtype) -> float:
    """Unit roundoff of ``dtype`` (2⁻⁵³ for float64, 2⁻²⁴ float32, 2⁻¹¹ float16)."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2
