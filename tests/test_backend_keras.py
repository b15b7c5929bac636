"""Tests of ``radam_ref.backends.keras.RAdam``, the Keras 3 optimizer.

In this process Keras runs on one backend (``KERAS_BACKEND``, else JAX with x64,
else torch): Hypothesis properties compare it with :func:`radam_ref.step` (the
spec, exact host scalars) over every profile and axis in float32 and float64;
the rest checks the Keras side (get_config round trip, save/load mid-run,
weight-decay exclusion, None gradients, errors, ``model.fit``).  Every Keras
backend installed (jax, torch, tensorflow) then gets its own subprocess, which
runs the conformance suite on the paper profile and fits a small model.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from radam_ref.conformance.adapters.keras_optimizer import BACKENDS, select_backend

try:
    BACKEND = select_backend()
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"Keras 3 is not installed (pip install 'radam-ref[keras]'): {exc}",
                allow_module_level=True)

import keras  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from keras import ops  # noqa: E402

import radam_ref  # noqa: E402
from radam_ref import PROFILES, NonFiniteGradientError, RAdamConfig  # noqa: E402
from radam_ref._config import (  # noqa: E402
    BEFORE_RECTIFICATION,
    DECAY_FORMS,
    EPS_PLACEMENTS,
    WEIGHT_DECAY_MODES,
)
from radam_ref.backends.keras import AXES, RAdam  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

F64 = BACKEND != "jax" or keras.ops.convert_to_tensor(np.zeros(1), dtype="float64").dtype == "float64"
DTYPES = ["float64", "float32"] if F64 else ["float32"]


@pytest.fixture(autouse=True)
def _restore_floatx():
    previous = keras.config.floatx()
    yield
    keras.config.set_floatx(previous)


def _floatx_for(dtype: str) -> None:
    """Keras keeps the learning rate in a floatx variable: float64 for float64 runs."""
    keras.config.set_floatx("float64" if dtype == "float64" else "float32")


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x))


# --------------------------------------------------------------------------- #
# Against the spec
# --------------------------------------------------------------------------- #


@st.composite
def configs(draw) -> RAdamConfig:
    """A profile with every axis and hyperparameter drawn independently."""
    profile = draw(st.sampled_from(sorted(PROFILES)))
    return RAdamConfig.from_profile(
        profile,
        lr=draw(st.sampled_from([1e-3, 1e-2, 0.1, 0.37])),
        betas=(draw(st.sampled_from([0.0, 0.5, 0.9, 0.95])),
               draw(st.sampled_from([0.5, 0.6, 0.9, 0.99, 0.999, 0.9999, 0.99999]))),
        eps=draw(st.sampled_from([0.0, 1e-8, 1e-6, 1e-3])),
        weight_decay=draw(st.sampled_from([0.0, 1e-3, 0.1])),
        threshold=draw(st.sampled_from([4.0, 5.0, 6.5])),
        comparison=draw(st.sampled_from([">", ">="])),
        eps_placement=draw(st.sampled_from(EPS_PLACEMENTS)),
        eps_root=draw(st.sampled_from([0.0, 1e-10])),
        weight_decay_mode=draw(st.sampled_from(WEIGHT_DECAY_MODES)),
        decay_form=draw(st.sampled_from(DECAY_FORMS)),
        before_rectification=draw(st.sampled_from(BEFORE_RECTIFICATION)),
        nesterov=draw(st.booleans()),
        maximize=draw(st.booleans()),
    )


def _spec_run(config, p0, grads, dtype):
    """θ, m, v after each step from radam_ref.step on NumPy arrays (exact scalars)."""
    params = [np.array(p, dtype=dtype) for p in p0]
    state = radam_ref.init(params)
    out = []
    for row in grads:
        params, state = radam_ref.step(params, [np.asarray(g, dtype=dtype) for g in row], state, config)
        out.append(([p.copy() for p in params], [m.copy() for m in state.m], [v.copy() for v in state.v]))
    return out


def _keras_run(config, p0, grads, dtype):
    _floatx_for(dtype)
    variables = [keras.Variable(np.array(p, dtype=dtype), dtype=dtype) for p in p0]
    opt = RAdam.from_radam_config(config)
    out = []
    for row in grads:
        opt.apply_gradients(zip([ops.convert_to_tensor(np.asarray(g, dtype=dtype)) for g in row], variables))
        out.append(([_np(v) for v in variables], [_np(m) for m in opt._momentums],
                    [_np(v) for v in opt._velocities]))
    return opt, variables, out


def _assert_follows_spec(got, want, dtype, p0, config, what=""):
    """θ within 32 ulp of |θ| plus 32 ulp of its path length Σ|θ_t − θ_{t−1}| from
    θ_0 = ``p0`` (the step scalars come from schedule_array, within a few ulp of
    the exact ones, so each step's size may differ by a few ulp of itself).
    Moments within 4 ulp, plus, under L2 weight decay (g' = g + λθ), what θ's own
    tolerance δθ feeds into them: |δm| ≤ λ·max δθ and |δv| ≤ 2·max|g'|·λ·max δθ,
    with |g'| ≤ sqrt(v/(1 − β₂)) since v ≥ (1 − β₂)·g'²."""
    eps = float(np.finfo(dtype).eps)
    lam = config.weight_decay if config.weight_decay_mode == "l2" else 0.0
    path = [np.zeros(np.shape(p), dtype=np.float64) for p in p0]
    prev = [np.asarray(p, dtype=np.float64) for p in p0]
    worst = [np.zeros(np.shape(p), dtype=np.float64) for p in p0]   # max δθ so far
    gmax = [np.zeros(np.shape(p), dtype=np.float64) for p in p0]    # max |g'| so far
    for t, ((gp, gm, gv), (wp, wm, wv)) in enumerate(zip(got, want), start=1):
        for j in range(len(wp)):
            w = wp[j].astype(np.float64)
            wv_ = wv[j].astype(np.float64)
            with np.errstate(all="ignore"):
                gmax[j] = np.fmax(gmax[j], np.sqrt(np.abs(wv_) / max(1.0 - config.beta2, 1e-300)))
            m_atol = lam * worst[j] + np.finfo(dtype).tiny
            v_atol = 2.0 * gmax[j] * lam * worst[j] + np.finfo(dtype).tiny
            for name, g_, w_, atol in (("m", gm[j], wm[j], m_atol), ("v", gv[j], wv_, v_atol)):
                g_ = g_.astype(np.float64)
                w_ = w_.astype(np.float64)
                ok = (np.abs(g_ - w_) <= 4 * eps * np.abs(w_) + atol) | (np.isnan(g_) & np.isnan(w_)) | (g_ == w_)
                assert ok.all(), f"{name}[{j}] at step {t} {what}: got {g_!r}, spec {w_!r}"
            step = np.abs(w - prev[j])
            path[j] = path[j] + np.where(np.isfinite(step), step, 0.0)
            prev[j] = w
            tol = 32 * eps * (np.abs(np.where(np.isfinite(w), w, 0.0)) + path[j]) + np.finfo(dtype).tiny
            worst[j] = np.fmax(worst[j], tol)
            g = gp[j].astype(np.float64)
            ok = (np.abs(g - w) <= tol) | (np.isnan(g) & np.isnan(w)) | (g == w)
            assert ok.all(), f"θ[{j}] at step {t} {what}: got {g!r}, spec {w!r}, tolerance {tol!r}"


@settings(deadline=None)
@given(config=configs(), dtype=st.sampled_from(DTYPES), steps=st.integers(1, 12),
       sizes=st.lists(st.integers(1, 4), min_size=1, max_size=2), seed=st.integers(0, 2**32 - 1),
       scale=st.sampled_from([1e-3, 1.0, 10.0]))
def test_follows_the_spec(config, dtype, steps, sizes, seed, scale):
    rng = np.random.default_rng(seed)
    p0 = [rng.standard_normal(n).astype(dtype) for n in sizes]
    grads = [[(scale * rng.standard_normal(n)).astype(dtype) for n in sizes] for _ in range(steps)]
    _, _, got = _keras_run(config, p0, grads, dtype)
    _assert_follows_spec(got, _spec_run(config, p0, grads, dtype), dtype, p0, config, f"({config}, {dtype})")


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_rectified_step_is_the_papers(dtype):
    """β₂ = 0.999: ρ_4 ≈ 3.9960 and ρ_5 ≈ 4.9960 (SPEC-NOTES), so with threshold 4 steps
    1–4 are SGD with bias-corrected momentum and step 5 is the first adaptive one:
    with a constant gradient g, m̂_t = g and the update is α·g exactly until then."""
    _floatx_for(dtype)
    var = keras.Variable(np.zeros(1, dtype=dtype), dtype=dtype)
    opt = RAdam(learning_rate=0.5, beta_1=0.9, beta_2=0.999)
    moves = []
    for _ in range(6):
        before = float(_np(var)[0])
        opt.apply_gradients([(ops.convert_to_tensor(np.ones(1, dtype=dtype)), var)])
        moves.append(before - float(_np(var)[0]))
    assert moves[:4] == pytest.approx([0.5] * 4, rel=8 * float(np.finfo(dtype).eps))
    # Step 5: α r_5 · m̂ · sqrt(1 − β₂⁵)/(sqrt(v_5) + ε) with m̂ = 1, v_5 = 1 − β₂⁵ = 1 − 0.999⁵.
    from fractions import Fraction

    b2 = Fraction(0.999)
    rho_inf = 2 / (1 - b2) - 1
    rho5 = rho_inf - 10 * b2**5 / (1 - b2**5)
    r5 = float((rho5 - 4) * (rho5 - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho5)) ** 0.5
    v5 = float(1 - b2**5)
    assert moves[4] == pytest.approx(0.5 * r5 * v5**0.5 / (v5**0.5 + 1e-8), rel=64 * float(np.finfo(dtype).eps))
    assert 0 < moves[4] < 0.5 * 0.1


def test_exclude_from_weight_decay_is_honoured_by_every_mode():
    for mode in ("l2", "decoupled", "decoupled_moving"):
        _floatx_for("float64" if F64 else "float32")
        dtype = DTYPES[0]
        config = RAdamConfig(lr=0.05, weight_decay=0.3, weight_decay_mode=mode)
        kernel = keras.Variable(np.array([1.0, -2.0], dtype=dtype), dtype=dtype, name="kernel")
        bias = keras.Variable(np.array([0.5], dtype=dtype), dtype=dtype, name="bias")
        opt = RAdam.from_radam_config(config)
        opt.exclude_from_weight_decay(var_names=["bias"])
        grads = [np.array([0.3, 0.1]), np.array([-0.2])]
        for _ in range(7):
            opt.apply_gradients(zip([ops.convert_to_tensor(np.asarray(g, dtype=dtype)) for g in grads],
                                    [kernel, bias]))
        kernel_spec = _spec_run(config, [np.array([1.0, -2.0])], [[grads[0]]] * 7, dtype)[-1][0][0]
        bias_spec = _spec_run(config.replace(weight_decay=0.0), [np.array([0.5])], [[grads[1]]] * 7, dtype)[-1][0][0]
        np.testing.assert_allclose(_np(kernel), kernel_spec, rtol=64 * np.finfo(dtype).eps, err_msg=mode)
        np.testing.assert_allclose(_np(bias), bias_spec, rtol=64 * np.finfo(dtype).eps, err_msg=mode)


def test_keras_builtin_weight_decay_is_not_applied_on_top():
    """Keras' base optimizer would also shrink θ by θλα before each step; with
    weight_decay_mode="l2" the only decay is the spec's λθ added to g."""
    dtype = DTYPES[0]
    _floatx_for(dtype)
    config = RAdamConfig(lr=0.1, weight_decay=0.5, weight_decay_mode="l2")
    var = keras.Variable(np.array([2.0], dtype=dtype), dtype=dtype)
    opt = RAdam.from_radam_config(config)
    opt.apply_gradients([(ops.convert_to_tensor(np.zeros(1, dtype=dtype)), var)])
    # Step 1 (not rectified): g = λθ = 1, m̂ = g, θ = 2 − α·1 = 1.9 (Keras' decay would give 1.8).
    assert float(_np(var)[0]) == pytest.approx(1.9, rel=8 * float(np.finfo(dtype).eps))


# --------------------------------------------------------------------------- #
# Keras side
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_get_config_round_trips_every_option(profile):
    opt = RAdam(learning_rate=3e-3, weight_decay=0.01, profile=profile, nesterov=True, clipnorm=1.0,
                name="my_radam")
    config = opt.get_config()
    assert set(AXES) | {"learning_rate", "beta_1", "beta_2", "epsilon", "weight_decay", "profile"} <= set(config)
    assert config["learning_rate"] == 3e-3  # exact, although the Keras variable is float32
    again = RAdam.from_config(opt.get_config())
    assert again.get_config() == config
    assert again.radam_config == opt.radam_config == RAdamConfig.from_profile(
        profile, lr=3e-3, weight_decay=0.01, nesterov=True)
    rebuilt = keras.optimizers.deserialize(keras.optimizers.serialize(opt),
                                           custom_objects={"RAdam": RAdam})
    assert isinstance(rebuilt, RAdam) and rebuilt.get_config() == config
    json.dumps(config)


def test_learning_rate_schedule_round_trips():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5)
    opt = RAdam(learning_rate=schedule)
    again = RAdam.from_config(opt.get_config())
    assert isinstance(again._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert again.get_config() == opt.get_config()


@pytest.mark.parametrize("dtype", DTYPES)
def test_save_and_load_mid_run_resumes_bit_identically(dtype):
    _floatx_for(dtype)
    rng = np.random.default_rng(7)
    config = RAdamConfig.from_profile("paper", lr=0.03, weight_decay=0.01, betas=(0.9, 0.99))
    p0 = [rng.standard_normal(3).astype(dtype), rng.standard_normal((2, 2)).astype(dtype)]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in p0] for _ in range(12)]

    def tensors(row):
        return [ops.convert_to_tensor(g) for g in row]

    a_vars = [keras.Variable(p, dtype=dtype) for p in p0]
    a = RAdam.from_radam_config(config)
    for row in grads[:6]:
        a.apply_gradients(zip(tensors(row), a_vars))
    store: dict = {}
    a.save_own_variables(store)
    blob = pickle.dumps(store)
    at_6 = [_np(v).copy() for v in a_vars]
    for row in grads[6:]:
        a.apply_gradients(zip(tensors(row), a_vars))

    b_vars = [keras.Variable(p, dtype=dtype) for p in at_6]
    b = RAdam.from_radam_config(config)
    b.build(b_vars)
    b.load_own_variables(pickle.loads(blob))
    assert int(_np(b.iterations)) == 6
    for row in grads[6:]:
        b.apply_gradients(zip(tensors(row), b_vars))
    for x, y in zip(a_vars + a.variables, b_vars + b.variables):
        np.testing.assert_array_equal(_np(x), _np(y))


