"""Side effects: a step must not write into its gradients (nor, for a functional
step, into its parameters or state).

Designed runs of 8 steps (past the first rectified step) with gradients that are
never 0: plain, with ``maximize=True`` and with L2 weight decay when the target
can be told them — the two places where implementations negate or add to the
gradient and may do it in place.  After every step the adapter reports the
inputs as the target holds them (``Session.last_inputs``); each must be
bit-identical to what it was given.
"""

from __future__ import annotations

import numpy as np

from .._dtypes import round_to
from ..adapters.base import NotSupported, TargetError
from ..compare import Mismatch, Outcome
from ..scenario import Group, Scenario
from .base import CheckResult, check, render_repro, timed

__all__ = ["replay_side_effects", "side_effect_scenarios"]


def side_effect_scenarios(ctx) -> list:
    rng = np.random.default_rng(ctx.seed)
    dtype = ctx.dtype

    def values(shape):
        return round_to(rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape), dtype)

    base = ctx.base.replace(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    configs = [("plain", base)]
    if not ctx.target.unsupported(base.replace(maximize=True)):
        configs.append(("maximize", base.replace(maximize=True)))
    for mode in ("l2", "decoupled"):
        cfg = base.replace(weight_decay=0.1, weight_decay_mode=mode)
        if mode in ctx.target.modes() and not ctx.target.unsupported(cfg):
            configs.append((f"{mode} weight decay", cfg))
    out = []
    for label, cfg in configs:
        params = [values((3,)), values((2,))]
        grads = [[[values((3,)), values((2,))]] for _ in range(8)]
        out.append((label, Scenario([Group(params, cfg)], grads, dtype=dtype)))
    return out


def replay_side_effects(target, scenario, **_) -> Outcome:
    """Step through ``scenario`` and report the first input the target wrote."""
    try:
        session = target.open(scenario.groups, scenario.dtype)
        for t in range(1, scenario.steps + 1):
            given = [g for group in scenario.grads_at(t) for g in group if g is not None]
            session.step(scenario.grads_at(t))
            inputs = session.last_inputs()
            for name, pairs in inputs.items():
                for i, (before, after) in enumerate(pairs):
                    if name == "grads" and i < len(given):
                        before = np.asarray(given[i], dtype=np.float64)
                    before = np.asarray(before)
                    after = np.asarray(after)
                    if before.shape != after.shape or not np.array_equal(before, after, equal_nan=True):
                        diff = np.flatnonzero(~np.isclose(before.reshape(-1), after.reshape(-1), rtol=0, atol=0,
                                                          equal_nan=True)) if before.shape == after.shape else [0]
                        j = int(diff[0]) if len(diff) else 0
                        b = float(before.reshape(-1)[j]) if before.size else float("nan")
                        a = float(after.reshape(-1)[j]) if after.size else float("nan")
                        msg = f"the step wrote into its input {name}[{i}]: element {j} was {b!r}, is now {a!r}"
                        return Outcome("fail", Mismatch(t, 0, i, (j,), b, a, 0.0, msg))
    except TargetError as exc:
        return Outcome("fail", error=str(exc))
    return Outcome("pass")


@check("side_effects", "Inputs the step must not write are unchanged", "side effects",
       replay=replay_side_effects)
@timed
def side_effects(ctx) -> CheckResult:
    """See the module docstring."""
    if "side_effects" not in ctx.target.features:
        return CheckResult("side_effects", "not supported", "the adapter cannot report a step's inputs")
    cases = side_effect_scenarios(ctx)
    for label, scenario in cases:
        try:
            outcome = replay_side_effects(ctx.target, scenario)
        except NotSupported as exc:
            return CheckResult("side_effects", "not supported", str(exc))
        if ctx.tick:
            ctx.tick()
        if outcome.verdict == "fail":
            summary = outcome.mismatch.describe() if outcome.mismatch else outcome.error
            return CheckResult("side_effects", "fail", f"{label}: {summary}", mismatch=outcome.mismatch,
                               axis="side effects: the step writes into an input",
                               repro=render_repro(ctx.target, "side_effects", scenario),
                               examples=len(cases), scenario=scenario.to_json())
    return CheckResult("side_effects", "pass", f"{', '.join(label for label, _ in cases)}: inputs unchanged",
                       examples=len(cases))
