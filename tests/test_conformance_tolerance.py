"""The tolerance model, the scenario format and the diagnosis model, against
independent oracles (exact rational arithmetic, optax itself)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from radam_ref import RAdamConfig, schedule
from radam_ref.conformance._dtypes import round_to
from radam_ref.conformance.diagnose import float32_step_scalars
from radam_ref.conformance.oracle import Oracle, run_oracle
from radam_ref.conformance.scenario import GeneratedStream, Group, Scenario
from radam_ref.conformance.tolerance import ambiguous_steps, branch_window, tolerance


def rho_exact(t: int, beta2: float) -> Fraction:
    """ρ_t in exact rational arithmetic from the float's exact value."""
    b = Fraction(beta2)
    bt = b**t
    return Fraction(2) / (1 - b) - 1 - 2 * t * bt / (1 - bt)


@given(st.floats(1e-9, 1.0 - 2.0**-40), st.integers(1, 60))
def test_rho_is_never_exactly_4_or_5(beta2, t):
    """Why the comparison axis is unobservable (fingerprint docstring): no float64
    β₂ ∈ (0, 1) gives ρ_t = 4 or 5 exactly."""
    rho = rho_exact(t, beta2)
    assert rho != 4 and rho != 5


def test_branch_window_near_the_threshold():
    """Stated in the tolerance docstring: below 1e-8 in float64 up to β₂ = 0.999,
    below 1e-5 up to 0.99999; in float32 a few 1e-6 more."""
    for b2 in (0.6, 0.9, 0.99, 0.999, 0.9999, 0.99999):
        cfg = RAdamConfig(betas=(0.9, b2), threshold=5.0)
        for t in range(1, 12):
            if abs(cfg.schedule(t).rho_t - 5.0) >= 1.0:
                continue
            w64, w32 = branch_window(cfg, "float64", t), branch_window(cfg, "float32", t)
            assert w64 < (1e-8 if b2 <= 0.999 else 1e-5)
            assert 4e-6 < w32 - w64 < 6e-6


def test_ambiguous_steps_are_exactly_the_steps_inside_the_window():
    from radam_ref.conformance.checks.threshold import near_threshold_beta2

    b2 = near_threshold_beta2(6, 5.0 * (1 + 1e-7))
    cfg = RAdamConfig(betas=(0.9, b2), threshold=5.0)
    assert abs(schedule(6, beta2=b2).rho_t - 5.0 * (1 + 1e-7)) < 1e-12
    assert ambiguous_steps(cfg, "float64", 10) == []
    assert ambiguous_steps(cfg, "float32", 10) == [6]


@given(st.floats(0.0, 0.99999), st.integers(6, 30))
def test_error_scale_grows_with_steps(beta2, steps):
    cfg = RAdamConfig(lr=0.1, betas=(0.9, beta2), weight_decay=0.01)
    rng = np.random.default_rng(0)
    oracle = Oracle([Group([rng.standard_normal(3)], cfg)])
    previous = np.zeros((2, 3))
    for _ in range(steps):
        oracle.step([[rng.standard_normal(3)]])
        scale = oracle.scales()[0][0]
        assert np.all(scale >= previous)
        previous = scale
    assert np.all(tolerance(previous, "float64") < tolerance(previous, "float32"))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=6),
       st.sampled_from(["float64", "float32", "float16", "bfloat16"]))
def test_scenario_json_round_trip_is_exact(values, dtype):
    arr = round_to(np.array(values), dtype)
    cfg = RAdamConfig(lr=0.3, betas=(0.5, 0.99999), eps=0.0, weight_decay=1e-3, threshold=5.0, comparison=">=")
    sc = Scenario([Group([arr], cfg)], [[[arr]], [[None]]], dtype=dtype)
    back = Scenario.from_json(sc.dumps())
    assert back.groups[0].config == cfg
    np.testing.assert_array_equal(back.groups[0].params[0], arr)
    assert back.grads[1][0][0] is None
    assert back.dumps() == sc.dumps()


def test_round_to_bfloat16_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal(1000) * 10.0 ** np.random.default_rng(2).uniform(-30, 30, 1000)
    ours = round_to(x, "bfloat16")
    theirs = torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).to(torch.float64).numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_generated_stream_is_reproducible_and_truncation_keeps_values():
    stream = GeneratedStream(seed=3, steps=50, shapes=(((2,),),), zero_every=7)
    sc = Scenario([Group([np.zeros(2)], RAdamConfig())], stream)
    first = [sc.grads_at(t)[0][0].copy() for t in range(1, 51)]
    assert all(np.all(first[t - 1] == 0.0) for t in (7, 14, 49))
    again = Scenario.from_json(sc.dumps())
    short = again.truncated(10)
    assert short.steps == 10
    for t in range(1, 11):
        np.testing.assert_array_equal(short.grads_at(t)[0][0], first[t - 1])
    assert len(run_oracle(short).steps) == 10


def test_float32_scalar_model_reproduces_optax_without_x64():
    """The diagnosis' model of float32 step scalars reproduces optax (x64 off) within
    the float32 tolerance, where the exact scalars do not."""
    pytest.importorskip("optax")
    from radam_ref.conformance import resolve_target
    from radam_ref.conformance.compare import normalized_error, observe

    target = resolve_target("optax.radam")
    for b2 in (0.999, 0.9999, 0.99999):
        cfg = RAdamConfig.from_profile("optax", lr=0.5, betas=(0.9, b2))
        g = round_to(np.array([1.0, -0.5, 0.25]), "float32")
        sc = Scenario([Group([np.zeros(3)], cfg)], [[[g]] for _ in range(10)], dtype="float32")
        observed = observe(target, sc)
        assert normalized_error(observed, run_oracle(sc, schedule_fn=float32_step_scalars), "float32") <= 1.0
        assert normalized_error(observed, run_oracle(sc), "float32") > 10.0
