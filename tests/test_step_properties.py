"""Properties of the functional step, over every array namespace of ``xp_case``.

Oracles, each independent of radam_ref:
  * Algorithm 2 per element in mpmath at 40 digits, every axis written out
    (tests/_spec_oracles.py: ``oracle_trajectory``);
  * SGD with bias-corrected momentum in plain Python floats (below), for β₂ ≤ 0.6;
  * exact symmetries of IEEE arithmetic (negation, scaling by powers of two,
    permutation), which hold bit for bit whatever the rounding.

Tolerances (u = unit roundoff of the parameter dtype: 2⁻⁵³, 2⁻²⁴, 2⁻¹¹; η its
smallest normal number), per element after step j (``oracle_bounds``):
  θ within 16·(u·S_j + j·η), S_j = j·max|θ| + Σ|θ_i − θ_{i−1}| + Σ A_i, where
  A_i = α·max(1, ψ̂_i)·(β₁|m_{i−1}| + (1−β₁)|g_i|)/(1 − β₁ⁱ) covers the absolute
  rounding of m_i when β₁m and (1 − β₁)g cancel, and η covers underflow (XLA on
  CPU flushes subnormal results to zero);
  m within 16·u·Σ(β₁|m_{i−1}| + (1−β₁)|g_i| + |m_i| + η/u);
  v within 16·u·Σ(β₂v_{i−1} + (1−β₂)(|g_i| + λ|θ_{i−1}|)² + v_i + η/u) (the L2
  gradient g + λθ may cancel before it is squared).
Bit-for-bit claims are made only where IEEE arithmetic guarantees them.
"""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import radam_ref
from _spec_oracles import (
    assert_close,
    exact_rectified,
    exact_scalars,
    fewer_examples,
    oracle_trajectory,
    to_numpy,
)

TOL_STEPS = 16

_SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
             HealthCheck.data_too_large]
fixture_settings = settings(suppress_health_check=_SUPPRESS)

PROFILE_NAMES = sorted(radam_ref.PROFILES)

# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #

beta2s = st.one_of(
    st.floats(0.0, 0.6),
    st.floats(0.6, 0.99),
    st.sampled_from([0.9, 0.99, 0.999, 0.9999]),
    st.floats(1e-7, 1e-3).map(lambda d: 1.0 - d),
)
beta1s = st.one_of(st.just(0.0), st.floats(0.0, 0.99), st.sampled_from([0.9, 0.5]))


@st.composite
def configs(draw, beta2=beta2s, eps=None, axes=True, **fixed):
    """A profile with drawn hyperparameters and, when ``axes``, drawn axis overrides."""
    name = draw(st.sampled_from(PROFILE_NAMES))
    over = dict(
        lr=draw(st.floats(1e-4, 1.0)),
        betas=(draw(beta1s), draw(beta2)),
        eps=draw(eps if eps is not None else st.one_of(st.just(0.0), st.floats(1e-10, 1e-2))),
        weight_decay=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
    )
    if axes:
        choices = dict(
            threshold=st.floats(4.0, 20.0),
            comparison=st.sampled_from(radam_ref.COMPARISONS),
            eps_placement=st.sampled_from(radam_ref.EPS_PLACEMENTS),
            eps_root=st.one_of(st.just(0.0), st.floats(0.0, 1e-6)),
            weight_decay_mode=st.sampled_from(radam_ref.WEIGHT_DECAY_MODES),
            before_rectification=st.sampled_from(radam_ref.BEFORE_RECTIFICATION),
            nesterov=st.booleans(),
            maximize=st.booleans(),
        )
        for axis, strategy in choices.items():
            if draw(st.booleans()):
                over[axis] = draw(strategy)
    over.update(fixed)
    return radam_ref.RAdamConfig.from_profile(name, **over)


