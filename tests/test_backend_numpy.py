"""The fused NumPy backend against the spec (radam_ref.step) and independent formulas.

Tolerances (also in docs/backends.md): per step, given the same inputs, float64
and float32 results are within 4 ulp of the spec's (the backend performs the
spec's operations in order, so 0 ulp is what this machine shows); float16
parameters equal the spec run in float32 and rounded once, within 1 float16 ulp.
"""

from __future__ import annotations

import contextlib
import copy
import pickle
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import radam_ref
from radam_ref import NonFiniteGradientError, RAdamConfig, RAdamState
from radam_ref.backends import numpy as backend

from _backend_strategies import assert_ulp, configs, grads_for, layouts, make_view

MAX_ULP = {np.dtype(np.float64): 4, np.dtype(np.float32): 4}


@contextlib.contextmanager
def _threads(parallel: bool):
    """Force the parallel kernel (on every core) or the calling-thread one."""
    saved = backend.PARALLEL_MIN_ELEMENTS
    backend.PARALLEL_MIN_ELEMENTS = 0 if parallel else 2**62
    try:
        yield
    finally:
        backend.PARALLEL_MIN_ELEMENTS = saved


def _start_state(shapes, dtype, count, seed):
    """A mid-run spec state: random m, non-negative v, at ``count``."""
    rng = np.random.default_rng(seed)
    compute = backend.compute_dtype(dtype)
    m = [np.asarray(rng.standard_normal(s) * 0.1, dtype=compute) for s in shapes]
    v = [np.asarray(rng.standard_normal(s) ** 2 * 0.01, dtype=compute) for s in shapes]
    return RAdamState(count=count, m=m, v=v)


def _spec_step(params, grads, state, config, storage):
    """The spec's step for the backend's storage/compute dtype policy."""
    compute = backend.compute_dtype(storage)
    p = [np.array(x, dtype=compute) for x in params]
    g = [np.array(x, dtype=compute) for x in grads]
    spec = RAdamState(state.count, [x.copy() for x in state.m], [x.copy() for x in state.v])
    with np.errstate(all="ignore"):  # IEEE propagation is part of what is compared
        new_p, new_state = radam_ref.step(p, g, spec, config)
        return [x.astype(storage) for x in new_p], new_state


# --------------------------------------------------------------------------- properties


@given(config=configs(), layout=layouts, dtype=st.sampled_from([np.float32, np.float64]),
       count=st.integers(0, 12), n_steps=st.integers(1, 5), parallel=st.booleans(),
       data=st.data())
def test_each_step_matches_spec(config, layout, dtype, count, n_steps, parallel, data):
    """Drawn profiles, hyperparameters, shapes (0-size, 0-d, strided, transposed and
    reversed views), dtypes and gradient streams: every step within MAX_ULP of the
    spec's step from the same inputs, and nothing outside the views is touched."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shapes = [shape for shape, _, _ in layout]
    bases, params = [], []
    for shape, p_view, _ in layout:
        base, view = make_view(np.asarray(rng.standard_normal(shape), dtype), p_view, 7.0, rng)
        bases.append(base)
        params.append(view)
    state = backend.from_spec_state(_start_state(shapes, dtype, count, 1), params)
    for _ in range(n_steps):
        grads = [make_view(g, g_view, np.nan, rng)[1]
                 for g, (_, _, g_view) in zip(data.draw(grads_for(shapes, dtype)), layout)]
        spec_state = backend.to_spec_state(state)
        expected_p, expected_state = _spec_step(params, grads, spec_state, config, dtype)
        with _threads(parallel):
            backend.step_(params, grads, state, config)
        assert state.count == expected_state.count
        for i in range(len(params)):
            tol = MAX_ULP[np.dtype(dtype)]
            assert_ulp(params[i], expected_p[i], tol, f"params[{i}] at t={state.count}")
            assert_ulp(state.m[i], expected_state.m[i], tol, f"m[{i}] at t={state.count}")
            assert_ulp(state.v[i], expected_state.v[i], tol, f"v[{i}] at t={state.count}")
    for base, (shape, p_view, _) in zip(bases, layout):
        inside, _ = make_view(np.ones(shape, dtype=bool), p_view, False, rng)
        assert (base[~inside] == 7.0).all(), "step_ wrote outside the parameter view"


@given(config=configs(), layout=layouts, count=st.integers(0, 12),
       n_steps=st.integers(1, 4), parallel=st.booleans(), data=st.data())
def test_float16_params_step_in_float32(config, layout, count, n_steps, parallel, data):
    """float16 parameters: float32 state and arithmetic, θ rounded once per step."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shapes = [shape for shape, _, _ in layout]
    params = [make_view(np.asarray(rng.standard_normal(s), np.float16), pv, 0.0, rng)[1]
              for s, pv, _ in layout]
    state = backend.from_spec_state(_start_state(shapes, np.float16, count, 2), params)
    assert all(x.dtype == np.float32 for x in state.m + state.v)
    for _ in range(n_steps):
        grads = data.draw(grads_for(shapes, np.float16))
        expected_p, expected_state = _spec_step(params, grads, backend.to_spec_state(state),
                                                config, np.float16)
        with _threads(parallel):
            backend.step_(params, grads, state, config)
        for i in range(len(params)):
            assert params[i].dtype == np.float16
            assert_ulp(params[i], expected_p[i], 1, f"params[{i}] (float16)")
            assert_ulp(state.m[i], expected_state.m[i], 4, f"m[{i}]")
            assert_ulp(state.v[i], expected_state.v[i], 4, f"v[{i}]")


