"""Checks that compare whole trajectories over drawn hyperparameters and streams.

All five run a Hypothesis property (see :mod:`..search`): draw a scenario, run it
through the target and the oracle, judge it; on failure Hypothesis shrinks to a
minimal scenario, which becomes the repro.
"""

from __future__ import annotations

import dataclasses

from ..search import search
from ..strategies import _weight_decay, beta2s, configs, scenarios
from .base import CheckResult, check, make_finding, result_from_findings, timed

__all__ = ["run_property"]


def run_property(ctx, name: str, strategy, *, axis: str, examples: int, guarded_nan: bool = False,
                 label: str = "", rounds: int = 3) -> CheckResult:
    """Search ``strategy`` for a scenario the target gets wrong, and keep looking.

    After a failure whose diagnosis is a single-axis change of the spec (the
    target follows another threshold, another weight-decay mode, ignores weight
    decay, …), the search runs again with the oracle told that change, so that a
    second, independent deviation is found too (up to ``rounds`` findings).
    """
    from ..compare import Outcome, observe
    from ..adapters.base import TargetError

    transforms = []

    def evaluate(scenario):
        if not transforms:
            return ctx.judge(scenario, guarded_nan=guarded_nan)
        try:
            obs = observe(ctx.target, scenario)
        except TargetError as exc:
            return Outcome("fail", error=str(exc))
        model = scenario
        for fn in transforms:
            model = model.with_configs(fn)
        return ctx.judge(model, guarded_nan=guarded_nan, observed=obs)

    findings, total, acceptable, notes = [], 0, 0, []
    extra = {"guarded_nan": True} if guarded_nan else None
    for round_ in range(rounds):
        res = search(strategy, evaluate, max_examples=examples, seed=ctx.seed + round_, on_example=ctx.tick,
                     shrink_seconds=ctx.shrink_seconds)
        total += res.examples
        acceptable += res.acceptable
        notes.extend(n for n in res.notes if n not in notes)
        if res.failure is None:
            if res.examples == 0 and not findings:
                return CheckResult(name, "not supported", res.unsupported or "nothing could be run")
            break
        scenario, outcome = res.failure
        diags = []
        if transforms:
            # the finding's scenario is what the target was told; diagnose it against
            # the spec with the changes already found
            model = scenario
            for fn in transforms:
                model = model.with_configs(fn)
            finding, axis_text = make_finding(ctx, name, model, outcome, axis=axis, index=len(findings) + 1,
                                              extra=extra, diagnoses=diags)
            finding.scenario = scenario.to_json()
            finding.detail += " (found after accounting for the findings above)"
        else:
            finding, axis_text = make_finding(ctx, name, scenario, outcome, axis=axis, index=1, extra=extra,
                                              diagnoses=diags)
        if label:
            finding.title = f"{label}: {finding.title}"
        findings.append(finding)
        diag = diags[0] if diags else None
        if diag is None or not diag.exact or diag.transform is None:
            break  # nothing to account for: further failures would repeat this one
        transforms.append(diag.transform)
    if findings:
        result = result_from_findings(ctx, name, findings, passed_summary="", examples=total, notes=notes)
        return result
    verdict = "acceptable" if acceptable else "pass"
    summary = f"{total} drawn cases" + (f" ({acceptable} acceptable)" if acceptable else "")
    return CheckResult(name, verdict, summary, notes=notes, examples=total)


@check("trajectories", "Trajectories over drawn hyperparameters and gradient streams", "update rule")
@timed
def trajectories(ctx) -> CheckResult:
    """θ after every step, over drawn lr, β₁, β₂ ∈ [0, 0.99999], ε, weight decay,
    shapes and gradient streams (6–14 steps), in the run's dtype."""
    return run_property(ctx, "trajectories", scenarios(ctx.base, ctx.dtype), axis="update rule",
                        examples=ctx.max_examples)


@check("degeneration", "SGD with bias-corrected momentum for β₂ ≤ 0.6", "before rectification")
@timed
def degeneration(ctx) -> CheckResult:
    """β₂ ≤ 0.6 gives ρ∞ ≤ 4 < threshold: never rectified (paper §4.2), so every
    step must be θ ← θ − α m̂_t (or no step, for before_rectification="none")."""
    strategy = scenarios(ctx.base, ctx.dtype, config=configs(ctx.base, beta2=beta2s(0.0, 0.6)))
    return run_property(ctx, "degeneration", strategy, axis="before rectification", examples=ctx.few)


@check("maximize", "maximize=True", "maximize")
@timed
def maximize(ctx) -> CheckResult:
    """Ascent: the gradient is negated before anything else (torch's ``maximize``)."""
    wanted = ctx.base.replace(maximize=True)
    missing = ctx.cannot_tell(wanted)
    if missing:
        return CheckResult("maximize", "not supported", f"cannot be told {', '.join(missing)}")
    strategy = scenarios(ctx.base, ctx.dtype, config=configs(ctx.base, maximize=True))
    return run_property(ctx, "maximize", strategy, axis="maximize", examples=ctx.few)


@check("weight_decay_modes", "Each weight-decay mode the target offers", "weight decay")
@timed
def weight_decay_modes(ctx) -> CheckResult:
    """L2 (λθ added to g), decoupled (θ ← θ(1 − αλ) every step) and decoupled on
    moving steps only, each with drawn λ > 0 — for every mode the target can be
    told (and always the mode it is checked against); the others are listed as not
    supported.  Each mode's deviations are their own findings: a weight decay that
    has no effect at all is named "weight decay ignored"."""
    checked, unsupported, notes, examples, acceptable, findings = [], [], [], 0, False, []
    # weight decay ignored is this check's finding: look at it, not past it
    ctx = dataclasses.replace(ctx, model={k: v for k, v in ctx.model.items() if k != "weight_decay_ignored"})
    for mode in ("l2", "decoupled", "decoupled_moving"):
        base = ctx.base.replace(weight_decay_mode=mode)
        if mode != ctx.base.weight_decay_mode and (
                mode not in ctx.target.modes() or ctx.cannot_tell(base.replace(weight_decay=0.1))):
            unsupported.append(mode)
            continue
        strategy = scenarios(base, ctx.dtype, config=configs(base, weight_decay=_weight_decay(nonzero=True)))
        result = run_property(ctx, "weight_decay_modes", strategy, axis="weight decay",
                              examples=max(2, ctx.few // 2 + 1), label=f"mode {mode!r}", rounds=2)
        examples += result.examples
        if result.verdict == "not supported":
            unsupported.append(mode)
            continue
        for f in result.findings:
            f.id = f"weight_decay_modes/{len(findings) + 1}"
            findings.append(f)
        acceptable |= result.verdict == "acceptable"
        notes.extend(result.notes)
        checked.append(mode)
    if not checked:
        return CheckResult("weight_decay_modes", "not supported",
                           f"cannot be told any of {', '.join(unsupported)}")
    summary = f"checked {', '.join(checked)}"
    if unsupported:
        summary += f"; not supported: {', '.join(unsupported)}"
    return result_from_findings(ctx, "weight_decay_modes", findings, passed_summary=summary, examples=examples,
                                notes=notes, acceptable=acceptable)


@check("float32", "float32 parameters", "precision")
@timed
def float32(ctx) -> CheckResult:
    """The trajectory property again with float32 parameters and gradients, against
    the float64 oracle with the float32 tolerance (see :mod:`..tolerance`)."""
    if "float32" not in ctx.target.dtypes:
        return CheckResult("float32", "not supported", "float32 parameters")
    return run_property(ctx, "float32", scenarios(ctx.base, "float32"), axis="precision",
                        examples=ctx.few)