def oracle_options(cfg: radam_ref.RAdamConfig) -> dict:
    return dict(
        lr=cfg.lr, beta1=cfg.betas[0], beta2=cfg.betas[1], eps=cfg.eps,
        weight_decay=cfg.weight_decay, threshold=cfg.threshold, comparison=cfg.comparison,
        eps_placement=cfg.eps_placement, eps_root=cfg.eps_root,
        weight_decay_mode=cfg.weight_decay_mode,
        before_rectification=cfg.before_rectification, nesterov=cfg.nesterov,
        maximize=cfg.maximize,
    )


def magnitudes(lo=1e-6, hi=1e3, zero=True):
    mag = st.floats(lo, hi)
    signed = st.tuples(st.sampled_from([-1.0, 1.0]), mag).map(lambda p: p[0] * p[1])
    return st.one_of(st.just(0.0), signed) if zero else signed


@st.composite
def problems(draw, cfg_strategy=None, dtype=np.float64, max_steps=6, max_size=5,
             grad_lo=1e-6, grad_hi=1e3, count0=None):
    """(config, θ₀, grads[k, n], m₀, v₀, count₀) with float64 numbers exactly
    representable in ``dtype``."""
    cfg = draw(cfg_strategy if cfg_strategy is not None else configs())
    n = draw(st.integers(1, max_size))
    k = draw(st.integers(1, max_steps))
    # With ε = eps_root = 0 a zero second moment would give 0/0 (tested on its own).
    zero_ok = cfg.eps > 0 or cfg.eps_root > 0
    cast = lambda xs: np.asarray(xs, dtype=np.float64).astype(dtype).astype(np.float64)
    theta0 = cast(draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n)))
    grads = cast([draw(st.lists(magnitudes(grad_lo, grad_hi, zero_ok), min_size=n, max_size=n))
                  for _ in range(k)])
    if count0 is None:
        count0 = draw(st.one_of(st.just(0), st.integers(1, 40), st.integers(1, 10**6)))
    if count0 == 0:
        m0, v0 = np.zeros(n), np.zeros(n)
    else:
        m0 = cast(draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n)))
        v0 = cast(draw(st.lists(st.floats(1e-6, 100.0), min_size=n, max_size=n)))
    return cfg, theta0, grads, m0, v0, count0


def run_spec(cfg, theta0, grads, m0, v0, count0, to_array, dtype=np.float64, shape=None):
    """Run the spec from (θ₀, m₀, v₀, count₀); return per-step NumPy θ and final m, v."""
    shape = theta0.shape if shape is None else shape
    arr = lambda x: to_array(np.asarray(x, dtype=dtype).reshape(shape))
    params = arr(theta0)
    state = radam_ref.RAdamState(count=count0, m=arr(m0), v=arr(v0))
    thetas = []
    for g in grads:
        params, state = radam_ref.step(params, arr(g), state, cfg)
        thetas.append(to_numpy(params).reshape(-1).astype(np.float64))
    return thetas, to_numpy(state.m).reshape(-1), to_numpy(state.v).reshape(-1), state.count


def _mp_float(x) -> float:
    return float(x) if not hasattr(x, "numerator") else x.numerator / x.denominator


TINY = float(np.finfo(np.float64).tiny)


