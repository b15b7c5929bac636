"""Checks that compare whole trajectories over drawn hyperparameters and streams.

All five run a Hypothesis property (see :mod:`..search`): draw a scenario, run it
through the target and the oracle, judge it; on failure Hypothesis shrinks to a
minimal scenario, which becomes the repro.
"""

from __future__ import annotations

from ..compare import judge
from ..search import search
from ..strategies import _weight_decay, beta2s, configs, scenarios
from .base import CheckResult, check, fail_result, timed

__all__ = ["run_property"]


def run_property(ctx, name: str, strategy, *, axis: str, examples: int, guarded_nan: bool = False,
                 label: str = "") -> CheckResult:
    """Search ``strategy`` for a scenario the target gets wrong."""

    def evaluate(scenario):
        return judge(ctx.target, scenario, guarded_nan=guarded_nan)

    res = search(strategy, evaluate, max_examples=examples, seed=ctx.seed, on_example=ctx.tick,
                 shrink_seconds=ctx.shrink_seconds)
    if res.failure is not None:
        scenario, outcome = res.failure
        extra = {"guarded_nan": True} if guarded_nan else None
        result = fail_result(ctx, name, scenario, outcome, axis=axis, extra=extra, examples=res.examples)
        if label:
            result.summary = f"{label}: {result.summary}"
        return result
    if res.examples == 0:
        return CheckResult(name, "not supported", res.unsupported or "nothing could be run")
    verdict = "acceptable" if res.acceptable else "pass"
    summary = f"{res.examples} drawn cases" + (f" ({res.acceptable} acceptable)" if res.acceptable else "")
    return CheckResult(name, verdict, summary, notes=res.notes, examples=res.examples)


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
    missing = ctx.target.unsupported(wanted)
    if missing:
        return CheckResult("maximize", "not supported", f"cannot be told {', '.join(missing)}")
    strategy = scenarios(ctx.base, ctx.dtype, config=configs(ctx.base, maximize=True))
    return run_property(ctx, "maximize", strategy, axis="maximize", examples=ctx.few)


@check("weight_decay_modes", "Each weight-decay mode the target offers", "weight decay")
@timed
def weight_decay_modes(ctx) -> CheckResult:
    """L2 (λθ added to g), decoupled (θ ← θ(1 − αλ) every step) and decoupled on
    moving steps only, each with drawn λ > 0 — for every mode the target can be
    told; the others are listed as not supported."""
    checked, unsupported, notes, examples, acceptable = [], [], [], 0, False
    for mode in ("l2", "decoupled", "decoupled_moving"):
        base = ctx.base.replace(weight_decay_mode=mode)
        if mode not in ctx.target.modes() or ctx.target.unsupported(base.replace(weight_decay=0.1)):
            unsupported.append(mode)
            continue
        strategy = scenarios(base, ctx.dtype, config=configs(base, weight_decay=_weight_decay(nonzero=True)))
        result = run_property(ctx, "weight_decay_modes", strategy, axis="weight decay",
                              examples=max(2, ctx.few // 2 + 1), label=f"mode {mode!r}")
        examples += result.examples
        if result.verdict == "fail":
            result.examples = examples
            return result
        if result.verdict == "not supported":
            unsupported.append(mode)
            continue
        acceptable |= result.verdict == "acceptable"
        notes.extend(result.notes)
        checked.append(mode)
    if not checked:
        return CheckResult("weight_decay_modes", "not supported",
                           f"cannot be told any of {', '.join(unsupported)}")
    summary = f"checked {', '.join(checked)}"
    if unsupported:
        summary += f"; not supported: {', '.join(unsupported)}"
    return CheckResult("weight_decay_modes", "acceptable" if acceptable else "pass", summary,
                       notes=notes, examples=examples)


@check("float32", "float32 parameters", "precision")
@timed
def float32(ctx) -> CheckResult:
    """The trajectory property again with float32 parameters and gradients, against
    the float64 oracle with the float32 tolerance (see :mod:`..tolerance`)."""
    if "float32" not in ctx.target.dtypes:
        return CheckResult("float32", "not supported", "float32 parameters")
    return run_property(ctx, "float32", scenarios(ctx.base, "float32"), axis="precision",
                        examples=ctx.few)