@given(beta1=st.floats(0.0, 0.99), beta2=st.floats(0.0, 0.6), lr=st.floats(1e-4, 1.0),
       steps=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_beta2_at_most_0_6_is_sgd_with_bias_corrected_momentum(beta1, beta2, lr, steps, seed):
    """β₂ ≤ 0.6 ⇒ ρ∞ ≤ 4 ⇒ never rectified: θ_t = θ_{t−1} − α m_t/(1 − β₁ᵗ) with
    m_t = β₁ m_{t−1} + (1 − β₁) g_t (Alg. 2 line 14), written here independently.
    1 − β₁ᵗ is an input of the backend (the spec's schedule); it is checked here
    against exact rational arithmetic to within 1 ulp (ties may round either way)."""
    rng = np.random.default_rng(seed)
    config = RAdamConfig(lr=lr, betas=(beta1, beta2), weight_decay=0.0)
    p = rng.standard_normal(17)
    params = [p.copy()]
    state = backend.init(params)
    m = np.zeros(17)
    for t in range(1, steps + 1):
        g = rng.standard_normal(17)
        backend.step_(params, [g], state, config)
        m = beta1 * m + (1.0 - beta1) * g
        bias_correction1 = config.schedule(t).bias_correction1
        exact = 1 - Fraction(beta1) ** t
        assert abs(Fraction(bias_correction1) - exact) <= Fraction(np.spacing(bias_correction1))
        assert rho_inf_at_most_4(beta2) and not config.schedule(t).rectified
        p = p - lr * (m / bias_correction1)
        assert_ulp(params[0], p, 4, f"theta at t={t}")


def rho_inf_at_most_4(beta2: float) -> bool:
    """ρ∞ = 2/(1 − β₂) − 1 ≤ 4, exactly."""
    return 2 / (1 - Fraction(beta2)) - 1 <= 4


@pytest.mark.parametrize(("threshold", "comparison", "first_rectified"),
                         [(4.0, ">", 5), (5.0, ">", 6), (5.0, ">=", 6)])
def test_first_rectified_step_for_beta2_0_999(threshold, comparison, first_rectified):
    """β₂ = 0.999: ρ_5 ≈ 4.996, ρ_6 ≈ 5.994 (paper §4; SPEC-NOTES), so the first
    rectified step is t = 5 with threshold 4 and t = 6 with threshold 5.  With
    before_rectification="none", θ first moves at that step."""
    config = RAdamConfig(threshold=threshold, comparison=comparison,
                         before_rectification="none", weight_decay=0.0)
    params = [np.linspace(-1, 1, 9)]
    grads = [np.full(9, 0.5)]
    state = backend.init(params)
    for t in range(1, first_rectified + 1):
        before = params[0].copy()
        backend.step_(params, grads, state, config)
        moved = not np.array_equal(params[0], before)
        assert moved == (t == first_rectified), f"t={t}: moved={moved}"


@given(x=st.floats(-10, 10), g=st.floats(-10, 10).filter(lambda x: abs(x) > 1e-3),
       m=st.floats(-1, 1), v=st.floats(0, 1), t=st.integers(6, 60),
       eps_placement=st.sampled_from(radam_ref.EPS_PLACEMENTS))
def test_one_element_against_high_precision(x, g, m, v, t, eps_placement):
    """One element of a rectified step against Algorithm 2 evaluated with mpmath at
    50 digits (independent of the spec's code; step scalars from the exact schedule)."""
    mpmath = pytest.importorskip("mpmath")
    config = RAdamConfig(lr=0.01, eps=1e-6, weight_decay=0.0, eps_placement=eps_placement)
    sched = config.schedule(t)
    params = [np.array([x])]
    state = backend.from_spec_state(RAdamState(t - 1, [np.array([m])], [np.array([v])]), params)
    backend.step_(params, [np.array([g])], state, config)
    with mpmath.workdps(50):
        b1, b2 = (mpmath.mpf(b) for b in config.betas)
        m_t = b1 * m + (1 - b1) * g
        v_t = b2 * v + (1 - b2) * g * g
        m_hat = m_t / (1 - b1 ** t)
        bc2 = 1 - b2 ** t
        if eps_placement == "before_bias_correction":
            adaptive = mpmath.sqrt(bc2) / (mpmath.sqrt(v_t) + config.eps)
        else:
            adaptive = 1 / (mpmath.sqrt(v_t / bc2) + config.eps)
        update = config.lr * mpmath.mpf(sched.r_t) * m_hat * adaptive
        expected = mpmath.mpf(x) - update
    # A dozen roundings, each ≤ ½ ulp of its result, plus the rounding of β₁m and
    # (1 − β₁)g, amplified by cancellation in m_t = β₁m + (1 − β₁)g.
    eps64 = np.finfo(np.float64).eps
    cancellation = 4 * eps64 * (abs(m) + abs(g)) / max(abs(float(m_t)), 1e-300)
    bound = (16 * eps64 * (abs(x) + float(abs(update)))
             + cancellation * float(abs(update)))
    assert abs(params[0][0] - float(expected)) <= bound
    assert abs(state.m[0][0] - float(m_t)) <= 4 * np.finfo(np.float64).eps * (abs(m) + abs(g))


# --------------------------------------------------------------------------- state


@given(config=configs(), dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       total=st.integers(2, 10), split=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_resume_mid_run_is_bit_identical(config, dtype, total, split, seed):
    """Stop after ``split`` steps, export (to_spec_state), pickle, re-import
    (from_spec_state) and continue: bit-identical to the uninterrupted run — which
    runs on every core while the resumed one runs on the calling thread."""
    split = min(split, total - 1)
    rng = np.random.default_rng(seed)
    shapes = [(5, 3), (0,), (), (4,)]
    start = [np.asarray(rng.standard_normal(s), dtype) for s in shapes]
    stream = [[np.asarray(rng.standard_normal(s), dtype) for s in shapes] for _ in range(total)]

    params_a = [p.copy() for p in start]
    state_a = backend.init(params_a)
    with _threads(True):
        for grads in stream:
            backend.step_(params_a, grads, state_a, config)

    params_b = [p.copy() for p in start]
    state_b = backend.init(params_b)
    with _threads(False):
        for grads in stream[:split]:
            backend.step_(params_b, grads, state_b, config)
    exported = pickle.loads(pickle.dumps(backend.to_spec_state(state_b)))
    params_b = [p.copy() for p in params_b]
    state_b = backend.from_spec_state(exported, params_b)
    with _threads(False):
        for grads in stream[split:]:
            backend.step_(params_b, grads, state_b, config)

    assert state_a.count == state_b.count == total
    for a, b in zip(params_a + state_a.m + state_a.v, params_b + state_b.m + state_b.v):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def test_state_round_trips_and_pickles_bit_identically():
    rng = np.random.default_rng(3)
    params = {"w": rng.standard_normal((3, 4)).astype(np.float32),
              "b": [rng.standard_normal(4).astype(np.float16)]}
    state = backend.init(params)
    backend.step_(params, {"w": np.ones((3, 4), np.float32), "b": [np.ones(4, np.float16)]},
                  state, RAdamConfig())
    spec = backend.to_spec_state(state)
    assert set(spec.m) == {"w", "b"} and spec.count == 1
    again = backend.from_spec_state(spec, params)
    for original in (again, pickle.loads(pickle.dumps(state)), copy.deepcopy(state)):
        assert original.count == state.count
        for a, b in zip(original.m + original.v, state.m + state.v):
            assert a is not b
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_spec_state_of_float16_params_is_accepted_exactly():
    params = [np.array([0.5, -2.0], dtype=np.float16)]
    spec_state = RAdamState(3, [np.array([0.1, 0.2], np.float16)],
                            [np.array([0.01, 0.02], np.float16)])
    state = backend.from_spec_state(spec_state, params)
    assert state.m[0].dtype == np.float32
    np.testing.assert_array_equal(state.m[0], np.array([0.1, 0.2], np.float16).astype(np.float32))


def test_replaced_state_array_is_used():
    """The cached launch plan notices a state array replaced between steps."""
    params = [np.ones(8)]
    grads = [np.full(8, 0.25)]
    state = backend.init(params)
    config = RAdamConfig()
    backend.step_(params, grads, state, config)
    state.m[0] = np.zeros(8)
    state.v[0] = np.zeros(8)
    expected, _ = radam_ref.step([params[0].copy()], grads, RAdamState(1, [np.zeros(8)],
                                                                          [np.zeros(8)]), config)
    backend.step_(params, grads, state, config)
    np.testing.assert_array_equal(params[0], expected[0])


# --------------------------------------------------------------------------- errors


def _snapshot(params, state):
    return ([p.copy() for p in params], [m.copy() for m in state.m],
            [v.copy() for v in state.v], state.count)


def _assert_unchanged(snapshot, params, state):
    before_p, before_m, before_v, count = snapshot
    assert state.count == count
    for a, b in zip(before_p + before_m + before_v, params + state.m + state.v):
        np.testing.assert_array_equal(a, b)


@given(position=st.integers(0, 2), index=st.integers(0, 5),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       dtype=st.sampled_from([np.float16, np.float32, np.float64]),
       strided=st.booleans())
def test_nonfinite_raise_names_the_gradient_and_writes_nothing(position, index, bad, dtype,
                                                               strided):
    params = [np.arange(6, dtype=dtype) + i for i in range(3)]
    grads = [np.ones(12, dtype=dtype)[::2] if strided else np.ones(6, dtype=dtype)
             for _ in range(3)]
    grads[position][index] = bad
    state = backend.init(params)
    backend.step_(params, [np.ones(6, dtype) for _ in range(3)], state, RAdamConfig())
    snapshot = _snapshot(params, state)
    with pytest.raises(NonFiniteGradientError, match=rf"grads\[{position}\].*step 2"):
        backend.step_(params, grads, state, RAdamConfig(nonfinite="raise"))
    _assert_unchanged(snapshot, params, state)


def test_nonfinite_propagate_follows_ieee():
    params = [np.zeros(3)]
    state = backend.init(params)
    backend.step_(params, [np.array([np.nan, np.inf, 1.0])], state, RAdamConfig())
    assert np.isnan(params[0][0]) and np.isnan(state.m[0][0])
    assert np.isinf(state.v[0][1]) and np.isfinite(params[0][2])


def _bad_calls():
    yield "grads shape", [np.ones((2, 3)), np.ones(5)], ValueError, r"grads\[1\].*\(5,\)"
    yield "grads dtype", [np.ones((2, 3)), np.ones(4, np.float32)], TypeError, r"grads\[1\].*float32"
    yield "grads structure", [np.ones((2, 3))], ValueError, "structure|does not match params"
    yield "grads not an array", [np.ones((2, 3)), 1.0], TypeError, r"grads\[1\] must be a numpy"
    yield "grads int", [np.ones((2, 3)), np.ones(4, np.int64)], TypeError, r"grads\[1\]"


@pytest.mark.parametrize(("label", "grads", "error", "match"), list(_bad_calls()),
                         ids=[c[0] for c in _bad_calls()])
def test_bad_grads_raise_before_writing(label, grads, error, match):
    params = [np.ones((2, 3)), np.ones(4)]
    state = backend.init(params)
    snapshot = _snapshot(params, state)
    with pytest.raises(error, match=match):
        backend.step_(params, grads, state, RAdamConfig())
    _assert_unchanged(snapshot, params, state)


def test_bad_params_and_state_raise_clearly():
    grads = [np.ones(4)]
    readonly = np.ones(4)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        backend.step_([readonly], grads, backend.init([np.ones(4)]), RAdamConfig())
    base = np.ones(6)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        pair = [base[:4], base[2:]]
        backend.step_(pair, [np.ones(4), np.ones(4)], backend.init(pair), RAdamConfig())
    with pytest.raises(TypeError, match="config must be a RAdamConfig"):
        backend.step_([np.ones(4)], grads, backend.init([np.ones(4)]), {"lr": 1})
    with pytest.raises(TypeError, match="state must be"):
        backend.step_([np.ones(4)], grads, radam_ref.init([np.ones(4)]), RAdamConfig())
    state = backend.init([np.ones(4)])
    state.m[0] = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"state\.m\[0\].*float64"):
        backend.step_([np.ones(4)], grads, state, RAdamConfig())
    with pytest.raises(TypeError, match=r"params\[0\].*int32"):
        backend.init([np.ones(4, np.int32)])
    with pytest.raises(ValueError, match="structure"):
        backend.step_({"a": np.ones(4)}, {"a": np.ones(4)}, backend.init([np.ones(4)]),
                      RAdamConfig())
    state = backend.init([np.ones(4)])
    state.count = -1
    with pytest.raises(ValueError, match="state.count"):
        backend.step_([np.ones(4)], grads, state, RAdamConfig())


def test_bfloat16_is_rejected_with_its_name():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    params = [np.ones(4, dtype=ml_dtypes.bfloat16)]
    with pytest.raises(TypeError, match=r"params\[0\].*bfloat16"):
        backend.init(params)


# --------------------------------------------------------------------------- memory


def test_step_allocates_no_parameter_sized_temporaries():
    """Peak Python/NumPy allocation of a step on 4 Mi float32 parameters (16 MiB)
    stays under 1% of the parameter bytes (the kernel itself allocates nothing)."""
    params = [np.ones(2**22, np.float32), np.ones((512, 1024), np.float32).T]
    grads = [np.full(2**22, 1e-3, np.float32), np.full((1024, 512), 1e-3, np.float32)]
    state = backend.init(params)
    config = RAdamConfig()
    backend.step_(params, grads, state, config)  # builds and caches the plan
    fresh_grads = [g.copy() for g in grads]  # new objects: the cache refreshes addresses
    tracemalloc.start()
    backend.step_(params, fresh_grads, state, config)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    param_bytes = sum(p.nbytes for p in params)
    assert peak < 0.01 * param_bytes, f"peak {peak} B for {param_bytes} B of parameters"


# --------------------------------------------------------------------------- float16 I/O


def test_float16_conversions_are_exact_and_round_to_nearest_even():
    """The kernels' float16 load is exact and the store rounds like NumPy (IEEE
    round to nearest even), on every float16 bit pattern and every rounding
    boundary between them."""
    from numba import njit

    from radam_ref.backends._numba_kernels import _narrow, _widen

    @njit
    def widen_all(bits, out):
        for i in range(bits.size):
            out[i] = _widen(bits[i], out)

    @njit
    def narrow_all(values, proto, out):
        for i in range(values.size):
            out[i] = _narrow(values[i], proto)

    bits = np.arange(2**16, dtype=np.uint16)
    halves = bits.view(np.float16)
    widened = np.empty(bits.size, np.float32)
    widen_all(bits, widened)
    expected = halves.astype(np.float32)
    same = (widened.view(np.uint32) == expected.view(np.uint32)) | (
        np.isnan(widened) & np.isnan(expected))
    assert same.all()

    finite = np.sort(expected[np.isfinite(expected)])
    midpoints = (finite[:-1].astype(np.float64) + finite[1:]) / 2
    near = np.concatenate([midpoints.astype(np.float32),
                           np.nextafter(midpoints.astype(np.float32), np.float32(np.inf)),
                           np.nextafter(midpoints.astype(np.float32), -np.float32(np.inf)),
                           np.array([65520.0, -65520.0, 65519.996, 1e-8, -3e-8, np.inf,
                                     -np.inf, np.nan], np.float32),
                           np.random.default_rng(0).standard_normal(10000).astype(np.float32)])
    narrowed = np.empty(near.size, np.uint16)
    narrow_all(near, np.empty(0, np.uint16), narrowed)
    with np.errstate(over="ignore"):
        reference = near.astype(np.float16)
    result = narrowed.view(np.float16)
    same = (narrowed == reference.view(np.uint16)) | (np.isnan(result) & np.isnan(reference))
    assert same.all(), near[~same][:5]


# --------------------------------------------------------------------------- bench


def test_bench_quick_reports_consistent_figures(tmp_path):
    """A seconds-long run of `radam-ref bench`: every figure present and consistent
    (values are machine-dependent and not asserted)."""
    import json

    from radam_ref.cli import main

    out = tmp_path / "bench.json"
    status = main(["bench", "--quick", "--layouts", "single,small", "--size", "4096",
                   "--small-count", "5", "--repeat", "2", "--warmup", "1",
                   "--impls", "numpy_backend,spec_numpy,plain_numpy", "--json", str(out),
                   "--no-table"])
    assert status == 0
    report = json.loads(out.read_text())
    assert [layout["layout"] for layout in report["layouts"]] == ["single", "small"]
    single, small = report["layouts"]
    assert single["params"] == 4096 and small["params"] == 5000 and small["arrays"] == 5
    for layout in report["layouts"]:
        assert layout["roofline_params_per_s"] == pytest.approx(
            layout["copy_bandwidth_bytes_per_s"] / 28)
        assert layout["in_place_roofline_params_per_s"] == pytest.approx(
            layout["in_place_bandwidth_bytes_per_s"] / 28)
        keys = [row["key"] for row in layout["results"]]
        assert keys == ["numpy_backend", "spec_numpy", "plain_numpy"]
        for row in layout["results"]:
            assert len(row["seconds_all"]) == 2 and row["seconds_median"] > 0
            assert row["params_per_s"] == pytest.approx(layout["params"] / row["seconds_median"])
            assert row["fraction_of_roofline"] == pytest.approx(
                row["params_per_s"] / layout["roofline_params_per_s"])
            assert row["ratio_to_torch_foreach"] is None  # torch was not run
        spec_row = layout["results"][1]
        # The pure spec returns new θ, m, v: at least 3× the parameter bytes.
        assert spec_row["peak_extra_bytes"] >= 3 * layout["param_bytes"]


def test_bench_rejects_bad_options(capsys):
    from radam_ref.cli import main

    assert main(["bench", "--layouts", "huge", "--no-table"]) == 2
    assert "huge" in capsys.readouterr().out
    assert main(["bench", "--impls", "nope", "--quick", "--no-table"]) == 2
    assert "nope" in capsys.readouterr().out


# --------------------------------------------------------------------------- #
# Hostile review: unusual arrays
# --------------------------------------------------------------------------- #

def _spec_run(p0, grads, steps=2):
    """θ after ``steps`` steps of radam_ref.step (the functional spec) on copies."""
    params, state = [np.array(p0, dtype=np.float64)], None
    state = radam_ref.init(params)
    for _ in range(steps):
        params, state = radam_ref.step(params, [np.array(grads, dtype=np.float64)], state)
    return params[0]


def _read_only(x):
    x = np.array(x)
    x.flags.writeable = False
    return x


@pytest.mark.parametrize("kind", ["read-only grad", "Fortran-ordered", "memmap",
                                  "broadcast grad", "reversed grad"])
def test_unusual_but_valid_arrays_give_the_spec_result(kind, tmp_path):
    """Arrays NumPy users pass by accident or on purpose: the step equals the spec's
    (run on plain float64 copies) to 4 ulp per step."""
    p0 = np.linspace(-1.0, 1.0, 60).reshape(6, 10)
    g0 = np.cos(np.arange(60.0)).reshape(6, 10)
    p, g = p0.copy(), g0.copy()
    if kind == "read-only grad":
        g = _read_only(g0)
    elif kind == "Fortran-ordered":
        p, g = np.asfortranarray(p0), np.asfortranarray(g0)
    elif kind == "memmap":
        p = np.memmap(tmp_path / "theta.bin", dtype=np.float64, mode="w+", shape=p0.shape)
        p[:] = p0
    elif kind == "broadcast grad":
        g0 = np.broadcast_to(g0[:1], p0.shape)
        g = g0
    elif kind == "reversed grad":
        g = np.ascontiguousarray(g0[::-1])[::-1]
    state = backend.init([p])
    backend.step_([p], [g], state)
    backend.step_([p], [g], state)
    assert_ulp(np.asarray(p), _spec_run(p0, g0), 8, kind)


@pytest.mark.parametrize("kind", ["read-only param", "read-only memmap", "big-endian param",
                                  "big-endian grad", "object param", "int param", "int grad",
                                  "m is v", "m is the param", "lists of different lengths",
                                  "grad is the param", "grad overlaps the param",
                                  "grad is exp_avg"])
def test_unusable_arrays_raise_before_anything_is_written(kind, tmp_path):
    """Each raises TypeError or ValueError naming the array, and writes nothing.
    Found: a gradient sharing memory with a parameter or the state was accepted;
    the in-place kernel then read values it had already written (a shifted view of
    θ as its own gradient gave 8e-7 away from the spec after 3 steps)."""
    p = np.linspace(-1.0, 1.0, 1 << 17)
    g = np.cos(np.arange(p.size, dtype=np.float64))
    params, grads = [p], [g]
    state = backend.init(params)
    if kind == "read-only param":
        params = [_read_only(p)]
    elif kind == "read-only memmap":
        np.memmap(tmp_path / "ro.bin", dtype=np.float64, mode="w+", shape=p.shape)[:] = p
        params = [np.memmap(tmp_path / "ro.bin", dtype=np.float64, mode="r", shape=p.shape)]
    elif kind == "big-endian param":
        params = [p.astype(">f8")]
    elif kind == "big-endian grad":
        grads = [g.astype(">f8")]
    elif kind == "object param":
        params = [p.astype(object)]
    elif kind == "int param":
        params, grads = [np.arange(10)], [np.arange(10)]
    elif kind == "int grad":
        grads = [np.arange(p.size)]
    elif kind == "m is v":
        state.v[0] = state.m[0]
    elif kind == "m is the param":
        state.m[0] = p
    elif kind == "lists of different lengths":
        params, grads = [p, p.copy()], [g]
    elif kind == "grad is the param":
        grads = [p]
    elif kind == "grad overlaps the param":
        base = np.concatenate([p, [0.5]])
        params, grads = [base[:-1]], [base[1:]]
        state = backend.init(params)
    elif kind == "grad is exp_avg":
        grads = [state.m[0]]
    snapshot = [np.array(x) for x in params] + [np.array(x) for x in state.m + state.v]
    with pytest.raises((TypeError, ValueError), match=r"params|grads|state"):
        backend.step_(params, grads, state)
    after = [np.array(x) for x in params] + [np.array(x) for x in state.m + state.v]
    assert all(np.array_equal(a, b) for a, b in zip(snapshot, after))
    assert state.count == 0


def test_a_replaced_gradient_overlapping_a_parameter_is_caught_on_a_reused_plan():
    """The plan is reused while the gradients keep their layout; a new gradient
    that is a view into a parameter (same shape and strides) must still raise."""
    a, b = np.zeros(100), np.zeros(100)
    state = backend.init([a, b])
    backend.step_([a, b], [np.ones(100), np.ones(100)], state)
    backend.step_([a, b], [np.ones(100), np.ones(100)], state)  # the plan is reused
    with pytest.raises(ValueError, match=r"grads\[1\] shares memory with params\[0\]"):
        backend.step_([a, b], [np.ones(100), a], state)
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with state.v\[1\]"):
        backend.step_([a, b], [state.v[1], np.ones(100)], state)
    backend.step_([a, b], [np.ones(100), a.copy()], state)
    assert state.count == 3