def oracle_bounds(cfg, theta0, grads, m0, v0, count0, u, eta=TINY):
    """The oracle's trajectory and per-element tolerances for a spec run.

    Returns (θ[k, n], m[n], v[n], θ_tol[k, n], m_tol[n], v_tol[n]).  Per element
    and step j, θ_tol = TOL_STEPS·(u·S + (j+1)·η) with
    S = (j+1)·max|θ| + Σ|Δθ| + Σ A_i, where
    A_i = α·max(1, ψ̂_i)·(β₁|m_{i−1}| + (1−β₁)|g_i|)/(1−β₁ⁱ) bounds the effect of
    the absolute rounding of m_i (cancellation in Alg. 2 line 6), and η is the
    dtype's smallest normal number: any operation may also err by that much
    absolutely (gradual underflow; XLA on CPU flushes subnormal results to zero).
    """
    opts = oracle_options(cfg)
    b1, wd, lr = cfg.betas[0], cfg.weight_decay, cfg.lr
    k, n = len(grads), theta0.size
    expected = [oracle_trajectory(theta0[i], grads[:, i], m0[i], v0[i], count0, **opts)
                for i in range(n)]
    bcs = []
    for j in range(k):
        ex = exact_scalars(count0 + j + 1, cfg.betas[0], cfg.betas[1])
        bcs.append((_mp_float(ex["bias_correction1"]), _mp_float(ex["bias_correction2"])))
    theta_tol = np.zeros((k, n))
    m_tol = np.zeros(n)
    v_tol = np.zeros(n)
    b2 = cfg.betas[1]
    for i, e in enumerate(expected):
        theta_prev, m_prev, v_prev = float(theta0[i]), float(m0[i]), float(v0[i])
        biggest, moved, rounding, m_sum, v_sum = abs(theta_prev), 0.0, 0.0, abs(m_prev), 0.0
        for j in range(k):
            theta, m, v = (float(x) for x in e[j])
            g = abs(float(grads[j, i])) + wd * abs(theta_prev)
            bc1, bc2 = bcs[j]
            psi = 1.0 / (math.sqrt(v / bc2) + cfg.eps) if v > 0 or cfg.eps > 0 else math.inf
            rounding += lr * max(1.0, psi) * (b1 * abs(m_prev) + (1 - b1) * g + 4 * eta) / bc1
            biggest = max(biggest, abs(theta))
            moved += abs(theta - theta_prev)
            theta_tol[j, i] = TOL_STEPS * (u * ((j + 1) * biggest + moved + rounding)
                                           + (j + 1) * eta)
            m_sum += b1 * abs(m_prev) + (1 - b1) * g + abs(m) + eta / u
            # g̃ = g + λθ may cancel (L2): its square errs by up to 2u(|g| + λ|θ|)².
            v_sum += b2 * v_prev + (1 - b2) * g * g + v + eta / u
            theta_prev, m_prev, v_prev = theta, m, v
        m_tol[i] = TOL_STEPS * u * m_sum
        v_tol[i] = TOL_STEPS * u * v_sum
    exp_theta = np.array([[float(e[j][0]) for e in expected] for j in range(k)])
    exp_m = np.array([float(e[-1][1]) for e in expected])
    exp_v = np.array([float(e[-1][2]) for e in expected])
    return exp_theta, exp_m, exp_v, theta_tol, m_tol, v_tol


def compare_with_oracle(cfg, theta0, grads, m0, v0, count0, spec_thetas, spec_m, spec_v, u,
                        eta=TINY):
    """The spec's run against the oracle, to the tolerances of :func:`oracle_bounds`."""
    exp_theta, exp_m, exp_v, theta_tol, m_tol, v_tol = oracle_bounds(
        cfg, theta0, grads, m0, v0, count0, u, eta)
    for j in range(len(grads)):
        assert_close(spec_thetas[j], exp_theta[j], theta_tol[j],
                     what=f"theta after step {count0 + j + 1}")
    assert_close(spec_m, exp_m, m_tol, what="m")
    assert_close(spec_v, exp_v, v_tol, what="v")


# --------------------------------------------------------------------------- #
# Algorithm 2 against the per-element oracle
# --------------------------------------------------------------------------- #


@fixture_settings
@given(problem=problems())
def test_trajectory_matches_oracle(xp_case, problem):
    """Every profile and every axis override, drawn hyperparameters, gradient
    streams and starting states (including mid-training counts up to 10⁶)."""
    _, to_array = xp_case
    cfg, theta0, grads, m0, v0, count0 = problem
    thetas, m, v, count = run_spec(cfg, theta0, grads, m0, v0, count0, to_array)
    assert int(count) == count0 + len(grads)
    compare_with_oracle(cfg, theta0, grads, m0, v0, count0, thetas, m, v, 2.0**-53)


LOW_PRECISION = {
    "float32": dict(u=2.0**-24, grad_lo=1e-3, grad_hi=1e2),
    "float16": dict(u=2.0**-11, grad_lo=0.25, grad_hi=16.0),
}