def test_model_save_and_load_model_resume_training_bit_identically(tmp_path):
    """model.save stores the optimizer (config and variables); load_model rebuilds it
    (registered as radam_ref>RAdam, no custom_objects) and training resumes exactly."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 3)).astype("float32")
    y = (x @ rng.standard_normal((3, 1))).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=RAdam(learning_rate=1e-2, weight_decay=1e-3, profile="timm"), loss="mse")
    model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, RAdam)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(_np(loaded.optimizer.iterations)) == 4
    for m in (model, loaded):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.weights + model.optimizer.variables, loaded.weights + loaded.optimizer.variables):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_none_gradient_skips_the_variable_but_the_counter_advances():
    """Keras' convention (documented): one step counter per optimizer."""
    dtype = DTYPES[0]
    _floatx_for(dtype)
    a = keras.Variable(np.array([1.0], dtype=dtype), dtype=dtype)
    b = keras.Variable(np.array([2.0], dtype=dtype), dtype=dtype)
    opt = RAdam(learning_rate=0.1)
    opt.build([a, b])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt.apply_gradients([(ops.convert_to_tensor(np.ones(1, dtype=dtype)), a), (None, b)])
    assert float(_np(a)[0]) == pytest.approx(0.9, rel=8 * float(np.finfo(dtype).eps))
    assert float(_np(b)[0]) == 2.0
    assert float(_np(opt._momentums[1])[0]) == 0.0 and float(_np(opt._velocities[1])[0]) == 0.0
    assert int(_np(opt.iterations)) == 1


