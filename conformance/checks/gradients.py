"""Gradients at the edges: ε = 0 with exactly-zero elements, ``None`` gradients,
and all-zero gradient tensors."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .._dtypes import round_to
from ..scenario import Group, Scenario
from ..strategies import _values, beta2s, configs
from .base import CheckResult, check, make_finding, result_from_findings, timed
from .trajectory import run_property

__all__ = ["eps_zero_scenarios", "grad_none_scenarios", "zero_grad_scenarios"]


@st.composite
def eps_zero_scenarios(draw, base, dtype: str) -> Scenario:
    """ε = 0; one parameter of 4 elements: element 0 has gradient exactly 0 at
    every step, element 1 is 0 for the first k steps, elements 2–3 are never 0
    and tiny (10⁻¹⁰-ish in float64: an ε secretly added shows there)."""
    config = draw(configs(base, beta2=beta2s(0.9, 0.99999))).replace(eps=0.0)
    steps = draw(st.integers(6, 14))
    k = draw(st.integers(1, steps))
    tiny = -10 if dtype in ("float64", "complex128") else -6
    p0 = [_values(draw, (4,), 1.0, dtype, allow_zero=False)]
    grads = []
    for t in range(1, steps + 1):
        g = _values(draw, (4,), 1.0, dtype, allow_zero=False)
        g[0] = 0.0
        if t <= k:
            g[1] = 0.0
        g[2:] = round_to(g[2:] * 10.0**tiny, dtype)
        grads.append([[g]])
    return Scenario([Group(p0, config)], grads, dtype=dtype)


@check("eps_zero", "ε = 0 with gradient elements exactly zero from the start", "eps")
@timed
def eps_zero(ctx) -> CheckResult:
    """What conforms with ε = 0.  Algorithm 2 divides by sqrt(v̂_t); an element whose
    gradients have all been exactly 0 has m = v = 0, so its first rectified step
    is 0/0.  The spec follows IEEE arithmetic: NaN there, and NaN ever after.

    * *valid* (pass): NaN exactly where the spec has NaN, every other element
      within tolerance — the spec's own behaviour;
    * *acceptable*: a guarded division that leaves those elements where the spec
      with ε → 0⁺ would (no adaptive move; the spec run with ε = 1e-300), with
      every other element still within tolerance;
    * *fail*: anything else — a finite value that is neither, NaN leaking into
      elements with nonzero gradients, or a silently substituted ε (the tiny
      gradients of elements 2–3 expose ε ≈ 1e-8 as a deviation)."""
    return run_property(ctx, "eps_zero", eps_zero_scenarios(ctx.base, ctx.dtype), axis="eps",
                        examples=ctx.few, guarded_nan=True)


@st.composite
def grad_none_scenarios(draw, base, dtype: str) -> Scenario:
    """One group of three parameters; parameter 0 always has a gradient, parameters
    1 and 2 have ``None`` at drawn steps (parameter 2 at least at step 1)."""
    config = draw(configs(base))
    steps = draw(st.integers(6, 12))
    shapes = [(draw(st.integers(1, 3)),) for _ in range(3)]
    params = [_values(draw, s, 1.0, dtype) for s in shapes]
    none1 = draw(st.sets(st.integers(1, steps), min_size=1))
    none2 = draw(st.sets(st.integers(1, steps))) | {1}
    grads = []
    for t in range(1, steps + 1):
        row = [_values(draw, s, 1.0, dtype) for s in shapes]
        if t in none1:
            row[1] = None
        if t in none2:
            row[2] = None
        grads.append([row])
    return Scenario([Group(params, config)], grads, dtype=dtype)


def designed_grad_none_scenario(base, dtype: str) -> Scenario:
    """Three parameters over 10 steps: parameter 0 always has a gradient, parameter 1
    has None at steps 3 and 4 (after real gradients: a None stepped as zeros would
    decay its momentum and move it), parameter 2 has None at steps 1 and 2 (its own
    counter must start at its first gradient: a counter per group runs ahead)."""
    rng = np.random.default_rng(11)

    def values():
        return round_to(rng.uniform(0.25, 4.0, (2,)) * rng.choice([-1.0, 1.0], (2,)), dtype)

    config = base.replace(lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, maximize=False)
    params = [values(), values(), values()]
    grads = []
    for t in range(1, 11):
        row = [values(), values(), values()]
        if t in (3, 4):
            row[1] = None
        if t in (1, 2):
            row[2] = None
        grads.append([row])
    return Scenario([Group(params, config)], grads, dtype=dtype)


@check("grad_none", "Parameters whose gradient is None", "gradients")
@timed
def grad_none(ctx) -> CheckResult:
    """A parameter with ``grad=None`` is skipped: unchanged, its state untouched and
    its step counter not advanced (each parameter counts its own steps, as in
    torch.optim); the other parameters step normally.  A designed case first
    (:func:`designed_grad_none_scenario`: it tells "None stepped as zeros" from "a
    step counter per group"), then drawn ones; each distinct cause is a finding."""
    if "grad_none" not in ctx.target.features:
        return CheckResult("grad_none", "not supported", "None gradients")
    findings = []
    scenario = designed_grad_none_scenario(ctx.base, ctx.dtype)
    outcome = ctx.judge(scenario)
    if ctx.tick:
        ctx.tick()
    if outcome.verdict == "fail":
        finding, _ = make_finding(ctx, "grad_none", scenario, outcome, axis="gradients")
        findings.append(finding)
    drawn = run_property(ctx, "grad_none", grad_none_scenarios(ctx.base, ctx.dtype), axis="gradients",
                         examples=ctx.few, rounds=1)
    if drawn.verdict == "not supported" and not findings:
        return drawn
    for f in drawn.findings:
        if f.matches_any({g.cause for g in findings} | {c for g in findings for c in g.also}):
            continue
        f.id = f"grad_none/{len(findings) + 1}"
        findings.append(f)
    return result_from_findings(ctx, "grad_none", findings, passed_summary=f"1 designed + {drawn.summary}",
                                examples=drawn.examples + 1, notes=drawn.notes,
                                acceptable=drawn.verdict == "acceptable")


@st.composite
def zero_grad_scenarios(draw, base, dtype: str) -> Scenario:
    """Two parameters; parameter 1 gets an all-zero gradient tensor at drawn steps
    (step 1 among them); drawn weight decay > 0 so a skipped step shows."""
    from ..strategies import _weight_decay

    config = draw(configs(base, weight_decay=_weight_decay(nonzero=True)))
    steps = draw(st.integers(6, 12))
    shapes = [(draw(st.integers(1, 3)),) for _ in range(2)]
    params = [_values(draw, s, 1.0, dtype, allow_zero=False) for s in shapes]
    zeros = draw(st.sets(st.integers(1, steps))) | {1}
    grads = []
    for t in range(1, steps + 1):
        row = [_values(draw, s, 1.0, dtype) for s in shapes]
        if t in zeros:
            row[1] = np.zeros(shapes[1])
        grads.append([row])
    return Scenario([Group(params, config)], grads, dtype=dtype)


def designed_zero_grad_scenario(base, dtype: str) -> Scenario:
    """Two parameters over 10 steps, no weight decay: parameter 1's gradient is all
    zeros at steps 3 and 4, between nonzero ones (a skipped step leaves m undecayed
    and the counter behind — nothing else explains both)."""
    rng = np.random.default_rng(13)

    def values():
        return round_to(rng.uniform(0.25, 4.0, (2,)) * rng.choice([-1.0, 1.0], (2,)), dtype)

    config = base.replace(lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, maximize=False)
    grads = []
    for t in range(1, 11):
        row = [values(), values()]
        if t in (3, 4):
            row[1] = np.zeros(2)
        grads.append([row])
    return Scenario([Group([values(), values()], config)], grads, dtype=dtype)


@check("zero_grads", "All-zero gradient tensors", "gradients")
@timed
def zero_grads(ctx) -> CheckResult:
    """An all-zero gradient is a normal step (m and v decay, the counter advances,
    weight decay applies) — not a skipped one.  A designed case first
    (:func:`designed_zero_grad_scenario`), then drawn ones with weight decay."""
    findings = []
    scenario = designed_zero_grad_scenario(ctx.base, ctx.dtype)
    outcome = ctx.judge(scenario)
    if ctx.tick:
        ctx.tick()
    if outcome.verdict == "fail":
        finding, _ = make_finding(ctx, "zero_grads", scenario, outcome, axis="gradients")
        findings.append(finding)
    drawn = run_property(ctx, "zero_grads", zero_grad_scenarios(ctx.base, ctx.dtype), axis="gradients",
                         examples=ctx.few, rounds=1)
    for f in drawn.findings:
        if f.matches_any({g.cause for g in findings} | {c for g in findings for c in g.also}):
            continue
        f.id = f"zero_grads/{len(findings) + 1}"
        findings.append(f)
    return result_from_findings(ctx, "zero_grads", findings, passed_summary=f"1 designed + {drawn.summary}",
                                examples=drawn.examples + 1, notes=drawn.notes,
                                acceptable=drawn.verdict == "acceptable")
