"""state_dict round trip and resume mid-run.

Run A takes k steps, saves its state (a real serialisation: ``torch.save`` for
torch, pickle for pytrees), and carries on to step 2k.  Run B is a fresh
optimizer built on A's parameter values at step k, restores the snapshot, and
takes steps k+1..2k.  Both must follow the oracle's uninterrupted trajectory
(within tolerance); the report notes whether B is bit-identical to A.  This
catches a snapshot that misses a field (a lost step counter restarts the bias
corrections), aliases live state (later steps change the saved copy), or a
restore that ignores part of it.
"""

from __future__ import annotations

import numpy as np

from ..adapters.base import TargetError
from ..compare import Observed, Outcome, _real, judge
from ..scenario import Group
from ..search import search
from ..strategies import scenarios
from .base import CheckResult, check, fail_result, timed

__all__ = ["replay_state"]


def replay_state(target, scenario, tol_dtype=None, model=None, **_) -> Outcome:
    """Run the save/resume protocol of the module docstring on ``scenario``."""
    steps = scenario.steps
    k = max(1, steps // 2)
    try:
        a = target.open(scenario.groups, scenario.dtype)
        a_values = []
        for t in range(1, k + 1):
            a.step(scenario.grads_at(t))
            a_values.append(a.params())
    except TargetError as exc:
        return Outcome("fail", error=str(exc))
    try:
        blob = a.save()
        at_k = a.params()
        for t in range(k + 1, steps + 1):
            a.step(scenario.grads_at(t))
            a_values.append(a.params())
    except TargetError as exc:
        return Outcome("fail", error=f"after saving its state at step {k}: {exc}",
                       notes=[f"the run that saved its state at step {k} broke after saving"])
    try:
        groups = [Group([np.array(v) for v in values], g.config) for values, g in zip(at_k, scenario.groups)]
        b = target.open(groups, scenario.dtype)
        b.restore(blob)
        b_values = []
        for t in range(k + 1, steps + 1):
            b.step(scenario.grads_at(t))
            b_values.append(b.params())
    except TargetError as exc:
        return Outcome("fail", error=f"after restoring the state saved at step {k}: {exc}",
                       notes=[f"state saved after step {k} and restored into a new optimizer"])
    everything = list(range(1, steps + 1))
    uninterrupted = judge(target, scenario, observed=Observed(everything, [_real(v) for v in a_values]),
                          tol_dtype=tol_dtype, model=model)
    if not uninterrupted.ok:
        uninterrupted.notes.append(f"the run that saved its state at step {k} deviates")
        return uninterrupted
    resumed = judge(target, scenario, tol_dtype=tol_dtype, model=model,
                    observed=Observed(everything, [_real(v) for v in a_values[:k] + b_values]))
    if not resumed.ok:
        resumed.notes.append(f"state saved after step {k} and restored into a new optimizer")
        if resumed.mismatch is not None:
            resumed.mismatch.message = (resumed.mismatch.message or
                                        f"expected {resumed.mismatch.expected!r}, got {resumed.mismatch.got!r}"
                                        f" (tolerance {resumed.mismatch.tolerance:.3g})") + \
                f" after resuming from the state saved at step {k}"
        return resumed
    identical = all(np.array_equal(x, y, equal_nan=True)
                    for va, vb in zip(a_values[k:], b_values) for ga, gb in zip(va, vb) for x, y in zip(ga, gb))
    if not identical:
        resumed.notes.append("resumed run within tolerance but not bit-identical to the uninterrupted run")
    return resumed


@check("state_dict", "state_dict round trip and resume mid-run", "state", replay=replay_state)
@timed
def state_dict(ctx) -> CheckResult:
    """See the module docstring; k = ⌊steps/2⌋ over drawn scenarios of 6–14 steps."""
    if "state_dict" not in ctx.target.features:
        return CheckResult("state_dict", "not supported", "saving and restoring optimizer state")
    res = search(scenarios(ctx.base, ctx.dtype, steps=(6, 14)), lambda sc: replay_state(ctx.target, sc, tol_dtype=ctx.tol_dtype, model=ctx.model),
                 max_examples=ctx.few, seed=ctx.seed, on_example=ctx.tick,
                 shrink_seconds=ctx.shrink_seconds)
    if res.failure is not None:
        scenario, outcome = res.failure
        cause = "state/not_restored" if any("saved its state" in n and "broke" in n or "restored" in n
                                            for n in outcome.notes) else None
        result = fail_result(ctx, "state_dict", scenario, outcome, axis="state", examples=res.examples, cause=cause)
        if outcome.notes:
            result.summary = f"{result.summary} ({'; '.join(outcome.notes)})"
        return result
    if res.examples == 0:
        return CheckResult("state_dict", "not supported", res.unsupported or "nothing could be run")
    return CheckResult("state_dict", "acceptable" if res.acceptable else "pass",
                       f"{res.examples} drawn cases", notes=sorted(set(res.notes)), examples=res.examples)