def test_nonfinite_raise_checks_before_anything_changes():
    dtype = DTYPES[0]
    _floatx_for(dtype)
    a = keras.Variable(np.array([1.0, 2.0], dtype=dtype), dtype=dtype)
    b = keras.Variable(np.array([3.0], dtype=dtype), dtype=dtype)
    opt = RAdam(learning_rate=0.1, nonfinite="raise")
    grads = [ops.convert_to_tensor(np.ones(2, dtype=dtype)), ops.convert_to_tensor(np.array([np.nan], dtype=dtype))]
    with pytest.raises(NonFiniteGradientError, match="non-finite elements at step 1"):
        opt.apply_gradients(zip(grads, [a, b]))
    np.testing.assert_array_equal(_np(a), [1.0, 2.0])
    np.testing.assert_array_equal(_np(b), [3.0])
    assert all(not np.any(_np(v)) for v in opt.variables if v.path.endswith(("momentum", "velocity")))
    assert int(_np(opt.iterations)) == 0


@pytest.mark.skipif(BACKEND == "torch", reason="Keras on torch steps eagerly")
def test_nonfinite_raise_in_a_compiled_step_says_why_it_cannot():
    var = keras.Variable(np.ones(2, dtype="float32"), dtype="float32")
    opt = RAdam(nonfinite="raise")
    opt.build([var])
    if BACKEND == "jax":
        import jax

        step = jax.jit(lambda ov, g, tv: opt.stateless_apply(ov, g, tv))
        run = lambda: step([v.value for v in opt.variables], [ops.ones(2)], [var.value])  # noqa: E731
    else:
        import tensorflow as tf

        run = tf.function(lambda: opt.apply_gradients([(ops.ones(2), var)]))
    with pytest.raises(ValueError, match="nonfinite='raise'.*compiled step"):
        run()


