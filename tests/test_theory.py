"""Tests of radam_ref.theory: the paper's variance analysis (§3.2, §4).

Oracles, all independent of the formulas under test:
  * direct numerical integration (mpmath.quad, 20 digits) of the scaled inverse
    chi-square density written out from eq. 2;
  * the closed forms evaluated with mpmath's Γ / B at 50 digits;
  * the asymptotic expansion Var[ψ] = τ²(1/(2ρ) + 15/(8ρ²) + O(ρ⁻³)), derived by
    hand from Γ(a + ½)/Γ(a) = √a (1 − 1/(8a) + 1/(128a²) + O(a⁻³));
  * exact rational arithmetic (fractions.Fraction) for linear warmup;
  * the paper's own statements (ρ = 5 vs ρ = 500; Theorem 1; ρ∞ ≤ 4 for β₂ ≤ 0.6).
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import radam_ref
from radam_ref import theory

# --------------------------------------------------------------------------- #
# Independent oracles
# --------------------------------------------------------------------------- #


def _log_density(x, rho, tau2):
    """log of eq. 2: (τ²ρ/2)^{ρ/2}/Γ(ρ/2) · exp(−ρτ²/(2x)) / x^{1+ρ/2}."""
    half = rho / 2
    return half * mpmath.log(tau2 * half) - mpmath.loggamma(half) - rho * tau2 / (2 * x) - (
        1 + half
    ) * mpmath.log(x)


def _breakpoints(rho, tau2):
    mode = rho * tau2 / (rho + 2)
    spread = mode * mpmath.sqrt(2 / max(rho - 4, mpmath.mpf(1)))
    return [0, mode / 4, mode, mode + spread, mode + 4 * spread, mode + 16 * spread, mpmath.inf]


def quad_moments(rho, tau=1.0):
    """(total mass, E[√x], Var[√x]) by numerical integration of eq. 2's density.

    Var is integrated as ∫(√x − m)² p(x) dx, which has no cancellation and is
    only second-order sensitive to the error of m."""
    with mpmath.workdps(20):
        rho = mpmath.mpf(rho)
        tau2 = mpmath.mpf(tau) ** 2
        pts = _breakpoints(rho, tau2)

        def p(x):
            return mpmath.exp(_log_density(x, rho, tau2))

        mass = mpmath.quad(p, pts)
        mean = mpmath.quad(lambda x: mpmath.sqrt(x) * p(x), pts)
        var = mpmath.quad(lambda x: (mpmath.sqrt(x) - mean) ** 2 * p(x), pts)
        return float(mass), float(mean), float(var)


def mp_variance(rho, tau=1.0):
    """Eq. 4 in its Γ form at 50 digits (cancellation is harmless at that precision)."""
    with mpmath.workdps(50):
        rho = mpmath.mpf(rho)
        ratio = mpmath.gamma((rho - 1) / 2) / mpmath.gamma(rho / 2)
        return float(mpmath.mpf(tau) ** 2 * (rho / (rho - 2) - rho / 2 * ratio**2))


def mp_rho_t(t, beta2):
    with mpmath.workdps(50):
        b = mpmath.mpf(beta2)
        rho_inf = 2 / (1 - b) - 1
        return rho_inf - 2 * t * b**t / (1 - b**t), rho_inf


def rel(a, b):
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------- #
# eq. 2–4: exact variance against numerical integration
# --------------------------------------------------------------------------- #


@settings(max_examples=10)
@given(
    rho=st.floats(3.0, 2.0e5),
    tau=st.floats(0.05, 20.0),
)
def test_variance_exact_matches_integrated_density(rho, tau):
    mass, _, var = quad_moments(rho, tau)
    assert abs(mass - 1.0) < 1e-12, f"density does not integrate to 1 at rho={rho}"
    got = theory.variance_exact(rho, tau)
    assert rel(got, var) < 1e-10, f"variance_exact({rho}, {tau}) = {got}, integral {var}"


def test_variance_exact_heavy_tail_region():
    # 2 < ρ < 3: E[x] barely exists (tail x^{-ρ/2}); quadrature is slower to converge.
    for rho in (2.5, 2.8):
        _, _, var = quad_moments(rho)
        assert rel(theory.variance_exact(rho), var) < 1e-4


@settings(max_examples=8)
@given(rho=st.floats(1.5, 1.0e5), tau=st.floats(0.1, 10.0))
def test_mean_adaptive_rate_is_corrected_eq3(rho, tau):
    _, mean, _ = quad_moments(rho, tau) if rho >= 3 else (None, None, None)
    got = theory.mean_adaptive_rate(rho, tau)
    with mpmath.workdps(50):
        r = mpmath.mpf(rho)
        closed = float(tau * mpmath.sqrt(r / 2) * mpmath.gamma((r - 1) / 2) / mpmath.gamma(r / 2))
    assert rel(got, closed) < 1e-13
    if mean is not None:
        assert rel(got, mean) < 1e-10


@pytest.mark.parametrize("rho", [5.0, 12.0, 60.0])
def test_paper_printed_forms_are_transcription_slips(rho):
    """The printed eq. 3 (Γ(ρ/2 − 1)) and eq. 4 (ρ^{2ρ−5}) disagree with the integral;
    the Beta form of §4.2, ρ·2^{2ρ−5}/π · B((ρ−1)/2, (ρ−1)/2)², agrees."""
    _, mean, var = quad_moments(rho)
    with mpmath.workdps(40):
        r = mpmath.mpf(rho)
        printed_eq3 = mpmath.sqrt(r) * mpmath.gamma(r / 2 - 1) / (mpmath.sqrt(2) * mpmath.gamma(r / 2))
        beta_sq = mpmath.beta((r - 1) / 2, (r - 1) / 2) ** 2
        printed_eq4 = r / (r - 2) - r ** (2 * r - 5) / mpmath.pi * beta_sq
        section42 = r / (r - 2) - r * mpmath.mpf(2) ** (2 * r - 5) / mpmath.pi * beta_sq
    assert rel(float(printed_eq3), mean) > 1e-2
    assert rel(float(printed_eq4), var) > 1e-2
    assert rel(float(section42), var) < 1e-10
    assert rel(theory.variance_exact(rho), float(section42)) < 1e-13


@given(rho=st.one_of(st.floats(2.0 + 1e-9, 50.0), st.floats(50.0, 1e12)))
def test_variance_exact_against_mpmath(rho):
    assert rel(theory.variance_exact(rho), mp_variance(rho)) < 1e-14


@pytest.mark.parametrize("rho", [1e3, 1e4, 1e5, 1e6, 1e7, 1e9])
def test_variance_exact_stable_for_large_rho(rho):
    got = theory.variance_exact(rho, tau=3.0)
    assert math.isfinite(got) and got > 0
    assert rel(got, mp_variance(rho, 3.0)) < 1e-14
    # Leading asymptotics (module-independent): Var = τ²(1/(2ρ) + 15/(8ρ²) + O(ρ⁻³)).
    leading = 9.0 * (1 / (2 * rho) + 15 / (8 * rho**2))
    assert rel(got, leading) < 20.0 / rho**2 + 1e-15


def test_variance_at_rho_5_over_100_times_rho_500():
    """§4.2: "the variance at ρ_t = 5 is over 100 times larger than the variance at ρ_t = 500"."""
    ratio = theory.variance_exact(5.0) / theory.variance_exact(500.0)
    assert ratio > 100
    assert rel(ratio, mp_variance(5.0) / mp_variance(500.0)) < 1e-13


# --------------------------------------------------------------------------- #
# Theorem 1 and eq. 6
# --------------------------------------------------------------------------- #


@given(
    rho=st.floats(2.0 + 1e-6, 1e7),
    factor=st.floats(1e-9, 1e3),
    tau=st.floats(0.01, 100.0),
)
def test_theorem1_variance_decreases_in_rho(rho, factor, tau):
    larger = rho * (1.0 + factor)
    assume(larger < 1e12)
    assert theory.variance_exact(larger, tau) < theory.variance_exact(rho, tau)


@given(rho=st.floats(4.0 + 1e-6, 1e9), tau=st.floats(0.01, 100.0))
def test_variance_approx_is_eq6(rho, tau):
    expected = Fraction(tau) ** 2 * Fraction(rho) / (2 * (Fraction(rho) - 2) * (Fraction(rho) - 4))
    assert rel(theory.variance_approx(rho, tau), float(expected)) < 1e-14


@given(rho=st.floats(10.0, 1e8))
def test_eq6_converges_to_eq4(rho):
    """Relative gap eq6/eq4 − 1: positive, below 9/(4ρ) + 40/ρ² (from the expansions
    1/(2ρ) + 15/(8ρ²) of eq. 4 and 1/(2ρ) + 3/ρ² of eq. 6), and shrinking with ρ."""
    gap = theory.variance_approx(rho) / theory.variance_exact(rho) - 1
    assert rel(gap + 1, theory.variance_approx(rho) / mp_variance(rho)) < 1e-13
    assert gap > 0
    assert gap < 9 / (4 * rho) + 40 / rho**2
    assert theory.variance_approx(2 * rho) / theory.variance_exact(2 * rho) - 1 < gap


def test_eq6_far_from_eq4_at_small_rho():
    """Figure 8's "difference much smaller than their value" fails near ρ = 5:
    eq. 6 is more than three times eq. 4 there (oracle: mpmath)."""
    assert theory.variance_approx(5.0) / mp_variance(5.0) > 3.0
    assert theory.variance_approx(30.0) / mp_variance(30.0) - 1 < 0.1


# --------------------------------------------------------------------------- #
# §4.1–4.3: ρ_t, ρ∞, rectification, warmup
# --------------------------------------------------------------------------- #


@given(t=st.integers(1, 10**6), beta2=st.floats(0.5, 0.99999))
def test_rho_t_and_rho_inf(t, beta2):
    rho, rho_max = mp_rho_t(t, beta2)
    assert rel(theory.rho_t(t, beta2=beta2), float(rho)) < 1e-14
    assert rel(theory.rho_inf(beta2), float(rho_max)) < 1e-15


def test_rho_inf_at_most_4_for_beta2_at_most_0_6():
    """§4.2: "if β₂ ≤ 0.6, we have ρ∞ ≤ 4"."""
    assert theory.rho_inf(0.6) <= 4.0 + 1e-15
    assert theory.rho_inf(0.5) == 3.0
    assert theory.rho_inf(0.61) > 4.0


@given(t=st.integers(5, 10**5), beta2=st.sampled_from([0.99, 0.995, 0.999, 0.9995, 0.9999]))
def test_rectification_approx_is_algorithm2_line11(t, beta2):
    rho, rho_max = mp_rho_t(t, beta2)
    assume(rho > 4)
    with mpmath.workdps(50):
        closed = mpmath.sqrt((rho - 4) * (rho - 2) * rho_max / ((rho_max - 4) * (rho_max - 2) * rho))
    tol = 1e-14 * float(rho / (rho - 4))
    got = theory.rectification_approx(t, beta2=beta2)
    assert rel(got, float(closed)) < tol
    assert rel(got, radam_ref.schedule(t, beta2=beta2).r_t) < tol


@given(t=st.integers(3, 10**5), beta2=st.sampled_from([0.99, 0.999, 0.9999]))
def test_rectification_exact(t, beta2):
    rho, rho_max = mp_rho_t(t, beta2)
    expected = math.sqrt(mp_variance(rho_max) / mp_variance(rho))
    got = theory.rectification_exact(t, beta2=beta2)
    assert rel(got, expected) < 1e-13
    assert 0 < got <= 1
    if rho > 4:
        # eq. 6 overstates Var[ψ] more at small ρ, so Algorithm 2's r_t is the smaller
        # (strictly, once ρ_t is visibly below ρ∞; equal to rounding as ρ_t → ρ∞).
        approx = theory.rectification_approx(t, beta2=beta2)
        assert approx <= got * (1 + 1e-13)
        if rho < 0.999 * rho_max:
            assert approx < got


def test_c_var():
    assert rel(theory.c_var(0.999), mp_variance(1999.0)) < 1e-14
    assert rel(theory.c_var(0.999, tau=2.0), 4 * mp_variance(1999.0)) < 1e-14


@given(t=st.integers(1, 10**6), warmup=st.integers(1, 10**5))
def test_warmup_factor(t, warmup):
    assert theory.warmup_factor(t, warmup) == float(Fraction(min(t, warmup), warmup))


# --------------------------------------------------------------------------- #
# Arrays (every installed namespace)
# --------------------------------------------------------------------------- #


def test_array_inputs_match_scalars(xp_case):
    import array_api_compat

    name, to_array = xp_case
    rhos = np.array([2.001, 3.0, 4.5, 5.0, 77.7, 1e4, 1e6])
    arr = to_array(rhos)
    xp = array_api_compat.array_namespace(arr)
    for func, values in (
        (theory.variance_exact, rhos),
        (theory.variance_approx, rhos[2:]),
        (theory.mean_adaptive_rate, rhos),
    ):
        out = func(to_array(values), 2.0)
        assert array_api_compat.array_namespace(out) is xp
        assert array_api_compat.device(out) == array_api_compat.device(to_array(values))
        for i, r in enumerate(values):
            assert rel(float(out[i]), func(float(r), 2.0)) < 1e-14, (name, func.__name__, r)


def test_array_steps_use_schedule_array():
    steps = np.arange(3, 40)
    got = theory.rectification_exact(steps)
    for t, g in zip(steps, got):
        assert rel(float(g), theory.rectification_exact(int(t))) < 1e-12
    r = theory.rectification_approx(np.arange(5, 40))
    for t, g in zip(range(5, 40), r):
        assert rel(float(g), radam_ref.schedule(t).r_t) < 1e-12
    w = theory.warmup_factor(np.arange(1, 10), 4)
    assert list(w) == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: theory.variance_exact(2.0), ValueError, ["rho", "2.0"]),
        (lambda: theory.variance_exact(float("nan")), ValueError, ["rho", "nan"]),
        (lambda: theory.variance_exact(float("inf")), ValueError, ["rho", "inf"]),
        (lambda: theory.variance_exact(True), TypeError, ["rho", "True"]),
        (lambda: theory.variance_exact("5"), TypeError, ["rho", "'5'"]),
        (lambda: theory.variance_exact(5.0, tau=0.0), ValueError, ["tau", "0.0"]),
        (lambda: theory.variance_exact(5.0, tau=-1), ValueError, ["tau", "-1"]),
        (lambda: theory.variance_approx(4.0), ValueError, ["rho", "4.0"]),
        (lambda: theory.variance_exact(np.array([5.0, 1.5])), ValueError, ["rho", "1.5"]),
        (lambda: theory.variance_exact(np.array([True])), TypeError, ["rho", "bool"]),
        (lambda: theory.mean_adaptive_rate(1.0), ValueError, ["rho", "1.0"]),
        (lambda: theory.rectification_approx(4), ValueError, ["rho"]),
        (lambda: theory.rectification_exact(2), ValueError, ["rho"]),
        (lambda: theory.rho_t(0), ValueError, ["t", "0"]),
        (lambda: theory.warmup_factor(0, 10), ValueError, ["t", "0"]),
        (lambda: theory.warmup_factor(1.5, 10), TypeError, ["t", "1.5"]),
        (lambda: theory.warmup_factor(3, 0), ValueError, ["warmup_steps", "0"]),
        (lambda: theory.warmup_factor(np.array([1, 0]), 3), ValueError, ["t", "0"]),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_scalar_theory_needs_no_array_library():
    """radam_ref.theory on Python floats imports no NumPy, torch or JAX."""
    import subprocess
    import sys

    # At ρ = 5: Γ(2) = 1, Γ(5/2) = (3/4)√π, so Var = 5/3 − (5/2)·16/(9π) = 5/3 − 40/(9π).
    code = (
        "import math, sys, radam_ref.theory as t\n"
        "assert abs(t.variance_exact(5.0) - (5 / 3 - 40 / (9 * math.pi))) < 1e-15\n"
        "t.rectification_exact(10); t.variance_approx(6.0); t.warmup_factor(3, 10)\n"
        "print(sorted(m for m in ('numpy', 'torch', 'jax') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