@pytest.mark.parametrize("dtype", sorted(LOW_PRECISION))
@fewer_examples(10, suppress_health_check=_SUPPRESS)
@given(data=st.data())
def test_low_precision_params_track_the_oracle(xp_case, dtype, data):
    """float32 and float16 parameters: the step computes in the parameter's dtype,
    so the oracle (run on the same, exactly representable inputs) is matched to
    TOL_STEPS·u·k·S of that dtype.  float16 draws keep (1 − β₂)g² a normal number
    (β₂ ≤ 0.99, |g| ≥ 1/4) and g² finite (|g| ≤ 16).  array-api-strict has no float16."""
    name, to_array = xp_case
    if dtype == "float16" and name.startswith("array_api_strict"):
        pytest.skip("the array API standard has no float16")
    spec = LOW_PRECISION[dtype]
    beta2 = st.floats(0.6, 0.99) if dtype == "float16" else beta2s
    eps = st.one_of(st.just(0.0), st.floats(1e-3, 1e-2)) if dtype == "float16" else None
    cfg, theta0, grads, m0, v0, count0 = data.draw(problems(
        configs(beta2=beta2, eps=eps), dtype=np.dtype(dtype), max_steps=4,
        grad_lo=spec["grad_lo"], grad_hi=spec["grad_hi"],
        count0=data.draw(st.one_of(st.just(0), st.integers(1, 1000)))))
    if dtype == "float16":
        v0 = np.maximum(v0, 1e-2).astype(np.float16).astype(np.float64)
    thetas, m, v, _ = run_spec(cfg, theta0, grads, m0, v0, count0, to_array, dtype=np.dtype(dtype))
    compare_with_oracle(cfg, theta0, grads, m0, v0, count0, thetas, m, v, spec["u"],
                        eta=float(np.finfo(np.dtype(dtype)).tiny))


# --------------------------------------------------------------------------- #
# β₂ ≤ 0.6: SGD with bias-corrected momentum (§4.2)
# --------------------------------------------------------------------------- #


def sgd_with_bias_corrected_momentum(theta, grads, *, lr, beta1, weight_decay, mode,
                                     maximize, nesterov, moves):
    """Plain Python floats: the update of Alg. 2 line 14 alone, for one element."""
    out, m = [], 0.0
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if mode == "l2":
            g = g + weight_decay * theta
        m = beta1 * m + (1 - beta1) * g
        bc1 = 1.0 if beta1 == 0 else -math.expm1(t * math.log(beta1))
        if nesterov:
            bc1_next = 1.0 if beta1 == 0 else -math.expm1((t + 1) * math.log(beta1))
            m_hat = beta1 * m / bc1_next + (1 - beta1) * g / bc1
        else:
            m_hat = m / bc1
        if mode == "decoupled" or (mode == "decoupled_moving" and moves):
            theta = theta * (1 - lr * weight_decay)
        if moves:
            theta = theta - lr * m_hat
        out.append(theta)
    return out


@fixture_settings
@given(data=st.data())
def test_beta2_at_most_0_6_is_sgd_with_momentum(xp_case, data):
    """β₂ ≤ 0.6 ⇒ ρ∞ ≤ 4, never rectified, whatever threshold, ε or eps placement:
    the whole trajectory is SGD with bias-corrected momentum (or no move at all
    with before_rectification='none')."""
    _, to_array = xp_case
    cfg, theta0, grads, _, _, _ = data.draw(problems(configs(beta2=st.floats(0.0, 0.6)),
                                                     max_steps=8, count0=0))
    thetas, _, _, _ = run_spec(cfg, theta0, grads, np.zeros_like(theta0),
                               np.zeros_like(theta0), 0, to_array)
    moves = cfg.before_rectification == "sgd_momentum"
    for i in range(theta0.size):
        expected = sgd_with_bias_corrected_momentum(
            float(theta0[i]), [float(g) for g in grads[:, i]], lr=cfg.lr, beta1=cfg.betas[0],
            weight_decay=cfg.weight_decay, mode=cfg.weight_decay_mode,
            maximize=cfg.maximize, nesterov=cfg.nesterov, moves=moves)
        scale = abs(theta0[i]) + sum(abs(e) for e in expected) + cfg.lr * np.abs(grads[:, i]).sum() * 10
        got = [float(th[i]) for th in thetas]
        for j, (a, b) in enumerate(zip(got, expected)):
            assert abs(a - b) <= 64 * (2.0**-53 * (j + 1) * scale + TINY), (j, a, b)
        if not moves and cfg.weight_decay_mode != "decoupled":
            assert got == [float(theta0[i])] * len(got)


