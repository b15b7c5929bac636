"""Complex parameters, where the target supports them.

The spec defines a complex parameter as its real view: each element is two
independent real coordinates (``torch.view_as_real``), so m and v are kept per
real and imaginary part.  Designed runs of 10 steps on three complex elements
(β₂ = 0.9 and 0.999, α = 0.1, the profile's weight decay at λ = 1e-2) compare
the target's parameters, viewed as real pairs, with the spec on the real views.
Implementations that treat a complex number as one coordinate (second moment
|g|²) follow a different convention and fail here.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import round_to
from ..adapters.base import NotSupported
from ..compare import judge
from ..scenario import Group, Scenario
from .base import CheckResult, check, fail_result, timed, unsupported_reason

__all__ = ["complex_scenarios"]


def complex_scenarios(base, dtype: str, seed: int) -> list:
    rng = np.random.default_rng(seed)

    def values(shape):
        mag = rng.uniform(0.25, 4.0, shape + (2,)) * rng.choice([-1.0, 1.0], shape + (2,))
        return round_to(mag[..., 0] + 1j * mag[..., 1], dtype)

    out = []
    for b2 in (0.9, 0.999):
        cfg = base.replace(lr=0.1, betas=(0.9, b2), eps=1e-8, weight_decay=1e-2)
        out.append(Scenario([Group([values((3,))], cfg)], [[[values((3,))]] for _ in range(10)], dtype=dtype))
    return out


@check("complex", "Complex parameters (as real pairs)", "complex")
@timed
def complex_params(ctx) -> CheckResult:
    """See the module docstring."""
    if "complex" not in ctx.target.features:
        return CheckResult("complex", "not supported", "complex parameters")
    dtype = "complex128" if ctx.dtype == "float64" else "complex64"
    if dtype not in ctx.target.dtypes:
        dtype = "complex64"
    if dtype not in ctx.target.dtypes:
        return CheckResult("complex", "not supported", "complex dtypes")
    cases = complex_scenarios(ctx.base, dtype, ctx.seed)
    reason = unsupported_reason(ctx.target, cases[0])
    if reason:
        return CheckResult("complex", "not supported", f"complex parameters ({reason})")
    for scenario in cases:
        try:
            outcome = judge(ctx.target, scenario)
        except NotSupported as exc:
            return CheckResult("complex", "not supported", str(exc))
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            return fail_result(ctx, "complex", scenario, outcome, axis="complex convention", examples=len(cases))
    return CheckResult("complex", "pass", f"{len(cases)} runs ({dtype})", examples=len(cases))
