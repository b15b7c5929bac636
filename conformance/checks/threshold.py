"""The first rectified step and the threshold decision, over β₂ from 0 to 0.99999.

Designed inputs: a constant gradient g = (1, −0.5) from θ = 0, so m̂_t = g exactly
and every step's update shows its branch: −α m̂_t on an SGD-momentum step,
−α r_t m̂_t D_t (with r_t < 1) on a rectified one, 0 when nothing moves.  Run for
β₂ on a grid over [0, 0.99999] — where step scalars evaluated in float32 go wrong
— and for β₂ solved (by bisection on the exact ρ_t) so that ρ_t lands at
threshold·(1 ± 1e-3) and threshold·(1 ± 1e-7) for t ∈ {thr+1, 8, 12, 30}.  A
float64 target must take the spec's branch at all of them; a float32 one may
take either where ρ_t is inside the branch window (verdict "acceptable").
"""

from __future__ import annotations

import functools

import numpy as np

from radam_ref import schedule

from .._dtypes import round_to
from ..scenario import Group, Scenario
from .base import CheckResult, check, fail_result, timed

__all__ = ["GRID", "near_threshold_beta2", "threshold_scenarios"]

GRID = (0.0, 0.3, 0.5, 0.6, 0.65, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999,
        0.99995, 0.99999)
_MAX_STEPS = 40


@functools.lru_cache(maxsize=256)
def near_threshold_beta2(t: int, rho: float) -> float | None:
    """The float64 β₂ whose exact ρ_t is closest to ``rho`` (None if unreachable:
    ρ_t < t for every β₂ < 1)."""
    lo, hi = 0.0, 1.0 - 2.0**-40
    if schedule(t, beta2=hi).rho_t < rho:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if schedule(t, beta2=mid).rho_t < rho:
            lo = mid
        else:
            hi = mid
    return hi


def _first_rectified(config) -> int | None:
    for t in range(1, _MAX_STEPS + 1):
        if config.schedule(t).rectified:
            return t
    return None


def threshold_scenarios(base, dtype: str) -> list:
    """(label, scenario) pairs of the check, grid first."""
    thr = base.threshold
    betas = [(f"β₂ = {b}", b) for b in GRID]
    for t in (int(thr) + 1, 8, 12, 30):
        for rel in (1e-3, -1e-3, 1e-7, -1e-7):
            b2 = near_threshold_beta2(t, thr * (1.0 + rel))
            if b2 is not None and 0.0 < b2 < 1.0:
                betas.append((f"β₂ = {b2!r} (ρ_{t} = {thr:g}·(1{rel:+.0e}))", b2))
    out = []
    params = [round_to(np.zeros(2), dtype)]
    for label, b2 in betas:
        config = base.replace(lr=0.5, betas=(0.9, b2), eps=1e-8, weight_decay=0.0, maximize=False)
        first = _first_rectified(config)
        steps = min(_MAX_STEPS, first + 2) if first else 10
        g = round_to(np.array([1.0, -0.5]), dtype)
        out.append((label, first, Scenario([Group(params, config)], [[[g]] for _ in range(steps)], dtype=dtype)))
    return out


def _branches(observed, scenario) -> str:
    """The first step whose update is not the SGD-momentum step −α·m̂ (m̂ = g here)."""
    config = scenario.groups[0].config
    g = scenario.grads_at(1)[0][0]
    prev = scenario.groups[0].params[0]
    for t, values in zip(observed.steps, observed.values):
        p = values[0][0]
        delta = p - prev
        sgd = -config.lr * g
        if not np.allclose(delta, sgd, rtol=1e-3, atol=0.0):
            kind = "no update" if np.all(delta == 0) else "an update other than the SGD-momentum step"
            return f"the target's first step that is not SGD-momentum is t = {t} ({kind})"
        prev = p
    return "the target never left SGD-momentum"


@check("threshold", "First rectified step and threshold decision, β₂ ∈ [0, 0.99999]", "threshold")
@timed
def threshold(ctx) -> CheckResult:
    """See the module docstring."""
    cases = threshold_scenarios(ctx.base, ctx.dtype)
    acceptable, notes = 0, []
    for label, first, scenario in cases:
        outcome = ctx.judge(scenario)
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            config = scenario.groups[0].config
            if first:
                s = config.schedule(first)
                spec_says = (f"the spec's first rectified step is t = {first} "
                             f"(ρ_{first} = {s.rho_t:.7g} {config.comparison} {config.threshold:g})")
            else:
                spec_says = "the spec never rectifies (ρ_t ≤ threshold for every t)"
            seen = _branches(outcome.observed, scenario) if outcome.observed else (outcome.error or "")
            detail = outcome.mismatch.describe() if outcome.mismatch else ""
            if first and seen.endswith(f"is t = {first} (an update other than the SGD-momentum step)"):
                seen = (f"the target also leaves SGD-momentum at t = {first}, so the branch "
                        "decision agrees but the rectified update's value differs")
            return fail_result(ctx, "threshold", scenario, outcome, axis="threshold",
                               summary=f"{label}: {spec_says}; {seen}. {detail}", examples=len(cases))
        if outcome.verdict == "acceptable":
            acceptable += 1
            notes.append(f"{label}: {'; '.join(outcome.notes)}")
    summary = f"{len(cases)} values of β₂" + (f" ({acceptable} acceptable)" if acceptable else "")
    return CheckResult("threshold", "acceptable" if acceptable else "pass", summary, notes=notes,
                       examples=len(cases))