@fixture_settings
@given(data=st.data())
def test_no_update_before_rectification_except_decoupled_decay(xp_case, data):
    """before_rectification='none' (the authors' code since 2021): on the first
    four steps (ρ_t ≤ t ≤ 4 ≤ threshold, never rectified) θ does not move at all,
    and weight decay is applied only by mode 'decoupled' (θ − (αλ)θ or θ·(1 − αλ)
    every step, by decay_form);
    'decoupled_moving' decays only steps that move θ, so not these."""
    _, to_array = xp_case
    mode = data.draw(st.sampled_from(radam_ref.WEIGHT_DECAY_MODES))
    cfg = data.draw(configs(before_rectification="none", weight_decay_mode=mode,
                            weight_decay=data.draw(st.floats(1e-3, 0.5))))
    cfg, theta0, grads, _, _, _ = data.draw(problems(st.just(cfg), max_steps=4, count0=0))
    for t in range(1, len(grads) + 1):
        rho = exact_scalars(t, cfg.betas[0], cfg.betas[1])["rho_t"]
        assert not exact_rectified(rho, cfg.threshold, cfg.comparison)
    thetas, _, _, _ = run_spec(cfg, theta0, grads, np.zeros_like(theta0), np.zeros_like(theta0),
                               0, to_array)
    expected = theta0
    for got in thetas:
        if mode == "decoupled":
            c = cfg.lr * cfg.weight_decay
            expected = expected - c * expected if cfg.decay_form == "subtract" else expected * (1.0 - c)
            # Bit for bit, except that XLA on CPU flushes a subnormal product to zero.
            np.testing.assert_array_equal(got, np.where(np.abs(got) < TINY, got, expected))
            assert np.all(np.abs(got - expected) <= TINY)
        else:
            np.testing.assert_array_equal(got, theta0)


# --------------------------------------------------------------------------- #
# Symmetries in the rectified phase (ε = 0) and elementwise independence
# --------------------------------------------------------------------------- #


@st.composite
def rectified_problems(draw, max_steps=5):
    """ε = eps_root = 0, no L2 weight decay, and every step of the stream rectified
    (checked on the exact ρ_t)."""
    cfg = draw(configs(beta2=st.one_of(st.floats(0.95, 0.9999), st.just(0.999)),
                       eps=st.just(0.0), eps_root=0.0,
                       weight_decay_mode=draw(st.sampled_from(["none", "decoupled",
                                                               "decoupled_moving"]))))
    count0 = draw(st.one_of(st.integers(20, 200), st.integers(200, 10**6)))
    k = draw(st.integers(1, max_steps))
    for t in range(count0 + 1, count0 + k + 1):
        rho = exact_scalars(t, cfg.betas[0], cfg.betas[1])["rho_t"]
        assume(exact_rectified(rho, cfg.threshold, cfg.comparison))
    n = draw(st.integers(1, 5))
    theta0 = np.asarray(draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n)))
    grads = np.asarray([draw(st.lists(magnitudes(1e-3, 1e2, zero=False), min_size=n, max_size=n))
                        for _ in range(k)])
    m0 = np.asarray(draw(st.lists(st.floats(-10, 10), min_size=n, max_size=n)))
    v0 = np.asarray(draw(st.lists(st.floats(1e-4, 100.0), min_size=n, max_size=n)))
    return cfg, theta0, grads, m0, v0, count0


