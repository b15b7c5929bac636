"""Low-precision parameters (float16, bfloat16).

One designed run per low-precision dtype the target accepts: two parameters of
four elements, β₂ = 0.9 (ρ∞ = 19, so the first rectified step comes early and
both branches are exercised in 10 steps), α = 1e-2, ε = 1e-3 (representable in
float16, whose smallest normal is 6e-5), the profile's weight decay at λ = 1e-2,
values ±[0.25, 4].  The target must keep the dtype, and stay within the tolerance
of :mod:`..tolerance` with that dtype's ε (2⁻¹⁰ for float16, 2⁻⁷ for bfloat16) —
whether it keeps its state in the low precision or in float32.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import LOW_PRECISION_DTYPES, round_to
from ..scenario import Group, Scenario
from .base import CheckResult, check, fail_result, timed, unsupported_reason

__all__ = ["low_precision_scenario"]


def low_precision_scenario(base, dtype: str, seed: int) -> Scenario:
    rng = np.random.default_rng(seed)

    def values(shape):
        v = rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape)
        return round_to(v, dtype)

    config = base.replace(lr=1e-2, betas=(0.9, 0.9), eps=1e-3, weight_decay=1e-2)
    params = [values((4,)), values((4,))]
    grads = [[[values((4,)), values((4,))]] for _ in range(10)]
    return Scenario([Group(params, config)], grads, dtype=dtype)


@check("low_precision", "float16 and bfloat16 parameters", "precision")
@timed
def low_precision(ctx) -> CheckResult:
    """See the module docstring."""
    checked, unsupported = [], []
    for dtype in LOW_PRECISION_DTYPES:
        if dtype not in ctx.target.dtypes:
            unsupported.append(dtype)
            continue
        scenario = low_precision_scenario(ctx.base, dtype, ctx.seed)
        reason = unsupported_reason(ctx.target, scenario)
        if reason:
            unsupported.append(f"{dtype} ({reason})")
            continue
        outcome = ctx.judge(scenario)
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            result = fail_result(ctx, "low_precision", scenario, outcome, axis="precision", examples=len(checked) + 1)
            result.summary = f"{dtype}: {result.summary}"
            return result
        checked.append(dtype)
    if not checked:
        return CheckResult("low_precision", "not supported", ", ".join(unsupported))
    summary = f"checked {', '.join(checked)}" + (f"; not supported: {', '.join(unsupported)}" if unsupported else "")
    return CheckResult("low_precision", "pass", summary, examples=len(checked))
