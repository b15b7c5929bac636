"""Meta-tests: the suite must catch deliberately broken implementations, and name
the true cause.

Every defect of ``broken_impls`` breaks one axis or one feature; each must make
the check named here fail with a finding whose cause is the catalogue entry
(:mod:`radam_ref.conformance.causes`) written here — not only a failing verdict.
Together the defects cover every entry of the catalogue
(:func:`test_every_cause_has_a_defect`).  The same implementations without a
defect must pass every check, in every profile, with no finding at all.  The
implementations are written from the paper in ``broken_impls.py``, not from
``radam_ref``.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from broken_impls import NUMPY_DEFECTS, TORCH_DEFECTS, make_numpy_step, numpy_init
from radam_ref import PROFILES
from radam_ref.conformance import fingerprint, run_conformance
from radam_ref.conformance.adapters.step_fn import StepFunctionTarget
from radam_ref.conformance.causes import CAUSES

torch = pytest.importorskip("torch")

from radam_ref.conformance.adapters.torch_optim import TorchOptimizerTarget  # noqa: E402
from broken_impls import make_torch_optimizer  # noqa: E402

EXAMPLES = max(3, settings.default.max_examples // 5)

# defect -> (profile, check that must fail, cause it must name)
NUMPY_CASES = {
    "threshold_5": ("paper", "threshold", "axis/threshold"),
    "eps_after_bias_correction": ("paper", "trajectories", "axis/eps_placement"),
    "eps_inside_sqrt": ("paper", "trajectories", "axis/eps_root"),
    "decoupled_as_l2": ("paper", "weight_decay_modes", "axis/weight_decay_mode"),
    "decoupled_without_lr": ("paper", "weight_decay_modes", "formula/decay_lr_missing"),
    "moving_decay_always": ("authors", "weight_decay_modes", "axis/weight_decay_mode"),
    "no_update_before_rectification": ("paper", "degeneration", "axis/before_rectification"),
    "sgd_without_bias_correction": ("paper", "degeneration", "formula/sgd_uncorrected"),
    "nesterov_always": ("paper", "trajectories", "axis/nesterov"),
    "maximize_ignored": ("paper", "maximize", "axis/maximize"),
    "float32_step_scalars": ("paper", "arithmetic", "precision/float32_step_scalars"),
    "float16_step_counter": ("paper", "long_horizon", "state/step_counter"),
    "no_bias_correction2": ("paper", "trajectories", "formula/no_bias_correction_v"),
    "step_off_by_one": ("paper", "trajectories", "formula/step_ahead"),
    "betas_swapped": ("paper", "trajectories", "formula/betas_swapped"),
    "r_squared": ("paper", "threshold", "formula/r_not_sqrt"),
    "degenerate_rectifies": ("paper", "degeneration", "unexplained"),
    "eps_zero_replaced": ("paper", "eps_zero", "eps/substituted"),
    "eps_zero_nan_spreads": ("paper", "eps_zero", "eps/nan_spreads"),
    "eps_zero_masked_nan": ("paper", "eps_zero", "formula/eps_zero_masked_nan"),
    "writes_inputs": ("paper", "side_effects", "inputs/input_modified"),
    "float32_v_in_float16": ("paper", "float32", "unexplained"),
    "float32_update": ("paper", "arithmetic", "precision/float32_update"),
    "float32_moments": ("paper", "arithmetic", "precision/float32_moments"),
    "float32_hyperparameters": ("paper", "arithmetic", "precision/float32_hyperparameters"),
    "no_bias_correction1": ("paper", "trajectories", "formula/no_bias_correction_m"),
    "step_behind": ("paper", "trajectories", "formula/step_behind"),
    "r_missing": ("paper", "threshold", "formula/r_missing"),
    "rho_inf_off_by_one": ("paper", "threshold", "formula/rho_inf_off_by_one"),
    "rho_factor_one": ("paper", "threshold", "formula/rho_factor"),
    "sqrt_v_missing": ("paper", "threshold", "formula/sqrt_v_missing"),
    "lr_squared": ("paper", "threshold", "formula/lr_squared"),
    "momentum_no_one_minus_beta": ("paper", "threshold", "formula/momentum_no_one_minus_beta"),
    "v_no_one_minus_beta": ("paper", "threshold", "formula/v_no_one_minus_beta"),
}
# defect -> (check that must fail, cause it must name)
TORCH_CASES = {
    "state_dict_drops_step": ("state_dict", "state/not_restored"),
    "load_ignores_exp_avg_sq": ("state_dict", "state/not_restored"),
    "groups_use_first_lr": ("param_groups", "groups/hyperparameter_ignored"),
    "shared_step_counter": ("param_groups", None),
    "none_grad_as_zero": ("grad_none", "gradients/none_not_skipped"),
    "skips_zero_grads": ("zero_grads", "gradients/zero_skipped"),
    "maximize_in_place": ("side_effects", "inputs/grad_modified_maximize"),
    "l2_in_place": ("side_effects", "inputs/grad_modified_weight_decay"),
    "detached_denominator": ("autodiff", "autodiff/derivative"),
    "complex_as_modulus": ("complex", "complex/abs_square_convention"),
    "upcasts_low_precision": ("low_precision", "precision/dtype_changed"),
    "shared_cache_lr": ("param_groups", "groups/shared_cache"),
    "added_group_shares_cache": ("param_groups", "groups/added_group_shares_state"),
    "step_per_group": ("grad_none", "groups/step_per_group"),
    "l2_dropped": ("weight_decay_modes", "weight_decay/ignored"),
    "moment_in_grad": ("side_effects", "inputs/grad_modified"),
    "complex_real_only": ("complex", "complex/imag_zeroed"),
}


def numpy_target(defect, profile="paper"):
    return StepFunctionTarget(make_numpy_step(defect), numpy_init, name=f"numpy_step[{defect}]",
                              profile=profile, dtypes=("float64", "float32"))


def torch_target(defect, profile="paper"):
    return TorchOptimizerTarget(make_torch_optimizer(defect), {}, name=f"MiniRAdam[{defect}]", profile=profile)


def test_every_defect_has_a_case():
    assert set(NUMPY_CASES) == set(NUMPY_DEFECTS)
    assert set(TORCH_CASES) == set(TORCH_DEFECTS)


def test_every_cause_has_a_defect():
    named = {c for _, _, c in NUMPY_CASES.values()} | {c for _, c in TORCH_CASES.values()}
    assert set(CAUSES) - named == set(), sorted(set(CAUSES) - named)


def _single(target, check, examples=None, horizon=10_000, profile=None):
    report = run_conformance(target, checks=[check], fingerprint=False, profile=profile,
                             max_examples=examples or max(EXAMPLES, 12), horizon=horizon, shrink_seconds=2.0)
    (result,) = report.results
    return result


def _assert_cause(defect, result, cause):
    assert result.verdict == "fail", (defect, result.verdict, result.summary)
    assert result.findings, (defect, result.summary)
    if cause is not None:
        causes = [f.cause for f in result.findings if f.severity == "fail"]
        assert cause in causes, (defect, causes, [f.detail for f in result.findings])
    first = result.findings[0]
    assert first.id == f"{result.check}/1" and first.check == result.check
    assert first.scenario is not None


@pytest.mark.parametrize("defect", sorted(NUMPY_CASES))
def test_numpy_defect_names_its_cause(defect):
    profile, check, cause = NUMPY_CASES[defect]
    result = _single(numpy_target(defect, profile), check, horizon=3_000)
    _assert_cause(defect, result, cause)
    assert result.repro and "replay(" in result.repro


def test_float32_arithmetic_is_one_finding_not_a_wall():
    """Float64 parameters updated in float32: one precision finding, named in the
    report's first line; the other checks compare at float32 and pass."""
    report = run_conformance(numpy_target("float32_update"), max_examples=3, horizon=500, shrink_seconds=1.0,
                             checks=["arithmetic", "trajectories", "threshold", "degeneration", "eps_zero"])
    failing = [r.check for r in report.results if r.verdict == "fail"]
    assert failing == ["arithmetic"], [(r.check, r.summary) for r in report.results]
    assert report.profile == "paper"
    assert "float64 parameters are updated in float32 arithmetic" in report.message


