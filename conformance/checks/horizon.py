"""Long horizons: ≥ 10⁴ steps on a small tensor.

One run of ``ctx.horizon`` steps (10 000 by default) on three elements, with a
generated stream (sinusoid plus noise, every 7th gradient exactly 0), β₂ = 0.99999,
α = 1e-2 and the profile's weight decay at λ = 1e-3: 1 − β₂ᵗ is still far from 1
at the end (0.095 at t = 10⁴), so bias corrections computed with cancellation,
step counters kept in a narrow type (a float16 counter stops at 2048, an int16
one wraps at 32 768) or state that drifts all show.  Values are compared every
``horizon/10`` steps; the tolerance grows with t as derived in :mod:`..tolerance`.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import round_to
from ..scenario import GeneratedStream, Group, Scenario
from .base import CheckResult, check, fail_result, timed

__all__ = ["horizon_scenarios"]


def horizon_scenarios(base, dtype: str, steps: int, seed: int) -> list:
    params = [round_to(np.array([0.5, -1.5, 2.0]), dtype)]
    config = base.replace(lr=1e-2, betas=(0.9, 0.99999), eps=1e-8, weight_decay=1e-3)
    stream = GeneratedStream(seed=seed, steps=steps, shapes=(((3,),),), scale=1.0, noise=0.5,
                             zero_every=7, dtype=dtype)
    return [Scenario([Group(params, config)], stream, dtype=dtype, record_every=max(1, steps // 10))]


@check("long_horizon", "Long horizons (≥ 10⁴ steps)", "step counter")
@timed
def long_horizon(ctx) -> CheckResult:
    """See the module docstring."""
    scenarios = horizon_scenarios(ctx.base, ctx.dtype, ctx.horizon, ctx.seed)
    acceptable, notes = False, []
    for scenario in scenarios:
        outcome = ctx.judge(scenario)
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            return fail_result(ctx, "long_horizon", scenario, outcome, axis="step counter",
                               examples=len(scenarios))
        if outcome.verdict == "acceptable":
            acceptable = True
            notes.extend(outcome.notes)
    return CheckResult("long_horizon", "acceptable" if acceptable else "pass",
                       f"{ctx.horizon} steps, β₂ = 0.99999", notes=notes, examples=len(scenarios))
