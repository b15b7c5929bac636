"""Differentiating through the step (meta-learning), where the target supports it.

Designed runs of 8 steps from three elements, with gradients ±[0.25, 4] (never
near 0, where sqrt has an infinite derivative): β₂ = 0.9 (ρ∞ = 19, the first
rectified step at t = 5 or 6, so the derivative crosses the SGD-momentum steps
— where ρ_t ∈ (2, 4] and r_t is not real — and the rectified ones) and
β₂ = 0.999, with the profile's weight decay at λ = 0.1.  The quantity is
L = Σ c·θ_8 with c = (1, −2, 0.5); the target's dL/dθ₀ and dL/dg_t for every t
are compared with the spec's, obtained by running :func:`radam_ref.step` on
float64 torch tensors under autograd.  Tolerance: every component within
64·T·(ε(1 + max σ_t) + ε₆₄ max σ⁶⁴_t) of the largest derivative
(σ_t, σ⁶⁴_t the step-scalar conditioning of :mod:`..tolerance`); NaN or inf anywhere fails.
"""

from __future__ import annotations

import math

import numpy as np

from .._dtypes import machine_epsilon, round_to
from ..adapters.base import NotSupported, TargetError
from ..compare import Mismatch, Outcome
from ..findings import Finding
from ..scenario import Group, Scenario
from ..tolerance import EPS64, scalar_conditioning
from .base import CheckResult, check, render_repro, timed

__all__ = ["replay_autodiff", "autodiff_scenarios", "COTANGENT"]

COTANGENT = (1.0, -2.0, 0.5)


def autodiff_scenarios(base, dtype: str, seed: int) -> list:
    rng = np.random.default_rng(seed)

    def values(shape):
        return round_to(rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape), dtype)

    out = []
    for b2 in (0.9, 0.999):
        cfg = base.replace(lr=0.1, betas=(0.9, b2), eps=1e-8, weight_decay=0.1)
        out.append(Scenario([Group([values((3,))], cfg)], [[[values((3,))]] for _ in range(8)], dtype=dtype))
    return out


def _spec_derivatives(scenario):
    from ..adapters.step_fn import StepFunctionTarget
    import radam_ref

    spec = StepFunctionTarget(radam_ref.step, radam_ref.init, name="radam_ref.step")
    group = scenario.groups[0]
    grads = [scenario.grads_at(t)[0] for t in range(1, scenario.steps + 1)]
    cot = [np.asarray(COTANGENT[: p.size]).reshape(p.shape) for p in group.params]
    return spec.differentiate(group.params, grads, group.config, "float64", cot)


def replay_autodiff(target, scenario, **_) -> Outcome:
    group = scenario.groups[0]
    grads = [scenario.grads_at(t)[0] for t in range(1, scenario.steps + 1)]
    cot = [np.asarray(COTANGENT[: p.size]).reshape(p.shape) for p in group.params]
    try:
        got = target.differentiate(group.params, grads, group.config, scenario.dtype, cot)
    except TargetError as exc:
        return Outcome("fail", error=str(exc))
    expected = _spec_derivatives(scenario)
    names = [f"dL/dθ0[{i}]" for i in range(len(group.params))]
    names += [f"dL/dg_{t}[{i}]" for t in range(1, scenario.steps + 1) for i in range(len(group.params))]
    got_flat = list(got[0]) + [d for step in got[1] for d in step]
    exp_flat = list(expected[0]) + [d for step in expected[1] for d in step]
    scale = max(float(np.max(np.abs(e))) for e in exp_flat if np.size(e))
    sigmas = [scalar_conditioning(group.config, group.config.schedule(t)) for t in range(1, scenario.steps + 1)]
    eps = machine_epsilon(scenario.dtype)
    tol = 64.0 * scenario.steps * scale * (eps * (1.0 + max(s for s, _ in sigmas))
                                           + EPS64 * max(s64 for _, s64 in sigmas))
    for name, g, e in zip(names, got_flat, exp_flat):
        g = np.asarray(g, dtype=np.float64)
        e = np.asarray(e, dtype=np.float64)
        bad = ~np.isfinite(g) | (np.abs(g - e) > tol)
        if bad.any():
            j = int(np.flatnonzero(bad.reshape(-1))[0])
            gv, ev = float(g.reshape(-1)[j]), float(e.reshape(-1)[j])
            msg = (f"{name} element {j}: expected {ev!r}, got {gv!r}"
                   + (" (not finite)" if not math.isfinite(gv) else f" (|diff| {abs(gv - ev):.3g} > {tol:.3g})"))
            return Outcome("fail", Mismatch(scenario.steps, 0, 0, (j,), ev, gv, tol, msg))
    return Outcome("pass")


@check("autodiff", "Differentiating through the step", "autodiff", replay=replay_autodiff)
@timed
def autodiff(ctx) -> CheckResult:
    """See the module docstring."""
    if "autodiff" not in ctx.target.features:
        return CheckResult("autodiff", "not supported", "differentiating through the step")
    try:
        import torch  # noqa: F401 - the spec's derivatives are computed with torch autograd
    except ImportError:
        return CheckResult("autodiff", "not supported", "the oracle's derivatives need torch")
    dtype = ctx.dtype if ctx.dtype in ctx.target.dtypes else ctx.target.default_dtype
    cases = autodiff_scenarios(ctx.base, dtype, ctx.seed)
    for scenario in cases:
        try:
            outcome = replay_autodiff(ctx.target, scenario)
        except NotSupported as exc:
            return CheckResult("autodiff", "not supported", str(exc))
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            summary = outcome.mismatch.describe() if outcome.mismatch else outcome.error
            b2 = scenario.groups[0].config.beta2
            finding = Finding(id="autodiff/1", check="autodiff", cause="autodiff/derivative",
                              title="the derivative of the step differs from the spec's", detail=summary,
                              scenario=scenario.to_json(), mismatch=outcome.mismatch)
            return CheckResult("autodiff", "fail", f"β₂ = {b2}: {summary}", mismatch=outcome.mismatch,
                               axis="autodiff: the derivative of the step differs from the spec's",
                               repro=render_repro(ctx.target, "autodiff", scenario), examples=len(cases),
                               scenario=scenario.to_json(), findings=[finding])
    return CheckResult("autodiff", "pass", f"{len(cases)} runs, dL/dθ₀ and dL/dg_t", examples=len(cases))