@pytest.mark.parametrize("defect", sorted(TORCH_CASES))
def test_torch_defect_names_its_cause(defect):
    check, cause = TORCH_CASES[defect]
    _assert_cause(defect, _single(torch_target(defect), check), cause)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_correct_numpy_step_passes_every_check_in_every_profile(profile):
    """No false alarm: the correct implementation, told each profile, is checked
    with no --profile (fingerprint, then the profile it follows)."""
    target = numpy_target(None, profile)
    target.unsupported = lambda config: []  # noqa: E731 - the step reads every option
    report = run_conformance(target, max_examples=3, horizon=500, shrink_seconds=1.0,
                             checks=["arithmetic", "trajectories", "threshold", "degeneration", "weight_decay_modes",
                                     "eps_zero", "zero_grads", "long_horizon", "float32", "side_effects"])
    bad = [(r.check, r.verdict, r.summary) for r in report.results if r.verdict not in ("pass", "acceptable")]
    assert not bad, (profile, bad)
    assert report.profile == profile, (report.profile, report.message)
    assert all(not r.findings for r in report.results)


def test_correct_torch_optimizer_passes_every_check():
    report = run_conformance(torch_target(None), max_examples=EXAMPLES, horizon=2_000, shrink_seconds=2.0)
    bad = [(r.check, r.verdict, r.summary) for r in report.results if r.verdict not in ("pass", "acceptable")]
    assert not bad, bad
    assert report.fingerprint.consistent and "paper" in report.fingerprint.profiles
    assert report.message.startswith("profile: paper — claimed, and the fingerprint matches it")


@pytest.mark.parametrize("defect,axis,value", [
    ("threshold_5", "threshold", (5.0,)),
    ("eps_after_bias_correction", "eps_placement", ("after_bias_correction",)),
    ("decoupled_as_l2", "weight_decay_mode", ("l2",)),
    ("no_update_before_rectification", "before_rectification", ("none",)),
    ("nesterov_always", "nesterov", (True,)),
])
def test_fingerprint_names_the_broken_axis(defect, axis, value):
    fp = fingerprint(numpy_target(defect))
    assert fp.consistent
    assert fp.axes[axis] == value
    assert axis in fp.differs_from_paper


def test_comparison_axis_is_unobservable_and_never_a_false_failure():
    """'>' vs '>=' at thresholds 4 and 5 cannot be told apart (see fingerprint's
    docstring): an implementation using '>=' must neither fail the paper profile
    nor be fingerprinted as one or the other."""

    def ge_step(params, grads, state, config):
        return make_numpy_step(None)(params, grads, state, config.replace(comparison=">="))

    ge = StepFunctionTarget(ge_step, numpy_init, name="numpy_step[>=]", profile="paper",
                            dtypes=("float64", "float32"))
    fp = fingerprint(ge)
    assert fp.axes["comparison"] == (">", ">=")
    result = _single(ge, "threshold")
    assert result.verdict in ("pass", "acceptable")