@fixture_settings
@given(problem=rectified_problems(), power=st.integers(-20, 20), c=st.floats(1e-3, 1e3))
def test_rectified_update_is_scale_invariant(xp_case, problem, power, c):
    """ε = 0: scaling every gradient (and so m by c, v by c²) by c > 0 leaves the
    updates unchanged — bit for bit for c = 2ᵏ, to rounding for any c."""
    _, to_array = xp_case
    cfg, theta0, grads, m0, v0, count0 = problem
    base, bm, _, _ = run_spec(cfg, theta0, grads, m0, v0, count0, to_array)
    two_k = 2.0**power
    exact, em, _, _ = run_spec(cfg, theta0, grads * two_k, m0 * two_k, v0 * two_k**2, count0,
                               to_array)
    for a, b in zip(base, exact):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bm * two_k, em)
    scaled, _, _, _ = run_spec(cfg, theta0, grads * c, m0 * c, v0 * c * c, count0, to_array)
    # Both runs have the same exact trajectory: each is within its oracle bound.
    _, _, _, tol_1, _, _ = oracle_bounds(cfg, theta0, grads, m0, v0, count0, 2.0**-53)
    _, _, _, tol_c, _, _ = oracle_bounds(cfg, theta0, grads * c, m0 * c, v0 * c * c, count0,
                                         2.0**-53)
    for j, (a, b) in enumerate(zip(base, scaled)):
        assert np.all(np.abs(a - b) <= tol_1[j] + tol_c[j]), (j, a, b)


@fixture_settings
@given(problem=rectified_problems())
def test_negating_gradients_negates_updates(xp_case, problem):
    """ε = 0, rectified: g → −g (and m₀ → −m₀) turns every update θ_t − θ_{t−1}
    into its negative (weight decay off: it does not depend on g)."""
    _, to_array = xp_case
    cfg, theta0, grads, m0, v0, count0 = problem
    cfg = cfg.replace(weight_decay=0.0)
    pos, _, _, _ = run_spec(cfg, theta0, grads, m0, v0, count0, to_array)
    neg, _, _, _ = run_spec(cfg, theta0, -grads, -m0, v0, count0, to_array)
    # Exactly, θ_t(g) − θ₀ = −(θ_t(−g) − θ₀); each run is within its oracle bound.
    _, _, _, tol_pos, _, _ = oracle_bounds(cfg, theta0, grads, m0, v0, count0, 2.0**-53)
    _, _, _, tol_neg, _, _ = oracle_bounds(cfg, theta0, -grads, -m0, v0, count0, 2.0**-53)
    for j in range(len(grads)):
        moved_pos, moved_neg = pos[j] - theta0, neg[j] - theta0
        assert np.all(np.abs(moved_pos + moved_neg) <= tol_pos[j] + tol_neg[j]), (j, pos, neg)
        big = np.abs(moved_pos) > 2 * (tol_pos[j] + tol_neg[j])
        assert np.all(np.sign(moved_pos[big]) == -np.sign(moved_neg[big]))


@fixture_settings
@given(problem=problems())
def test_odd_symmetry_is_exact(xp_case, problem):
    """Any config, any phase: (θ, g, m) → (−θ, −g, −m) negates θ_t and m_t bit for
    bit (round-to-nearest is symmetric); maximize=True equals negated gradients."""
    _, to_array = xp_case
    cfg, theta0, grads, m0, v0, count0 = problem
    pos, pm, pv, _ = run_spec(cfg, theta0, grads, m0, v0, count0, to_array)
    neg, nm, nv, _ = run_spec(cfg, -theta0, -grads, -m0, v0, count0, to_array)
    for a, b in zip(pos, neg):
        np.testing.assert_array_equal(a, -b)
    np.testing.assert_array_equal(pm, -nm)
    np.testing.assert_array_equal(pv, nv)
    flipped = cfg.replace(maximize=not cfg.maximize)
    other, om, _, _ = run_spec(flipped, theta0, -grads, m0, v0, count0, to_array)
    for a, b in zip(pos, other):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pm, om)