def test_stateless_apply_under_jit_equals_eager():
    if BACKEND != "jax":
        pytest.skip("stateless_apply under jit is the JAX training path")
    import jax

    config = RAdamConfig.from_profile("optax", lr=0.05, nesterov=True)
    p0, rng = np.array([0.5, -1.0, 2.0], dtype="float32"), np.random.default_rng(3)
    grads = [rng.standard_normal(3).astype("float32") for _ in range(8)]
    eager_var = keras.Variable(p0, dtype="float32")
    eager = RAdam.from_radam_config(config)
    for g in grads:
        eager.apply_gradients([(ops.convert_to_tensor(g), eager_var)])
    var = keras.Variable(p0, dtype="float32")
    opt = RAdam.from_radam_config(config)
    opt.build([var])
    step = jax.jit(lambda ov, g, tv: opt.stateless_apply(ov, g, tv))
    tv, ov = [var.value], [v.value for v in opt.variables]
    for g in grads:
        tv, ov = step(ov, [g], tv)
    np.testing.assert_allclose(np.asarray(tv[0]), _np(eager_var), rtol=8 * np.finfo(np.float32).eps)


ERRORS = [
    ({"beta_2": 1.0}, ValueError, r"beta parameter at index 1: 1\.0"),
    ({"epsilon": -1.0}, ValueError, r"epsilon value: -1\.0"),
    ({"learning_rate": -0.1}, ValueError, r"learning rate value: -0\.1"),
    ({"learning_rate": True}, TypeError, r"learning_rate must be a real number, got True"),
    ({"threshold": 3.0}, ValueError, r"threshold: 3\.0"),
    ({"comparison": "<"}, ValueError, r"comparison: '<'"),
    ({"weight_decay_mode": "adamw"}, ValueError, r"weight_decay_mode: 'adamw'"),
    ({"decay_form": "divide"}, ValueError, r"decay_form: 'divide'"),
    ({"profile": "keras"}, ValueError, r"Unknown profile: 'keras'"),
    ({"profile": 5}, TypeError, r"profile must be a string, got 5"),
    ({"amsgrad": True}, ValueError, r"not recognized"),
]


