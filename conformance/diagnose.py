"""Which change to the spec explains a deviation, and its cause.

Given a failing scenario and what the target produced, :func:`diagnose` re-runs
the oracle with one thing changed at a time — each axis of the spec set to its
other values, weight decay ignored, precision defects (hyperparameters or step
scalars in float32), the one-term formula changes of :mod:`.formulas`, and the
parameter-group defects of :data:`~.oracle.GROUP_MODELS` — and reports the change
that brings the oracle closest to the target.  When a variant matches within
tolerance the diagnosis is certain and carries its cause id (:mod:`.causes`);
otherwise it is the closest, says so, and the cause stays "unexplained".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from radam_ref import RAdamConfig, StepSchedule

from .compare import Observed, normalized_error
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
    cause: str = "unexplained"
    transform: object = None  # the config change that reproduces the target (axis causes only)
    also: list = dataclasses.field(default_factory=list)  # other causes that reproduce it exactly too

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



def _config_variants(c: RAdamConfig):
    """(axis, detail, config transform, cause id) for every single-axis change of ``c``."""
    out = []
    for thr, cmp in ((4.0, ">"), (5.0, ">"), (5.0, ">=")):
        if (thr, cmp) != (c.threshold, c.comparison):
            out.append(("threshold", f"threshold ρ_t {cmp} {thr:g}",
                        lambda x, thr=thr, cmp=cmp: x.replace(threshold=thr, comparison=cmp), "axis/threshold"))
    other = "after_bias_correction" if c.eps_placement == "before_bias_correction" else "before_bias_correction"
    out.append(("eps placement", f"ε {other.replace('_', ' ')}", lambda x: x.replace(eps_placement=other),
                "axis/eps_placement"))
    if c.eps and not c.eps_root:
        for where in ("before_bias_correction", "after_bias_correction"):
            inside = "sqrt(v + ε)" if where == "before_bias_correction" else "sqrt(v/(1 − β₂ᵗ) + ε)"
            out.append(("eps placement", f"ε inside the square root ({inside})",
                        lambda x, where=where: x.replace(eps_root=x.eps, eps=0.0, eps_placement=where),
                        "axis/eps_root"))
    if c.weight_decay and c.weight_decay_mode != "none":
        out.append(("weight decay", f"weight decay ignored (λ taken as 0 in mode {c.weight_decay_mode!r})",
                    lambda x: x.replace(weight_decay=0.0), "weight_decay/ignored"))
    for mode in ("l2", "decoupled", "decoupled_moving"):
        if mode != c.weight_decay_mode:
            out.append(("weight decay", f"weight decay mode {mode!r}",
                        lambda x, mode=mode: x.replace(weight_decay_mode=mode), "axis/weight_decay_mode"))
    other_br = "none" if c.before_rectification == "sgd_momentum" else "sgd_momentum"
    out.append(("before rectification",
                "no update before rectification" if other_br == "none" else "SGD-momentum steps before rectification",
                lambda x: x.replace(before_rectification=other_br), "axis/before_rectification"))
    out.append(("nesterov", f"nesterov={not c.nesterov}", lambda x: x.replace(nesterov=not x.nesterov),
                "axis/nesterov"))
    out.append(("maximize", f"maximize={not c.maximize}", lambda x: x.replace(maximize=not x.maximize),
                "axis/maximize"))
    if c.eps == 0.0:
        out.append(("eps", "ε = 1e-8 where it was told ε = 0", lambda x: x.replace(eps=1e-8) if x.eps == 0.0 else x,
                    "eps/substituted"))
    if c.beta1 != c.beta2:
        out.append(("hyperparameters", "β₁ and β₂ swapped",
                    lambda x: x.replace(betas=(x.beta2, x.beta1)), "formula/betas_swapped"))
    return out


def _has_none(scenario: Scenario) -> bool:
    if not isinstance(scenario.grads, list):
        return False
    return any(g is None for step in scenario.grads[: scenario.steps] for group in step for g in group)


def _group_variants(scenario: Scenario):
    """(axis, detail, group model, cause id) for the modelled parameter-group defects."""
    several = len(scenario.all_groups()) >= 2
    out = []
    if several or _has_none(scenario):
        out.append(("step counter", "one step counter per group (a parameter without a gradient still counts "
                    "the step)", ("step_per_group",), "groups/step_per_group"))
    if several:
        # An added group sharing the first group's cache is the "added group" cause;
        # constructor groups sharing it are the "shared cache" cause.
        for fields, what in ((("lr", "betas"), "lr and β"), (("betas",), "β")):
            out.append(("param groups", f"step scalars (with {what} baked in) cached per step number and shared "
                        "across groups", ("shared_cache", fields), "groups/shared_cache"))
        for field in ("lr", "betas", "eps", "weight_decay"):
            out.append(("param groups", f"every group stepping with the first group's {field}",
                        ("first_group", field), "groups/hyperparameter_ignored"))
    return out


def _saturating(limit: int):
    from .oracle import exact_schedule

    def fn(config: RAdamConfig, t: int) -> StepSchedule:
        return dataclasses.replace(exact_schedule(config, min(t, limit)), t=t)

    return fn


def _grad_variants(scenario: Scenario):
    """None gradients stepped as zeros; all-zero gradients skipped as None."""
    if not isinstance(scenario.grads, list):
        return []
    out = []
    if _has_none(scenario):
        grads = [[[np.zeros_like(p) if g is None else g for g, p in zip(group, grp.params)]
                  for group, grp in zip(step, scenario.all_groups())] for step in scenario.grads]
        out.append(("gradients", "a None gradient stepped as zeros", scenario.replace(grads=grads),
                    "gradients/none_not_skipped"))
    zero = any(g is not None and not np.any(g) for step in scenario.grads for group in step for g in group)
    if zero:
        grads = [[[None if g is not None and not np.any(g) else g for g in group] for group in step]
                 for step in scenario.grads]
        out.append(("gradients", "an all-zero gradient skipped like a None one", scenario.replace(grads=grads),
                    "gradients/zero_skipped"))
    return out


def _float32_hyper(c: RAdamConfig) -> RAdamConfig:
    f = lambda x: float(np.float32(x))  # noqa: E731
    return c.replace(lr=f(c.lr), betas=(f(c.beta1), f(c.beta2)), eps=f(c.eps), weight_decay=f(c.weight_decay))


def _shared_cache_cause(scenario: Scenario, observed: Observed, model, tdt: str) -> str:
    """"groups/added_group_shares_state" when the shared-cache model is needed only for
    groups added after construction (the constructor's groups follow the spec)."""
    if not scenario.added:
        return "groups/shared_cache"
    n0 = len(scenario.groups)
    traj = run_oracle(scenario)
    for got_step, exp_step, sc_step in zip(observed.values, traj.values, traj.scales):
        for gi in range(min(n0, len(got_step))):
            for got, exp, sc in zip(got_step[gi], exp_step[gi], sc_step[gi]):
                from .tolerance import tolerance

                with np.errstate(invalid="ignore"):
                    if np.any(np.abs(got - exp) > tolerance(sc, tdt)):
                        return "groups/shared_cache"
    return "groups/added_group_shares_state"


def _disambiguate(best, also, candidates, truncated, full, tdt):
    """Among the candidates exact up to the first failing step (``best`` and the causes in
    ``also``), the ones also exact on the whole scenario ``full``; ``(best, also)`` again."""
    scenario, observed = full
    tied = [best[3], *also]
    exact, seen = [], set()
    for axis, detail, variant, kw, cause, transform in candidates:
        if cause not in tied or cause in seen or (transform is None and variant is not truncated):
            continue  # a variant built from the truncated scenario alone cannot be extended
        seen.add(cause)
        try:
            traj = run_oracle(scenario.with_configs(transform) if transform is not None else scenario, **kw)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        if len(traj.steps) != len(observed.steps):
            continue
        err = normalized_error(observed, traj, tdt)
        if err <= 1.0:
            exact.append((err, axis, detail, cause, kw, transform))
    if not exact:
        return best, also  # the later steps fit none of them: keep the first answer
    return exact[0], [entry[3] for entry in exact[1:]]


def diagnose(scenario: Scenario, observed: Observed, *, fallback: str, upto: int | None = None,
             tol_dtype: str | None = None) -> Diagnosis:
    """The single change to the claimed configs that best explains ``observed``.

    Tried, each alone: every single-axis change of the spec; weight decay ignored;
    hyperparameters rounded to float32; step scalars in float32; every one-term
    formula change of :mod:`.formulas`; and, for several groups or ``None``
    gradients, the group defects of :data:`~.oracle.GROUP_MODELS`.  ``upto``:
    only the steps up to this one are compared (the first failing step: what
    happens after a first deviation says little more, and long scenarios stay
    cheap).  ``tol_dtype``: the tolerance to judge at (the target's detected
    precision).
    """
    from .causes import CAUSES
    from .formulas import FORMULA_VARIANTS

    tdt = tol_dtype or scenario.dtype
    if observed is None or not observed.values:
        return Diagnosis(fallback, "no recorded values to compare", False, math.inf)
    if upto is not None and upto < scenario.steps:
        keep = [k for k, t in enumerate(observed.steps) if t <= upto]
        scenario = scenario.truncated(upto)
        observed = Observed([observed.steps[k] for k in keep], [observed.values[k] for k in keep],
                            observed.dtypes)
    full = (scenario, observed)
    base = scenario.all_groups()[0].config
    candidates = []  # (axis, detail, scenario, oracle kwargs, cause, transform); first exact match wins
    for axis, detail, transform, cause in _config_variants(base):
        try:
            variant = scenario.with_configs(transform)
        except (ValueError, TypeError):
            continue
        candidates.append((axis, detail, variant, {}, cause, transform))

    candidates.append(("precision", "hyperparameters rounded to float32", scenario.with_configs(_float32_hyper), {},
                       "precision/float32_hyperparameters", None))
    candidates.append(("step-scalar arithmetic", "step scalars computed in float32 (β rounded to float32)", scenario,
                       {"schedule_fn": float32_step_scalars}, "precision/float32_step_scalars", None))
    for limit, kind in ((2048, "float16"), (256, "bfloat16")):
        if scenario.steps > limit:
            candidates.append(("step counter", f"a step counter that stops at {limit} ({kind})", scenario,
                               {"schedule_fn": _saturating(limit)}, "state/step_counter", None))
    for v in FORMULA_VARIANTS:
        kw = {"schedule_fn": v.schedule_fn} if v.schedule_fn else {"update_fn": v.update_fn}
        axis = {"formula/step_ahead": "step counter", "formula/step_behind": "step counter",
                "formula/no_bias_correction_m": "bias correction",
                "formula/no_bias_correction_v": "bias correction"}.get(v.cause, "update formula")
        candidates.append((axis, CAUSES[v.cause].text, scenario, kw, v.cause, None))
    for axis, detail, model, cause in _group_variants(scenario):
        candidates.append((axis, detail, scenario, {"group_model": model}, cause, None))
    for axis, detail, variant, cause in _grad_variants(scenario):
        candidates.append((axis, detail, variant, {}, cause, None))
    best, also = None, []
    for axis, detail, variant, kw, cause, transform in candidates:
        try:
            traj = run_oracle(variant, **kw)
        except (ValueError, ZeroDivisionError, OverflowError, TypeError):
            continue
        if len(traj.steps) != len(observed.steps):
            continue
        err = normalized_error(observed, traj, tdt)
        if best is not None and best[0] <= 1.0:
            if err <= 1.0 and cause != best[3] and cause not in also:
                also.append(cause)  # another exact explanation: this scenario cannot tell them apart
            continue
        if best is None or err < best[0]:
            best = (err, axis, detail, cause, kw, transform)
    nominal = normalized_error(observed, run_oracle(scenario), tdt)
    if best is None:
        return Diagnosis(fallback, "no single-axis change of the spec reproduces it", False, nominal, nominal)
    err, axis, detail, cause, kw, transform = best
    if err <= 1.0 and also and full[0] is not scenario:
        # Several exact explanations up to the first failing step (e.g. m without bias
        # correction in every step vs in SGD steps only, when no step was rectified yet):
        # the steps after it, when the scenario has them, tell them apart.
        best, also = _disambiguate(best, also, candidates, scenario, full, tdt)
        err, axis, detail, cause, kw, transform = best
    if err <= 1.0:
        if cause == "groups/shared_cache":
            cause = _shared_cache_cause(scenario, observed, kw.get("group_model"), tdt)
        return Diagnosis(axis, detail, True, err, nominal, cause, transform, also)
    if err < 0.25 * nominal:
        return Diagnosis(axis, detail, False, err, nominal)
    return Diagnosis(fallback, "no single-axis change of the spec reproduces it", False, nominal, nominal)
