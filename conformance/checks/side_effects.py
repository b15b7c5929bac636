"""Side effects: a step must not write into its gradients (nor, for a functional
step, into its parameters or state).

Designed runs of 8 steps (past the first rectified step) with gradients that are
never 0: plain, with ``maximize=True``, with each weight-decay mode the target can
be told, and with maximize and weight decay together — the places where
implementations negate or add to the gradient and may do it in place.  After
every step the adapter reports the inputs as the target holds them
(``Session.last_inputs``); each must be bit-identical to what it was given.
Every option is run even after one has failed: each option that writes into an
input is its own finding, named for that option (maximize negating the gradient
in place, weight decay added to it in place, …).
"""

from __future__ import annotations

import numpy as np

from .._dtypes import round_to
from ..adapters.base import NotSupported, TargetError
from ..compare import Mismatch, Outcome
from ..scenario import Group, Scenario
from .base import CheckResult, check, result_from_findings, timed

__all__ = ["replay_side_effects", "side_effect_scenarios"]


def side_effect_scenarios(ctx) -> list:
    rng = np.random.default_rng(ctx.seed)
    dtype = ctx.dtype

    def values(shape):
        return round_to(rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape), dtype)

    base = ctx.base.replace(lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    configs = [("plain", base)]
    can_maximize = not ctx.cannot_tell(base.replace(maximize=True))
    if can_maximize:
        configs.append(("maximize", base.replace(maximize=True)))
    for mode in ("l2", "decoupled", "decoupled_moving"):
        cfg = base.replace(weight_decay=0.1, weight_decay_mode=mode)
        if (mode in ctx.target.modes() or mode == ctx.base.weight_decay_mode) and not ctx.cannot_tell(cfg):
            configs.append((f"{mode} weight decay", cfg))
            if can_maximize:
                configs.append((f"maximize with {mode} weight decay", cfg.replace(maximize=True)))
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


def _cause(label: str, name: str) -> str:
    if name != "grads":
        return "inputs/input_modified"
    if label == "plain":
        return "inputs/grad_modified"
    if label == "maximize":
        return "inputs/grad_modified_maximize"
    if label.startswith("maximize with"):
        return ""  # reported only when neither option alone explains it
    return "inputs/grad_modified_weight_decay"


@check("side_effects", "Inputs the step must not write are unchanged", "side effects",
       replay=replay_side_effects)
@timed
def side_effects(ctx) -> CheckResult:
    """See the module docstring."""
    from ..causes import CAUSES
    from ..findings import Finding

    if "side_effects" not in ctx.target.features:
        return CheckResult("side_effects", "not supported", "the adapter cannot report a step's inputs")
    cases = side_effect_scenarios(ctx)
    findings, causes_seen, clean = [], set(), []
    for label, scenario in cases:
        try:
            outcome = replay_side_effects(ctx.target, scenario)
        except NotSupported as exc:
            clean.append(f"{label}: not supported ({exc})")
            continue
        if ctx.tick:
            ctx.tick()
        if outcome.verdict != "fail":
            clean.append(label)
            continue
        name = "grads"
        if outcome.mismatch is not None and "input " in outcome.mismatch.message:
            name = outcome.mismatch.message.split("input ", 1)[1].split("[", 1)[0]
        cause = _cause(label, name)
        if cause == "":
            parts = label[len("maximize with "):].split(" ")[0]
            if {"inputs/grad_modified_maximize", "inputs/grad_modified_weight_decay"} & causes_seen:
                continue  # already explained by one of the two options alone
            cause = "inputs/grad_modified"
            label = f"maximize with {parts} weight decay"
        if cause in causes_seen and cause != "inputs/grad_modified_weight_decay":
            continue
        if "inputs/grad_modified" in causes_seen and cause.startswith("inputs/grad_modified"):
            continue  # the plain step already writes into the gradient
        causes_seen.add(cause)
        summary = outcome.mismatch.describe() if outcome.mismatch else (outcome.error or "failed")
        findings.append(Finding(id=f"side_effects/{len(findings) + 1}", check="side_effects", cause=cause,
                                title=f"{label}: {CAUSES[cause].text}", detail=f"side effects: {summary}",
                                scenario=scenario.to_json(), mismatch=outcome.mismatch))
    return result_from_findings(ctx, "side_effects", findings,
                                passed_summary=f"{', '.join(clean)}: inputs unchanged", examples=len(cases))