@pytest.mark.parametrize("kwargs,error,match", ERRORS, ids=[str(k) for k, _, _ in ERRORS])
def test_invalid_options_name_the_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        RAdam(**kwargs)


@pytest.mark.parametrize("dtype", ["int32", "complex64"])
def test_non_real_floating_variables_are_rejected(dtype):
    try:
        var = keras.Variable(np.zeros(2, dtype=dtype), dtype=dtype, trainable=False, name="w")
    except Exception as exc:  # noqa: BLE001 - a backend without this variable dtype
        pytest.skip(f"Keras {BACKEND} cannot hold a {dtype} variable: {exc}")
    with pytest.raises(TypeError, match=rf"real floating variables.*'?w'? has dtype {dtype}"):
        RAdam().build([var])


def test_fit_trains_a_small_model():
    """The docs' example, shortened: the loss decreases over 3 epochs."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype("float32")
    y = (x @ rng.standard_normal((8, 1)) + 0.1 * rng.standard_normal((256, 1))).astype("float32")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=RAdam(learning_rate=1e-2), loss="mse")
    history = model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0], losses
    assert int(_np(model.optimizer.iterations)) == 3 * 256 // 32


def test_missing_keras_names_the_extra():
    code = ("import sys; sys.modules['keras'] = None\n"
            "try:\n    import radam_ref.backends.keras\n"
            "except ImportError as exc:\n    print(exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'radam-ref[keras]'" in proc.stdout, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- #
# The conformance suite on every installed Keras backend, one process each
# --------------------------------------------------------------------------- #

_WORKER = textwrap.dedent("""
    import json, sys, time, warnings
    start = time.perf_counter()
    from radam_ref.conformance import run_conformance
    report = run_conformance("radam_ref.backends.keras", {"backend": sys.argv[1]},
                             max_examples=int(sys.argv[2]), horizon=int(sys.argv[3]), fingerprint=False,
                             shrink_seconds=2.0)
    import keras
    import numpy as np
    from radam_ref.backends.keras import RAdam
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype("float32")
    y = (x @ rng.standard_normal((4, 1))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=RAdam(learning_rate=1e-2), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        losses = model.fit(x, y, epochs=3, batch_size=32, verbose=0).history["loss"]
    print("RESULT " + json.dumps({
        "backend": keras.backend.backend(), "verdict": report.verdict, "dtype": report.dtype,
        "checks": [[r.check, r.verdict, r.summary] for r in report.results],
        "losses": losses, "seconds": time.perf_counter() - start}))
""")

#: backend -> (max_examples, horizon): small budgets, the suite's drawing still shrinks.
BUDGET = {"jax": (2, 1000), "torch": (2, 1000), "tensorflow": (2, 300)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_conformance_and_fit_on_each_keras_backend(backend):
    import importlib.util

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"Keras backend {backend!r} is not installed (pip install {backend}"
                    f"{'-cpu' if backend == 'tensorflow' else ''})")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONHASHSEED", None)
    examples, horizon = BUDGET[backend]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WORKER, backend, str(examples), str(horizon)],
                          capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"{backend}: {result['verdict']} in {wall:.1f}s: {result['checks']}")
    assert result["backend"] == backend
    verdicts = {check: verdict for check, verdict, _ in result["checks"]}
    assert result["verdict"] == "conforms", result["checks"]
    assert {c for c, v in verdicts.items() if v == "not supported"} <= {"grad_none", "autodiff", "complex"}
    assert verdicts["trajectories"] == verdicts["long_horizon"] == verdicts["state_dict"] == "pass"
    losses = result["losses"]
    assert losses[-1] < losses[0], losses

