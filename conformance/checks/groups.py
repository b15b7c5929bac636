"""Several parameter groups with their own lr, betas and weight decay, and a group
added after construction (``add_param_group``)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ..scenario import Group, Scenario
from ..strategies import _values, configs
from .base import CheckResult, check, timed, unsupported_reason
from .trajectory import run_property

__all__ = ["group_scenarios"]


@st.composite
def group_scenarios(draw, base, dtype: str, *, add: bool) -> Scenario:
    """2–3 groups with independently drawn configs (and one group added at a drawn
    step when ``add``), 1–2 parameters each, 6–12 steps."""
    n_groups = draw(st.integers(2, 3))
    steps = draw(st.integers(6, 12))
    k = draw(st.integers(-3, 1))

    def group():
        cfg = draw(configs(base))
        shapes = [(draw(st.integers(1, 3)),) for _ in range(draw(st.integers(1, 2)))]
        return Group([_values(draw, s, 1.0, dtype) for s in shapes], cfg)

    groups = [group() for _ in range(n_groups)]
    added = {}
    if add:
        added[draw(st.integers(2, steps))] = group()
    grads = []
    for t in range(1, steps + 1):
        present = groups + [g for at, g in added.items() if at <= t]
        grads.append([[_values(draw, p.shape, 10.0**k, dtype) for p in g.params] for g in present])
    return Scenario(groups, grads, dtype=dtype, added=added)


@check("param_groups", "Several parameter groups, and a group added after construction", "param groups")
@timed
def param_groups(ctx) -> CheckResult:
    """Each group must follow its own lr, betas and weight decay; a group added
    with ``add_param_group`` after some steps starts from step 1 (its own m, v
    and counter), as torch does."""
    features = ctx.target.features
    if "param_groups" not in features:
        return CheckResult("param_groups", "not supported", "several parameter groups")
    add = "add_param_group" in features
    probe = Scenario([Group([np.zeros(2)], ctx.base), Group([np.zeros(1)], ctx.base)],
                     [[[np.ones(2)], [np.ones(1)]]], dtype=ctx.dtype)
    reason = unsupported_reason(ctx.target, probe)
    if reason:
        return CheckResult("param_groups", "not supported", f"several parameter groups ({reason})")
    result = run_property(ctx, "param_groups", group_scenarios(ctx.base, ctx.dtype, add=add),
                          axis="param groups", examples=ctx.few)
    if not add and result.verdict != "fail":
        result.summary += "; add_param_group: not supported"
    return result
