"""JAX: radam_ref.step under jax.jit with a traced step count, and
radam_ref.optax_transform inside optax.chain — with and without x64.

Reference: the exact path (Python-integer counter, host scalars from
``radam_ref.schedule``), itself checked against the mpmath oracle in
tests/test_step_properties.py.  Under jit the scalars come from
``schedule_array`` (within 16 u of exact for ρ_t and the bias corrections,
r_t within 16 u·(2 + ρ_t/(ρ_t − 4)); tests/test_schedule.py).  The traced and
exact trajectories therefore agree to

    |θ_jit − θ_exact| ≤ 64 · u · k · (max|θ| + Σ|Δθ| + α·k)   after k steps,

u the unit roundoff of the parameter dtype (float64 with x64, float32 without).
The tests use β₂ = 0.999, whose ρ_t stays ≥ 0.99 away from the thresholds 4 and
5, so both paths take the same branch at every step.

conftest.py turns x64 on for the whole session; the float32 cases run inside
``jax.enable_x64(False)``.
"""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
optax = pytest.importorskip("optax")

import radam_ref  # noqa: E402

STEPS = 25

CONFIGS = {
    "paper": radam_ref.RAdamConfig(weight_decay=0.01),
    "torch": radam_ref.RAdamConfig.from_profile("torch", lr=1e-2, weight_decay=0.1),
    "optax-nesterov": radam_ref.RAdamConfig.from_profile("optax", nesterov=True, eps_root=1e-9),
    "authors": radam_ref.RAdamConfig.from_profile("authors", weight_decay=0.1, lr=3e-2),
    "tf_addons-maximize": radam_ref.RAdamConfig.from_profile("tf_addons", maximize=True),
}


def _problem(dtype):
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(4).astype(dtype)}
    grads = [{k: (rng.standard_normal(v.shape) * 0.5).astype(dtype) for k, v in params.items()}
             for _ in range(STEPS)]
    return params, grads


def _exact_trajectory(cfg, params, grads):
    """The spec on NumPy with a Python-int counter (exact host scalars)."""
    state = radam_ref.init(params)
    out = []
    for g in grads:
        params, state = radam_ref.step(params, g, state, cfg)
        out.append(params)
    return out


def _bound(trajectory, theta0, lr, u):
    """64·u·k·(max|θ| + Σ|Δθ| + α·k) per leaf after each step k."""
    bounds, prev, moved = [], theta0, {k: 0.0 for k in theta0}
    for k, theta in enumerate(trajectory, start=1):
        b = {}
        for name in theta:
            moved[name] = moved[name] + np.abs(theta[name] - prev[name]).max()
            big = max(np.abs(theta[name]).max(), np.abs(theta0[name]).max())
            b[name] = 64 * u * k * (big + moved[name] + lr * k)
        bounds.append(b)
        prev = theta
    return bounds


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_jitted_step_with_traced_count_matches_exact_path(name, x64):
    cfg = CONFIGS[name]
    dtype = np.float64 if x64 else np.float32
    u = 2.0**-53 if x64 else 2.0**-24
    params, grads = _problem(dtype)
    expected = _exact_trajectory(cfg, params, grads)
    bounds = _bound(expected, params, cfg.lr, u)
    with jax.enable_x64(x64):
        step = jax.jit(lambda p, g, s: radam_ref.step(p, g, s, cfg))
        p = {k: jnp.asarray(v) for k, v in params.items()}
        state = radam_ref.init(p)
        assert state.count == 0 and isinstance(state.count, int)
        for k, g in enumerate(grads):
            p, state = step(p, {kk: jnp.asarray(v) for kk, v in g.items()}, state)
            # jit turned the Python counter into a traced integer array.
            assert isinstance(state.count, jax.Array) and state.count.shape == ()
            assert int(state.count) == k + 1
            for leaf in p:
                got = np.asarray(p[leaf])
                assert got.dtype == dtype
                diff = np.abs(got.astype(np.float64) - expected[k][leaf].astype(np.float64)).max()
                assert diff <= bounds[k][leaf], (k + 1, leaf, diff, bounds[k][leaf])
        # The count is really traced: two compilations for 25 steps, one for the
        # Python-int counter of init (a weakly typed scalar), one for the int array after.
        assert step._cache_size() == 2


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_jitted_update_matches_exact_update_per_step(name, x64):
    """A sharp check of the traced scalars: from the same state (m, v and count
    t − 1 as a 0-d array), with θ = 0 and no weight decay so that θ_t = −Δ_t,
    |Δ_jit − Δ_exact| ≤ 16·u·(c_t·|Δ| + A_t) for t = 1..60, where
    c_t = 2 + ρ_t/(ρ_t − 4) on rectified steps (1 before) is the condition of r_t
    and A_t = α·max(1, r_t ψ̂_t)·(β₁|m_{t−1}| + (1−β₁)|g_t|)/(1 − β₁ᵗ) (×3 with
    Nesterov) covers the rounding of m_t (XLA may fuse the moment update)."""
    cfg = CONFIGS[name].replace(weight_decay=0.0)
    dtype = np.float64 if x64 else np.float32
    u = 2.0**-53 if x64 else 2.0**-24
    rng = np.random.default_rng(5)
    zero = np.zeros(40, dtype)
    state = radam_ref.init(zero)
    with jax.enable_x64(x64):
        step = jax.jit(lambda p, g, s: radam_ref.step(p, g, s, cfg))
        for t in range(1, 61):
            g = rng.standard_normal(zero.shape).astype(dtype)
            exact_p, exact_state = radam_ref.step(zero, g, state, cfg)
            traced_state = radam_ref.RAdamState(jnp.asarray(t - 1), jnp.asarray(state.m),
                                                jnp.asarray(state.v))
            jit_p, jit_state = step(jnp.asarray(zero), jnp.asarray(g), traced_state)
            sched = cfg.schedule(t)
            cond = 2 + sched.rho_t / (sched.rho_t - 4) if sched.rectified else 1.0
            gain = (sched.r_t * np.sqrt(sched.bias_correction2)
                    / (np.sqrt(exact_state.v.astype(np.float64)) + cfg.eps)) if sched.rectified else 0.0
            rounding = cfg.lr * np.maximum(1.0, gain) * (
                cfg.beta1 * np.abs(state.m) + (1 - cfg.beta1) * np.abs(g)
            ) / sched.bias_correction1 * (3 if cfg.nesterov else 1)
            diff = np.abs(np.asarray(jit_p, np.float64) - exact_p.astype(np.float64))
            bound = 16 * u * (cond * np.abs(exact_p.astype(np.float64)) + rounding)
            assert np.all(diff <= bound), (t, float(np.max(diff / bound)))
            # v_t to rounding (XLA may contract β₂v + (1−β₂)g² into a fused multiply-add).
            np.testing.assert_allclose(np.asarray(jit_state.v), exact_state.v, rtol=4 * u, atol=0)
            state = exact_state


