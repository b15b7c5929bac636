"""Which axis most likely explains a deviation.

Given a failing scenario and what the target produced, :func:`diagnose` re-runs
the oracle with one thing changed at a time — each axis of the spec set to its
other values, plus a few modelled defects (step scalars in float32, a step
counter off by one, a missing bias correction, swapped betas) — and reports the
change that brings the oracle closest to the target.  When a variant matches
within tolerance the diagnosis is certain ("the target behaves exactly like the
spec with ε after bias correction"); otherwise it is the closest, and says so.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from radam_ref import RAdamConfig, StepSchedule

from .compare import Observed, normalized_error
from .oracle import exact_schedule
from .oracle import run_oracle
from .scenario import Scenario

__all__ = ["Diagnosis", "diagnose", "float32_step_scalars"]


@dataclasses.dataclass
class Diagnosis:
    axis: str
    detail: str
    exact: bool
    error_ratio: float
    nominal: float = math.inf

    def describe(self) -> str:
        if self.exact:
            return f"{self.axis}: the target matches the spec with {self.detail}"
        if self.detail.startswith("no "):
            return f"{self.axis} ({self.detail})"
        return (f"{self.axis}: closest is the spec with {self.detail} "
                f"({self.error_ratio:.3g}× tolerance off, against {self.nominal:.3g}× for the claimed config)")


def _pow_f32(base, t: int):
    """base**t in float32 by square-and-multiply (as XLA's integer power does)."""
    f = np.float32
    result, b = f(1.0), f(base)
    while t:
        if t & 1:
            result = f(result * b)
        b = f(b * b)
        t >>= 1
    return result


def float32_step_scalars(config: RAdamConfig, t: int) -> StepSchedule:
    """Model of step scalars evaluated in float32 by the obvious formulas, with β
    rounded to float32 and ρ∞ from the exact β (what optax does without x64)."""
    f = np.float32
    with np.errstate(all="ignore"):
        rho_inf = 2.0 / (1.0 - config.beta2) - 1.0
        ri = f(rho_inf)
        b2t = _pow_f32(config.beta2, t)
        bc2 = f(1.0) - b2t
        rho = ri - f(2.0 * t) * b2t / bc2
        bc1 = f(1.0) - _pow_f32(config.beta1, t)
        thr = f(config.threshold)
        rectified = bool(rho > thr) if config.comparison == ">" else bool(rho >= thr)
        r = None
        if rectified:
            # (ρ∞ − 4)(ρ∞ − 2) is a host constant in float64, then used in float32.
            const = f((rho_inf - 4.0) * (rho_inf - 2.0))
            r = float(np.sqrt((rho - f(4)) * (rho - f(2)) * ri / (const * rho)))
    return StepSchedule(t, float(rho_inf), float(rho), rectified, r, float(bc1), float(bc2))


def _shifted(config: RAdamConfig, t: int) -> StepSchedule:
    return dataclasses.replace(exact_schedule(config, t + 1), t=t)


def _no_bc1(config: RAdamConfig, t: int) -> StepSchedule:
    return dataclasses.replace(exact_schedule(config, t), bias_correction1=1.0)


def _no_bc2(config: RAdamConfig, t: int) -> StepSchedule:
    return dataclasses.replace(exact_schedule(config, t), bias_correction2=1.0)


def _config_variants(c: RAdamConfig):
    """(axis, detail, config transform) for every single-axis change of ``c``."""
    out = []
    for thr, cmp in ((4.0, ">"), (5.0, ">"), (5.0, ">=")):
        if (thr, cmp) != (c.threshold, c.comparison):
            out.append(("threshold", f"threshold ρ_t {cmp} {thr:g}",
                        lambda x, thr=thr, cmp=cmp: x.replace(threshold=thr, comparison=cmp)))
    other = "after_bias_correction" if c.eps_placement == "before_bias_correction" else "before_bias_correction"
    out.append(("eps placement", f"ε {other.replace('_', ' ')}", lambda x: x.replace(eps_placement=other)))
    if c.eps and not c.eps_root:
        out.append(("eps placement", "ε inside the square root (sqrt(v + ε))",
                    lambda x: x.replace(eps_root=x.eps, eps=0.0)))
    for mode in ("none", "l2", "decoupled", "decoupled_moving"):
        if mode != c.weight_decay_mode:
            out.append(("weight decay", f"weight decay mode {mode!r}",
                        lambda x, mode=mode: x.replace(weight_decay_mode=mode)))
    other_br = "none" if c.before_rectification == "sgd_momentum" else "sgd_momentum"
    out.append(("before rectification",
                "no update before rectification" if other_br == "none" else "SGD-momentum steps before rectification",
                lambda x: x.replace(before_rectification=other_br)))
    out.append(("nesterov", f"nesterov={not c.nesterov}", lambda x: x.replace(nesterov=not x.nesterov)))
    out.append(("maximize", f"maximize={not c.maximize}", lambda x: x.replace(maximize=not x.maximize)))
    if c.beta1 != c.beta2:
        out.append(("hyperparameters", "β₁ and β₂ swapped",
                    lambda x: x.replace(betas=(x.beta2, x.beta1))))
    return out


_SCHEDULE_VARIANTS = (
    ("step-scalar arithmetic", "step scalars computed in float32 (β rounded to float32)", float32_step_scalars),
    ("step counter", "the step counter one ahead (t + 1)", _shifted),
    ("bias correction", "no bias correction of m (1 − β₁ᵗ taken as 1)", _no_bc1),
    ("bias correction", "no bias correction of v (1 − β₂ᵗ taken as 1)", _no_bc2),
)


def diagnose(scenario: Scenario, observed: Observed, *, fallback: str, upto: int | None = None) -> Diagnosis:
    """The single change to the claimed configs that best explains ``observed``.

    ``upto``: only the steps up to this one are compared (the first failing step:
    what happens after a first deviation says little more, and long scenarios
    stay cheap).
    """
    if observed is None or not observed.values:
        return Diagnosis(fallback, "no recorded values to compare", False, math.inf)
    if upto is not None and upto < scenario.steps:
        keep = [k for k, t in enumerate(observed.steps) if t <= upto]
        scenario = scenario.truncated(upto)
        observed = Observed([observed.steps[k] for k in keep], [observed.values[k] for k in keep],
                            observed.dtypes)
    base = scenario.all_groups()[0].config
    candidates = []
    for axis, detail, transform in _config_variants(base):
        try:
            variant = scenario.with_configs(transform)
        except (ValueError, TypeError):
            continue
        candidates.append((axis, detail, variant, None))
    for axis, detail, fn in _SCHEDULE_VARIANTS:
        candidates.append((axis, detail, scenario, fn))
    best = None
    for axis, detail, variant, fn in candidates:
        try:
            traj = run_oracle(variant, schedule_fn=fn)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        if len(traj.steps) != len(observed.steps):
            continue
        err = normalized_error(observed, traj, scenario.dtype)
        if best is None or err < best[0]:
            best = (err, axis, detail)
    nominal = normalized_error(observed, run_oracle(scenario), scenario.dtype)
    if best is None:
        return Diagnosis(fallback, "no single-axis change of the spec reproduces it", False, nominal, nominal)
    err, axis, detail = best
    if err <= 1.0:
        return Diagnosis(axis, detail, True, err, nominal)
    if err < 0.25 * nominal:
        return Diagnosis(axis, detail, False, err, nominal)
    return Diagnosis(fallback, "no single-axis change of the spec reproduces it", False, nominal, nominal)