@fixture_settings
@given(problem=problems(max_size=6), seed=st.randoms(use_true_random=False))
def test_elementwise_independence(xp_case, problem, seed):
    """Permuting the elements permutes the results; each element computed alone
    (as a 0-d array) equals its value in the full array, bit for bit — except on
    JAX, whose CPU backend divides an array of ≥ 2 elements by a scalar to within
    1 ulp instead of correctly rounded (x/c ≠ NumPy's x/c for ~40% of elements),
    so there the element alone agrees to 1e-12 of the trajectory's scale."""
    name, to_array = xp_case
    cfg, theta0, grads, m0, v0, count0 = problem
    perm = list(range(theta0.size))
    seed.shuffle(perm)
    base, bm, bv, _ = run_spec(cfg, theta0, grads, m0, v0, count0, to_array)
    shuf, sm, sv, _ = run_spec(cfg, theta0[perm], grads[:, perm], m0[perm], v0[perm], count0,
                               to_array)
    for a, b in zip(base, shuf):
        np.testing.assert_array_equal(a[perm], b)
    np.testing.assert_array_equal(bm[perm], sm)
    np.testing.assert_array_equal(bv[perm], sv)
    i = perm[0]
    alone, _, _, _ = run_spec(cfg, theta0[i:i + 1], grads[:, i:i + 1], m0[i:i + 1], v0[i:i + 1],
                              count0, to_array, shape=())
    scale = np.abs(theta0[i]) + sum(np.abs(b[i] - a[i]) for a, b in zip([theta0] + base, base))
    for a, b in zip(base, alone):
        if name == "jax":
            np.testing.assert_allclose(b, a[i:i + 1], rtol=1e-12, atol=1e-12 * scale)
        else:
            np.testing.assert_array_equal(a[i:i + 1], b)


# --------------------------------------------------------------------------- #
# Namespace, dtype, device, purity, structures
# --------------------------------------------------------------------------- #

_STRUCTURES = {
    "array": lambda a, b, c: a,
    "list": lambda a, b, c: [a, b],
    "tuple": lambda a, b, c: (a, b, c),
    "dict": lambda a, b, c: {"w": a, "b": b},
    "nested": lambda a, b, c: {"layer": [a, (b, c)], "head": {"bias": c}},
}


