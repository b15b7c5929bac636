"""Diagnosis: the auto profile, precision detection, findings and their causes.

Unit tests of the pieces (Finding JSON, the cause catalogue and its table in the
docs, the oracle's group models, precision detection, choose_profile), and the
verdicts on the third-party RAdams where they are installed — each against what
a reader of the target's source concludes (see docs/conformance-results.md).
Every run here is a single check or a few, with few examples.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from radam_ref import PROFILES
from radam_ref.conformance import run_conformance
from radam_ref.conformance.causes import CAUSES, UNEXPLAINED, cause
from radam_ref.conformance.checks import CHECKS, CheckResult
from radam_ref.conformance.compare import Mismatch
from radam_ref.conformance.findings import Finding
from radam_ref.conformance.fingerprint import choose_profile, detect_precision, fingerprint
from radam_ref.conformance.oracle import run_oracle
from radam_ref.conformance.scenario import Group, Scenario

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "meta"))

from broken_impls import make_numpy_step, numpy_init  # noqa: E402
from radam_ref.conformance.adapters.step_fn import StepFunctionTarget  # noqa: E402


def numpy_target(defect=None, profile="paper"):
    return StepFunctionTarget(make_numpy_step(defect), numpy_init, name=f"numpy_step[{defect}]",
                              profile=profile, dtypes=("float64", "float32"))


# --------------------------------------------------------------------------- #
# Data model and catalogue
# --------------------------------------------------------------------------- #


def test_finding_round_trips_through_json():
    m = Mismatch(3, 0, 1, (2,), 0.5, float("nan"), 1e-12, "expected 0.5, got NaN")
    f = Finding("groups/1", "param_groups", "groups/shared_cache", "t", "d", {"dtype": "float64"}, m,
                {"tol_dtype": "float32"}, also=["groups/hyperparameter_ignored"])
    back = Finding.from_json(f.to_json())
    assert back.to_json() == f.to_json()
    assert back.cause_text == CAUSES["groups/shared_cache"].text


def test_a_failing_check_result_always_carries_a_finding():
    r = CheckResult("threshold", "fail", "bad", axis="threshold: the target matches the spec with threshold ρ_t > 5")
    assert [f.cause for f in r.findings] == ["axis/threshold"]
    assert r.to_json()["findings"][0]["id"] == "threshold/1"
    assert CheckResult("threshold", "fail", "bad", axis="threshold (no single-axis change)").findings[0].cause \
        == UNEXPLAINED


def test_causes_are_documented_and_unknown_ones_rejected():
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    table = text[text.index("## Diagnosis"):]
    listed = set(re.findall(r"\| `([a-z_0-9]+/[a-z_0-9]+)` \|", table))
    assert set(CAUSES) <= listed, sorted(set(CAUSES) - listed)
    assert listed <= set(CAUSES), sorted(listed - set(CAUSES))
    with pytest.raises(ValueError, match="unknown cause id 'nope'"):
        cause("nope")


def test_every_check_is_in_the_docs_table():
    text = (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")
    for name in CHECKS:
        assert f"| `{name}` |" in text, name


# --------------------------------------------------------------------------- #
# Oracle group models (independent float64 arithmetic for the expected values)
# --------------------------------------------------------------------------- #


def _two_groups(lr0, lr1, betas=(0.9, 0.99), steps=3):
    base = PROFILES["paper"].config()
    groups = [Group([np.array([1.0])], base.replace(lr=lr0, betas=betas)),
              Group([np.array([1.0])], base.replace(lr=lr1, betas=betas))]
    grads = [[[np.array([1.0])], [np.array([1.0])]] for _ in range(steps)]
    return Scenario(groups, grads)


def test_shared_cache_model_applies_the_first_groups_lr_to_the_second():
    # constant gradient 1 from θ = 1: m̂_t = 1 exactly; steps 1–3 are SGD steps (ρ_t ≤ 4)
    traj = run_oracle(_two_groups(1.0, 1e-3), group_model=("shared_cache", ("lr", "betas")))
    assert traj.values[0][1][0][0] == pytest.approx(1.0 - 1.0, abs=1e-15)  # took lr 1.0
    plain = run_oracle(_two_groups(1.0, 1e-3))
    assert plain.values[0][1][0][0] == pytest.approx(1.0 - 1e-3, rel=1e-15)
    betas_only = run_oracle(_two_groups(1.0, 1e-3), group_model=("shared_cache", ("betas",)))
    assert betas_only.values[-1][1][0][0] == plain.values[-1][1][0][0]  # equal betas: nothing leaks


def test_step_per_group_model_counts_steps_a_parameter_skipped():
    base = PROFILES["paper"].config().replace(lr=0.1, betas=(0.5, 0.9))
    sc = Scenario([Group([np.array([0.0]), np.array([0.0])], base)],
                  [[[np.array([1.0]), None]], [[np.array([1.0]), np.array([1.0])]]])
    per_group = run_oracle(sc, group_model=("step_per_group",))
    # parameter 1's first gradient at step 2: m = 0.5, m̂ = 0.5/(1 − 0.25) = 2/3 with the group's t = 2,
    # m̂ = 0.5/0.5 = 1 with its own t = 1 (SGD-momentum step: ρ_t ≤ 4)
    assert per_group.values[1][0][1][0] == pytest.approx(-0.1 * (2.0 / 3.0), rel=1e-14)
    assert run_oracle(sc).values[1][0][1][0] == pytest.approx(-0.1, rel=1e-14)


# --------------------------------------------------------------------------- #
# Precision, fingerprint and the profile checked
# --------------------------------------------------------------------------- #


def test_precision_of_the_spec_is_full_and_of_a_float32_update_is_named():
    base = PROFILES["paper"].config()
    assert detect_precision(numpy_target(), base, "float64").causes == []
    prec = detect_precision(numpy_target("float32_update"), base, "float64")
    assert prec.causes == ["precision/float32_update"] and prec.tol_dtype == "float32"


def test_choose_profile_prefers_the_claim_then_a_matching_profile():
    target = numpy_target("threshold_5")  # claims paper, follows threshold 5
    fp = fingerprint(target)
    config, label, reason = choose_profile(target, fp)
    assert label == "torch_decoupled" and config.threshold == 5.0
    assert reason.startswith("profile: torch_decoupled — fingerprint matches torch_decoupled")
    assert "differs in threshold" in reason


def test_choose_profile_names_the_closest_loudly_when_nothing_matches():
    target = numpy_target("r_squared")
    fp = fingerprint(target)
    assert not fp.consistent
    config, label, reason = choose_profile(target, fp)
    assert label.startswith("closest: ")
    assert "NO COMBINATION OF THE SPEC'S AXES REPRODUCES THE PROBES" in reason and "unexplained:" in reason


def test_a_finding_replays_to_the_same_failure():
    from radam_ref.conformance import replay

    target = numpy_target("no_bias_correction2")
    report = run_conformance(target, checks=["trajectories"], fingerprint=False, max_examples=4,
                             shrink_seconds=1.0)
    (finding,) = report.results[0].findings
    out = replay(target, check=finding.check, scenario=finding.scenario, extra=finding.extra, verbose=False)
    assert out.verdict == "fail"


# --------------------------------------------------------------------------- #
# Third-party RAdams (where installed): the verdict of a reader of the source
# --------------------------------------------------------------------------- #


def _causes(report, check):
    return [f.cause for f in report.result(check).findings]


def test_torch_optimizer_shared_cache_is_found_under_float32_arithmetic():
    pytest.importorskip("torch_optimizer")
    report = run_conformance("torch_optimizer.RAdam", checks=["arithmetic", "param_groups"], max_examples=3)
    assert report.profile == "timm", report.message
    assert "float64 parameters are updated in float32 arithmetic" in report.message
    assert _causes(report, "arithmetic") == ["precision/float32_update"]
    assert _causes(report, "param_groups") == ["groups/shared_cache", "groups/added_group_shares_state"]


def test_pytorch_optimizer_defects_are_each_named():
    pytest.importorskip("pytorch_optimizer")
    report = run_conformance("pytorch_optimizer.RAdam", max_examples=3,
                             checks=["arithmetic", "grad_none", "side_effects", "weight_decay_modes"])
    assert report.profile == "authors", report.message
    assert _causes(report, "arithmetic") == []
    assert _causes(report, "grad_none") == ["groups/step_per_group"]
    assert _causes(report, "side_effects") == ["inputs/grad_modified_maximize"]
    assert _causes(report, "weight_decay_modes") == ["weight_decay/ignored"]


def _need_timm():
    # ``import timm`` needs torchvision; the adapter loads only timm/optim/radam.py
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm is not installed")


def test_timm_legacy_float32_and_complex():
    _need_timm()
    report = run_conformance("timm.optim.RAdamLegacy", checks=["arithmetic", "trajectories", "complex"],
                             max_examples=3)
    assert report.profile == "timm", report.message
    assert _causes(report, "arithmetic") == ["precision/float32_update"]
    assert report.result("trajectories").verdict == "pass"
    assert _causes(report, "complex") == ["complex/imag_zeroed"]


@pytest.mark.parametrize("spelling", ["torch.optim.RAdam", "torch.optim:RAdam", "timm.optim.RAdam"])
def test_torch_radam_conforms_to_torch_under_every_spelling(spelling):
    if spelling.startswith("timm"):
        _need_timm()
    report = run_conformance(spelling, {"foreach": False}, checks=["arithmetic", "threshold", "weight_decay_modes"],
                             max_examples=3)
    assert report.profile == "torch", report.message
    assert report.verdict == "conforms", [(r.check, r.summary) for r in report.results]
