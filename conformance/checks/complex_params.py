"""Complex parameters, where the target supports them.

The spec defines a complex parameter as its real view: each element is two
independent real coordinates (``torch.view_as_real``), so m and v are kept per
real and imaginary part.  Designed runs of 10 steps on three complex elements
(β₂ = 0.9 and 0.999, α = 0.1, the profile's weight decay at λ = 1e-2) compare
the target's parameters, viewed as real pairs, with the spec on the real views.
Two causes are told apart on a failure:

* the imaginary part dropped or zeroed (``p.data.float()`` on a complex tensor
  keeps the real part; copying back writes 0 into the imaginary part): every
  imaginary part the target returns is exactly 0 although none started at 0 —
  this destroys data;
* a different, legitimate convention: a complex number as one coordinate, with
  v accumulated from |g|² = g·conj(g) (optax): the target matches that model
  within tolerance.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import round_to
from ..adapters.base import NotSupported
from ..formulas import variant_update
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


def _imag_zeroed(outcome, scenario) -> bool:
    obs = outcome.observed
    if obs is None or not obs.values:
        return False
    starts = [p for g in scenario.groups for p in g.params]
    if not all(np.all(np.asarray(p).imag != 0) for p in starts):
        return False
    last = [p for g in obs.values[-1] for p in g]
    return all(np.asarray(p).shape[-1:] == (2,) and np.all(np.asarray(p)[..., 1] == 0.0) for p in last)


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
            outcome = ctx.judge(scenario)
        except NotSupported as exc:
            return CheckResult("complex", "not supported", str(exc))
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            cause = None
            if _imag_zeroed(outcome, scenario):
                cause = "complex/imag_zeroed"
            elif outcome.observed is not None and ctx.judge(
                    scenario, observed=outcome.observed, oracle_kwargs={"update_fn": variant_update("complex_abs_square")}).ok:
                cause = "complex/abs_square_convention"
            axis = "complex convention" if cause == "complex/abs_square_convention" else "complex"
            return fail_result(ctx, "complex", scenario, outcome, axis=axis, examples=len(cases), cause=cause)
    return CheckResult("complex", "pass", f"{len(cases)} runs ({dtype})", examples=len(cases))