def _leaves(tree):
    if isinstance(tree, dict):
        return [x for k in tree for x in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [x for item in tree for x in _leaves(item)]
    return [tree]


def _same_structure(a, b):
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(_same_structure(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same_structure, a, b))
    return not isinstance(b, (dict, list, tuple))


@pytest.mark.parametrize("structure", sorted(_STRUCTURES))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@fewer_examples(5, suppress_health_check=_SUPPRESS)
@given(cfg=configs(), steps=st.integers(1, 7))
def test_structure_dtype_device_namespace_preserved_inputs_untouched(
        xp_case, structure, dtype, cfg, steps):
    name, to_array = xp_case
    if dtype == "float16" and name.startswith("array_api_strict"):
        pytest.skip("the array API standard has no float16")
    rng = np.random.default_rng(steps)
    shapes = [(3,), (2, 2), ()]
    raw = [rng.standard_normal(s).astype(dtype) for s in shapes]
    raw_g = [rng.standard_normal(s).astype(dtype) for s in shapes]
    build = _STRUCTURES[structure]
    params = build(*[to_array(x) for x in raw])
    state = radam_ref.init(params)
    assert state.count == 0
    for leaf in _leaves(state.m) + _leaves(state.v):
        assert not np.any(to_numpy(leaf))
    for _ in range(steps):
        grads = build(*[to_array(x) for x in raw_g])
        before = [to_numpy(x) for x in _leaves(params) + _leaves(grads)
                  + _leaves(state.m) + _leaves(state.v)]
        new_params, new_state = radam_ref.step(params, grads, state, cfg)
        after = [to_numpy(x) for x in _leaves(params) + _leaves(grads)
                 + _leaves(state.m) + _leaves(state.v)]
        for b, a in zip(before, after):  # nothing written into the inputs
            np.testing.assert_array_equal(a, b)
        assert _same_structure(params, new_params)
        assert _same_structure(params, new_state.m) and _same_structure(params, new_state.v)
        for old, new in zip(_leaves(params), _leaves(new_params)):
            assert array_api_compat.array_namespace(new) is array_api_compat.array_namespace(old)
            assert type(new) is type(old)
            assert new.dtype == old.dtype and tuple(new.shape) == tuple(old.shape)
            assert array_api_compat.device(new) == array_api_compat.device(old)
        for leaves in (_leaves(new_state.m), _leaves(new_state.v)):
            for old, new in zip(_leaves(params), leaves):
                assert new.dtype == old.dtype
                assert array_api_compat.device(new) == array_api_compat.device(old)
        params, state = new_params, new_state
    assert state.count == steps
    # Each leaf of the container equals the same leaf stepped alone (no cross-talk).
    alone = to_array(raw[0])
    alone_state = radam_ref.init(alone)
    for _ in range(steps):
        alone, alone_state = radam_ref.step(alone, to_array(raw_g[0]), alone_state, cfg)
    np.testing.assert_array_equal(to_numpy(_leaves(params)[0]), to_numpy(alone))


# --------------------------------------------------------------------------- #
# Non-finite values: IEEE propagation by default
# --------------------------------------------------------------------------- #


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on 0/0, inf·0
def test_zero_gradients_with_eps_zero_give_nan_on_the_first_rectified_step(xp_case):
    """ε = 0 and all-zero gradients: m = v = 0, and Alg. 2 line 12 divides 0 by 0.
    Before rectification (t ≤ 4) θ stays put (θ − α·0); at t = 5 θ becomes NaN,
    only in the element whose gradients were all zero."""
    _, to_array = xp_case
    cfg = radam_ref.RAdamConfig(eps=0.0, weight_decay=0.0)
    params = to_array(np.array([1.0, 2.0]))
    state = radam_ref.init(params)
    for t in range(1, 6):
        params, state = radam_ref.step(params, to_array(np.array([0.0, 0.5])), state, cfg)
        got = to_numpy(params)
        if t < 5:
            assert got[0] == 1.0 and np.isfinite(got[1])
        else:
            assert np.isnan(got[0]) and np.isfinite(got[1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy warns on inf·0
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_gradient_propagates(xp_case, bad):
    """nonfinite='propagate' (the default): IEEE arithmetic, element by element.
    A NaN gradient makes that element's m, v, θ NaN; ±inf makes m = ±inf, v = inf,
    θ ∓inf on an SGD step (t = 1) and NaN on a rectified one (inf·(1/inf) = inf·0)."""
    _, to_array = xp_case
    cfg = radam_ref.RAdamConfig(weight_decay=0.0)
    params = to_array(np.array([1.0, 2.0]))
    state = radam_ref.init(params)
    p1, s1 = radam_ref.step(params, to_array(np.array([bad, 0.5])), state, cfg)
    p1, m1, v1 = to_numpy(p1), to_numpy(s1.m), to_numpy(s1.v)
    assert np.isfinite(p1[1]) and np.isfinite(m1[1]) and np.isfinite(v1[1])
    if math.isnan(bad):
        assert np.isnan(p1[0]) and np.isnan(m1[0]) and np.isnan(v1[0])
    else:
        assert m1[0] == bad and v1[0] == math.inf and p1[0] == -bad
        rect_state = radam_ref.RAdamState(count=100, m=state.m, v=state.v)
        p2, _ = radam_ref.step(params, to_array(np.array([bad, 0.5])), rect_state, cfg)
        p2 = to_numpy(p2)
        assert np.isnan(p2[0]) and np.isfinite(p2[1])
