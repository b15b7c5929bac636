"""Several parameter groups with their own lr, betas and weight decay, and a group
added after construction (``add_param_group``).

First designed pairs of groups that differ in a single hyperparameter — lr alone,
weight decay alone, ε alone (so with equal betas), then betas — and groups added
after steps were taken (with other betas, and with the same betas but another
lr); then drawn groups.  Each designed case that fails is diagnosed against the
group defects of :data:`~..oracle.GROUP_MODELS` (a cache of step scalars shared
across groups, an added group sharing an earlier group's cache, a group stepping
with another group's hyperparameter, a step counter per group), and every
distinct cause is its own finding.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .._dtypes import round_to
from ..scenario import Group, Scenario
from ..strategies import _values, configs
from .base import CheckResult, check, make_finding, result_from_findings, timed, unsupported_reason
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


def designed_group_scenarios(base, dtype: str, *, add: bool) -> list:
    """(label, scenario): the designed cases of the module docstring."""
    rng = np.random.default_rng(7)

    def values(shape, scale=1.0):
        return round_to(rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape) * scale, dtype)

    common = base.replace(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, maximize=False)
    pairs = [
        ("groups differing in lr alone", common, common.replace(lr=1.0)),
        ("groups differing in weight decay alone", common, common.replace(weight_decay=0.2)),
        ("groups differing in ε alone", common, common.replace(eps=1e-1)),
        ("groups differing in betas", common, common.replace(betas=(0.5, 0.9))),
    ]
    steps = 10
    out = []
    for label, c0, c1 in pairs:
        if c1.weight_decay and base.weight_decay_mode == "none":
            continue
        groups = [Group([values((2,))], c0), Group([values((2,))], c1)]
        grads = [[[values((2,), 1e-2)], [values((2,), 1e-2)]] for _ in range(steps)]
        out.append((label, Scenario(groups, grads, dtype=dtype)))
    if add:
        for label, c1 in (("a group added after 2 steps, with other betas and lr", common.replace(betas=(0.5, 0.9),
                                                                                                  lr=0.5)),
                          ("a group added after 2 steps, with the same betas and another lr", common.replace(lr=1.0))):
            g0 = Group([values((2,))], common)
            late = Group([values((2,))], c1)
            grads = []
            for t in range(1, steps + 1):
                row = [[values((2,), 1e-2)]]
                if t >= 3:
                    row.append([values((2,), 1e-2)])
                grads.append(row)
            out.append((label, Scenario([g0], grads, dtype=dtype, added={3: late})))
    return out


@check("param_groups", "Several parameter groups, and a group added after construction", "param groups")
@timed
def param_groups(ctx) -> CheckResult:
    """Each group must follow its own lr, betas and weight decay; a group added
    with ``add_param_group`` after some steps starts from step 1 (its own m, v
    and counter), as torch does.  See the module docstring for the cases."""
    features = ctx.target.features
    if "param_groups" not in features:
        return CheckResult("param_groups", "not supported", "several parameter groups")
    add = "add_param_group" in features
    probe = Scenario([Group([np.zeros(2)], ctx.base), Group([np.zeros(1)], ctx.base)],
                     [[[np.ones(2)], [np.ones(1)]]], dtype=ctx.dtype)
    reason = unsupported_reason(ctx.target, probe)
    if reason:
        return CheckResult("param_groups", "not supported", f"several parameter groups ({reason})")
    findings, seen, examples = [], set(), 0
    for label, scenario in designed_group_scenarios(ctx.base, ctx.dtype, add=add):
        outcome = ctx.judge(scenario)
        examples += 1
        if ctx.tick:
            ctx.tick()
        if outcome.verdict != "fail":
            continue
        finding, _ = make_finding(ctx, "param_groups", scenario, outcome, axis="param groups",
                                  index=len(findings) + 1)
        if finding.cause in seen and finding.cause != "unexplained":
            continue
        seen.add(finding.cause)
        finding.title = f"{label}: {finding.title}"
        findings.append(finding)
    drawn = run_property(ctx, "param_groups", group_scenarios(ctx.base, ctx.dtype, add=add),
                         axis="param groups", examples=ctx.few, rounds=1)
    examples += drawn.examples
    for f in drawn.findings:
        if f.matches_any(seen):
            continue  # the designed cases already name it, with a smaller scenario
        f.id = f"param_groups/{len(findings) + 1}"
        f.title = f"drawn groups: {f.title}"
        findings.append(f)
    summary = f"{examples} cases ({examples - drawn.examples} designed)"
    if not add:
        summary += "; add_param_group: not supported"
    return result_from_findings(ctx, "param_groups", findings, passed_summary=summary, examples=examples,
                                notes=drawn.notes, acceptable=drawn.verdict == "acceptable")