def test_jitted_step_sgd_phase_within_two_ulps():
    """Before rectification (t ≤ 4, the SGD branch) the float64 traced and exact
    paths differ only through 1 − β₁ᵗ (within a few ulps of each other): θ agrees
    to 2 ulps."""
    cfg = radam_ref.RAdamConfig(weight_decay=0.0)
    params, grads = _problem(np.float64)
    expected = _exact_trajectory(cfg, params, grads[:4])
    step = jax.jit(lambda p, g, s: radam_ref.step(p, g, s, cfg))
    p = {k: jnp.asarray(v) for k, v in params.items()}
    state = radam_ref.init(p)
    for k, g in enumerate(grads[:4]):
        p, state = step(p, {kk: jnp.asarray(v) for kk, v in g.items()}, state)
        for leaf in p:
            np.testing.assert_allclose(np.asarray(p[leaf]), expected[k][leaf], rtol=0,
                                       atol=2 * np.spacing(np.abs(expected[k][leaf]).max()))


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
def test_optax_transform_inside_chain_under_jit(x64):
    """optax.chain(clip_by_global_norm, radam_ref.optax_transform(cfg)) under jit
    equals clipping by hand followed by the exact spec step."""
    cfg = radam_ref.RAdamConfig.from_profile("optax", lr=1e-2)
    dtype = np.float64 if x64 else np.float32
    u = 2.0**-53 if x64 else 2.0**-24
    params, grads = _problem(dtype)
    max_norm = 1.0

    def clip(g):
        norm = np.sqrt(sum(float(np.sum(np.asarray(v, np.float64) ** 2)) for v in g.values()))
        scale = min(1.0, max_norm / norm)
        return {k: (v * scale).astype(dtype) for k, v in g.items()}

    expected = _exact_trajectory(cfg, params, [clip(g) for g in grads])
    bounds = _bound(expected, params, cfg.lr, u)
    with jax.enable_x64(x64):
        tx = optax.chain(optax.clip_by_global_norm(max_norm), radam_ref.optax_transform(cfg))
        p = {k: jnp.asarray(v) for k, v in params.items()}
        opt_state = tx.init(p)

        @jax.jit
        def train_step(p, g, s):
            updates, s = tx.update(g, s, p)
            return optax.apply_updates(p, updates), s

        for k, g in enumerate(grads):
            p, opt_state = train_step(p, {kk: jnp.asarray(v) for kk, v in g.items()}, opt_state)
            for leaf in p:
                got = np.asarray(p[leaf])
                assert got.dtype == dtype
                diff = np.abs(got.astype(np.float64) - expected[k][leaf].astype(np.float64)).max()
                # + clipping: the norm is computed in the dtype by optax, in float64 here.
                assert diff <= 4 * bounds[k][leaf], (k + 1, leaf, diff, bounds[k][leaf])
        assert int(opt_state[1].count) == STEPS


def test_optax_transform_returns_updates_and_state():
    """update returns θ_t − θ_{t−1} (so apply_updates gives the spec's θ_t) and the
    count is a 0-d int32 array from init on."""
    cfg = radam_ref.RAdamConfig()
    tx = radam_ref.optax_transform(cfg)
    assert isinstance(tx, optax.GradientTransformation)
    params, grads = _problem(np.float64)
    p = {k: jnp.asarray(v) for k, v in params.items()}
    state = tx.init(p)
    assert state.count.dtype == jnp.int32 and state.count.shape == () and int(state.count) == 0
    updates, state2 = tx.update({k: jnp.asarray(v) for k, v in grads[0].items()}, state, p)
    ref_params, ref_state = radam_ref.step(params, grads[0], radam_ref.init(params), cfg)
    for leaf in p:
        np.testing.assert_allclose(np.asarray(optax.apply_updates(p, updates)[leaf]),
                                   ref_params[leaf], rtol=0, atol=1e-15)
        np.testing.assert_allclose(np.asarray(state2.m[leaf]), ref_state.m[leaf], rtol=1e-15)
    assert int(state2.count) == 1
    # The default config is the paper profile.
    assert radam_ref.optax_transform().update is not None
