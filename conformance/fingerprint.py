"""Fingerprinting: which combination of the spec's axes does a target follow?

The target is run, with the options of the profile it claims, on designed probes
that make each axis visible:

* **branch** — constant gradient (1, −0.5) from θ = 0 for β₂ ∈ {0.999, 0.99,
  0.9, 0.8, 0.7, 0.65}: m̂_t = g exactly, so each step is recognisably an
  SGD-momentum step (−α g), a rectified one (−α r_t g D_t with r_t < 1), or
  none.  The first rectified step for each β₂ brackets the threshold (β₂ = 0.999:
  ρ₅ = 4.996, ρ₆ = 5.994, so threshold 4 rectifies at t = 5 and 5 at t = 6;
  β₂ = 0.65 has ρ∞ = 4.71: threshold 4 rectifies from t = 8, threshold 5 never).
  It also shows the behaviour before rectification and Nesterov momentum.
* **eps** — constant gradient 1e-8 with ε = 1e-8 (β₂ = 0.999): on the rectified
  steps sqrt(1 − β₂ᵗ)/(sqrt(v) + ε) and 1/(sqrt(v/(1 − β₂ᵗ)) + ε) differ by a
  factor of about 5.
* **decay** — λ = 0.1 with zero gradients and with small ones (β₂ = 0.9 and
  0.999): L2 decay makes λθ a gradient (adaptively scaled once rectified),
  decoupled decay shrinks θ by 1 − αλ, on every step or only on moving ones.

Every combination of threshold ∈ {4, 5}, comparison ∈ {>, ≥}, ε placement, the
four weight-decay modes, before-rectification behaviour and Nesterov (128
candidates) is run through the oracle on the same probes; the fingerprint is the
set of candidates that reproduce the target within tolerance, summarised per
axis.  Two things are indistinguishable by construction:

* the comparison, for the thresholds 4 and 5 of every profile: ρ_t is never
  exactly 4 or 5 for a float64 β₂.  Clearing denominators, ρ_t = k reads
  (1+β)(1−βᵗ) − 2tβᵗ(1−β) − k(1−β)(1−βᵗ) = 0, an integer polynomial with leading
  coefficient 2t − 1 − k and constant term 1 − k.  A float β ∈ (0, 1) is p/2ᵉ
  with p odd and e ≥ 1; by the rational root theorem 2ᵉ must divide 2t − 1 − k
  and p must divide k − 1.  For k = 4, 2t − 5 is odd: no root.  For k = 5, p
  divides 4, so p = 1 and β = 2⁻ᵉ ≤ 1/2, where ρ∞ ≤ 3 < 5: no root either.
* "decoupled" vs "decoupled_moving" when every step moves θ (SGD-momentum
  steps before rectification).

``decay_form`` (θ − (αλ)θ vs θ·(1 − αλ)) is not an axis of the fingerprint: the
two differ by one rounding of θ per decayed step (in float32, 1 − αλ carries an
absolute error up to 2⁻²⁵), which the tolerance of :mod:`.tolerance` allows in
every dtype; no check can fail on it, so naming it would be noise.

Precision
---------
The probes above use values exact in float32, so they tell axes apart but not
arithmetic.  :func:`detect_precision` runs two more probes with full-mantissa
values (β₂ = 0.9 and 0.9999, lr and β not representable in float32) and compares
the target, over every axis combination, with the float64 tolerance, then with
the float32 one:

* within the float64 tolerance: full precision;
* within it once lr, β and ε are rounded to float32: "hyperparameters rounded
  to float32";
* every value the target returns is a float32 number, and it is within the
  float32 tolerance: "float64 parameters are updated in float32 arithmetic"
  (``p.data.float()`` … ``p.data.copy_(p_fp32)``);
* within the float32 tolerance but not float32 numbers: "the moments (and so the
  update) are computed in float32";
* within the float32 tolerance at β₂ = 0.9 but not at β₂ = 0.9999, where the step
  scalars cancel: "step scalars computed in float32".

When a precision is found, the fingerprint compares at that precision's
tolerance, and so do the checks (:attr:`~.checks.base.Context.tol_dtype`): the
precision is one finding, and every other deviation still stands out.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from radam_ref import PROFILES, RAdamConfig

from ._dtypes import real_dtype, round_to
from .adapters.base import NotSupported, Target, TargetError
from .compare import judge, normalized_error, observe
from .oracle import exact_schedule, run_oracle
from .scenario import Group, Scenario

__all__ = ["AXES", "Fingerprint", "Precision", "fingerprint", "probes", "detect_precision",
           "precision_probes", "choose_profile"]

#: The axes a fingerprint reports, with their possible values.
AXES = {
    "threshold": (4.0, 5.0),
    "comparison": (">", ">="),
    "eps_placement": ("before_bias_correction", "after_bias_correction"),
    "weight_decay_mode": ("none", "l2", "decoupled", "decoupled_moving"),
    "before_rectification": ("sgd_momentum", "none"),
    "nesterov": (False, True),
}

_BRANCH_BETA2 = (0.999, 0.99, 0.9, 0.8, 0.7, 0.65)


def probes(base: RAdamConfig, dtype: str) -> list:
    """(name, scenario) of the designed probes, told ``base``'s options."""
    out = []
    zero2 = [round_to(np.zeros(2), dtype)]
    for b2 in _BRANCH_BETA2:
        cfg = base.replace(lr=0.5, betas=(0.9, b2), eps=1e-8, weight_decay=0.0, maximize=False)
        g = round_to(np.array([1.0, -0.5]), dtype)
        out.append((f"branch β₂={b2}", Scenario([Group(zero2, cfg)], [[[g]] for _ in range(12)], dtype=dtype)))
    cfg = base.replace(lr=0.5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, maximize=False)
    g = round_to(np.array([1e-8, -1e-8]), dtype)
    out.append(("eps", Scenario([Group(zero2, cfg)], [[[g]] for _ in range(10)], dtype=dtype)))
    p0 = [round_to(np.array([1.0, -2.0]), dtype)]
    for b2 in (0.9, 0.999):
        cfg = base.replace(lr=0.1, betas=(0.9, b2), eps=1e-8, weight_decay=0.1, maximize=False)
        zero = round_to(np.zeros(2), dtype)
        small = round_to(np.array([0.5, -1.0]), dtype)
        out.append((f"decay g=0 β₂={b2}", Scenario([Group(p0, cfg)], [[[zero]] for _ in range(10)], dtype=dtype)))
        out.append((f"decay g≠0 β₂={b2}", Scenario([Group(p0, cfg)], [[[small]] for _ in range(10)], dtype=dtype)))
    return out


@dataclasses.dataclass
class Fingerprint:
    """What the probes say.

    Attributes:
        axes: axis -> the values consistent with the target (empty: none).
        consistent: whether some combination reproduces every probe.
        threshold_interval: (lo, hi): the threshold lies in [lo, hi) by the first
            rectified steps of the branch probes (None if never rectified).
        profiles: named profiles whose axes are all consistent.
        differs_from_paper: axes on which the paper's value is not consistent.
        closest: when nothing is consistent, the candidate closest to the target.
        config: a consistent combination closest to the claimed profile.
        note: why the fingerprint is incomplete, if it is.
        precision: what :func:`detect_precision` found (None: not run).
        tol_dtype: the tolerance the probes were compared at (None: the run's).
        model: defects :func:`choose_profile` found that the checks should look
            past (:func:`~.compare.apply_model`), e.g. weight decay ignored.
    """

    axes: dict
    consistent: bool
    threshold_interval: tuple | None
    profiles: list
    differs_from_paper: list
    closest: dict | None = None
    config: RAdamConfig | None = None
    note: str = ""
    precision: "Precision | None" = None
    tol_dtype: str | None = None
    model: dict = dataclasses.field(default_factory=dict)

    def describe_axis(self, axis: str) -> str:
        values = self.axes.get(axis, ())
        if not values:
            return "?"
        if len(values) == len(AXES[axis]):
            return "either" if axis == "comparison" else "any"
        return " / ".join(_fmt(v) for v in values)

    def summary(self) -> str:
        if not self.consistent:
            head = "no combination of the spec's axes reproduces the probes"
            if self.closest:
                head += "; closest: " + ", ".join(f"{k}={_fmt(v)}" for k, v in self.closest.items())
            return head
        parts = [f"{axis}: {self.describe_axis(axis)}" for axis in AXES]
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "axes": {k: [_jsonable(v) for v in vs] for k, vs in self.axes.items()},
            "consistent": self.consistent,
            "threshold_interval": list(self.threshold_interval) if self.threshold_interval else None,
            "profiles": list(self.profiles),
            "differs_from_paper": list(self.differs_from_paper),
            "closest": {k: _jsonable(v) for k, v in self.closest.items()} if self.closest else None,
            "note": self.note,
            "precision": self.precision.to_json() if self.precision else None,
            "tol_dtype": self.tol_dtype,
        }


def _jsonable(v):
    return v if not isinstance(v, float) or math.isfinite(v) else repr(v)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return {"before_bias_correction": "before bias corr.", "after_bias_correction": "after bias corr.",
            "sgd_momentum": "SGD momentum"}.get(v, str(v))


def _threshold_interval(observed_branch: list) -> tuple | None:
    lo, hi = 0.0, math.inf
    seen = False
    for scenario, observed in observed_branch:
        cfg = scenario.groups[0].config
        g = scenario.grads_at(1)[0][0]
        prev = scenario.groups[0].params[0]
        first = None
        for t, values in zip(observed.steps, observed.values):
            delta = values[0][0] - prev
            prev = values[0][0]
            if not np.allclose(delta, -cfg.lr * g, rtol=1e-3, atol=0.0):
                first = t
                break
        if first is None:
            lo = max(lo, exact_schedule(cfg, observed.steps[-1]).rho_t)
            continue
        if first == 1:
            continue  # moves differently from the first step: not an SGD-momentum phase
        seen = True
        lo = max(lo, exact_schedule(cfg, first - 1).rho_t)
        hi = min(hi, exact_schedule(cfg, first).rho_t)
    return (lo, hi) if seen and lo < hi else None


def candidates() -> list:
    keys = list(AXES)
    return [dict(zip(keys, values)) for values in itertools.product(*AXES.values())]


def fingerprint(target: Target, base: RAdamConfig | None = None, dtype: str | None = None, *,
                precision: bool = True) -> Fingerprint:
    """Probe ``target`` (told ``base``, default its claimed profile) and fingerprint it.

    ``precision``: first run :func:`detect_precision` and compare the probes at the
    tolerance of the precision found (see the module docstring)."""
    base = base or target.claimed_config()
    dtype = dtype or target.default_dtype
    prec = detect_precision(target, base, dtype) if precision else None
    tol_dtype = prec.tol_dtype if prec is not None else None
    model = dict(prec.model) if prec is not None else {}
    fp = _fingerprint(target, base, dtype, tol_dtype, model)
    fp.precision, fp.tol_dtype = prec, tol_dtype
    fp.model.update(model)
    return fp


def _fingerprint(target: Target, base: RAdamConfig, dtype: str, tol_dtype: str | None,
                 model: dict | None = None) -> Fingerprint:
    from .compare import model_oracle_kwargs

    tdt = tol_dtype or dtype
    okw = model_oracle_kwargs(model)
    observed = []
    for name, scenario in probes(base, dtype):
        try:
            observed.append((name, scenario, observe(target, scenario)))
        except (TargetError, NotSupported) as exc:
            return Fingerprint({}, False, None, [], [], note=f"probe {name!r} could not run: {exc}")
    def evaluate(cand, full: bool, which=None):
        ok, err = True, 0.0
        for _, scenario, obs in (observed if which is None else which):
            variant = scenario.with_configs(lambda c, cand=cand: c.replace(**cand))
            e = normalized_error(obs, run_oracle(variant, **okw), tdt)
            err += min(e, 1e300)
            if e > 1.0 and ok:
                ok = judge(target, variant, observed=obs, tol_dtype=tol_dtype, model=model or None).ok
            if not ok and not full:
                break
        return ok, err

    consistent = []
    for cand in candidates():
        if cand["comparison"] != ">":
            continue  # indistinguishable from ">" (see the module docstring): same verdict
        ok, _ = evaluate(cand, full=False)
        if ok:
            consistent += [{**cand, "comparison": c} for c in AXES["comparison"]]
    interval = _threshold_interval([(s, o) for n, s, o in observed if n.startswith("branch")])
    axes = {axis: tuple(v for v in values if any(c[axis] == v for c in consistent)) for axis, values in AXES.items()}
    if not consistent:
        # The probes without weight decay may still pin every other axis: then only the
        # decay is unexplained (e.g. θ(1 − λ) without the learning rate), and the claimed
        # weight-decay mode is the closest; the weight-decay checks name the difference.
        plain = [o for o in observed if not o[0].startswith("decay")]
        partial = [c for c in candidates() if c["comparison"] == ">" and evaluate(c, full=False, which=plain)[0]]
        if partial:
            claimed = {axis: getattr(base, axis) for axis in AXES}
            best = dict(min(partial, key=lambda c: sum(c[a] != claimed[a] for a in AXES if a != "weight_decay_mode")))
            best["weight_decay_mode"] = base.weight_decay_mode
            best.pop("comparison")
            axes = {axis: tuple(v for v in values if any(c[axis] == v for c in partial))
                    for axis, values in AXES.items()}
            axes["comparison"] = AXES["comparison"]
            axes["weight_decay_mode"] = ()
            return Fingerprint(axes, False, interval, [], [], closest=best,
                               note="no weight-decay mode reproduces the decay probes; every other axis is exact")
        scored = [(evaluate(c, full=True)[1], c) for c in candidates() if c["comparison"] == ">"]
        closest = dict(min(scored, key=lambda x: x[0])[1])
        closest.pop("comparison")  # not observable (module docstring)
        return Fingerprint(axes, False, interval, [], [], closest=closest)
    profiles = []
    for name, profile in PROFILES.items():
        pc = profile.config()
        if any(all(c[a] == getattr(pc, a) for a in AXES) for c in consistent):
            profiles.append(name)
    paper = PROFILES["paper"].config()
    differs = [axis for axis in AXES if getattr(paper, axis) not in axes[axis]]
    claimed = {axis: getattr(base, axis) for axis in AXES}
    best = min(consistent, key=lambda c: sum(c[a] != claimed[a] for a in AXES))
    config = base.replace(**best)
    return Fingerprint(axes, True, interval, profiles, differs, config=config)


# --------------------------------------------------------------------------- #
# Precision
# --------------------------------------------------------------------------- #

_PRECISION_LR = 0.0123456789  # not a float32 number
_PRECISION_BETAS = ((0.9, 0.9), (0.9, 0.9999))


def precision_probes(base: RAdamConfig, dtype: str) -> list:
    """(name, scenario): full-mantissa values, β₂ = 0.9 (both branches in 12 steps)
    and β₂ = 0.9999 (the step scalars cancel)."""
    rng = np.random.default_rng(20200408)

    def values(shape):
        return round_to(rng.uniform(0.25, 4.0, shape) * rng.choice([-1.0, 1.0], shape), dtype)

    out = []
    for betas in _PRECISION_BETAS:
        cfg = base.replace(lr=_PRECISION_LR, betas=betas, eps=1e-8, weight_decay=0.0, maximize=False)
        params = [values((3,)), values((2,))]
        grads = [[[values((3,)), values((2,))]] for _ in range(12)]
        out.append((f"precision β₂={betas[1]}", Scenario([Group(params, cfg)], grads, dtype=dtype)))
    return out


@dataclasses.dataclass
class Precision:
    """What :func:`detect_precision` found.

    Attributes:
        causes: cause ids of :mod:`.causes` (``precision/...``), empty for full precision.
        tol_dtype: the dtype whose tolerance the target meets (None: its own).
        detail: how it was established.
        scenario: the probe that shows it (JSON), for the finding's repro.
        model: what the checks should assume to look past it
            (:func:`~.compare.apply_model`): ``{"step_scalars": "float32"}`` when
            the spec with step scalars evaluated in float32
            (:func:`~.diagnose.float32_step_scalars`) reproduces the target.
    """

    causes: list
    tol_dtype: str | None
    detail: str = ""
    scenario: dict | None = None
    model: dict = dataclasses.field(default_factory=dict)

    @property
    def full(self) -> bool:
        return not self.causes

    def describe(self) -> str:
        from .causes import CAUSES

        if not self.causes:
            return "full precision"
        return "; ".join(CAUSES[c].text for c in self.causes)

    def to_json(self) -> dict:
        return {"causes": list(self.causes), "tol_dtype": self.tol_dtype, "detail": self.detail,
                "model": dict(self.model)}


def _round_hyper(c: RAdamConfig) -> RAdamConfig:
    f = lambda x: float(np.float32(x))  # noqa: E731
    return c.replace(lr=f(c.lr), betas=(f(c.beta1), f(c.beta2)), eps=f(c.eps), weight_decay=f(c.weight_decay))


def _best_error(obs, scenario, tdt: str, *, transform=None, schedule_fn=None) -> float:
    """Smallest normalized error of ``obs`` over every axis combination."""
    best = math.inf
    for cand in candidates():
        if cand["comparison"] != ">":
            continue
        variant = scenario.with_configs(lambda c, cand=cand: (transform or (lambda x: x))(c.replace(**cand)))
        try:
            e = normalized_error(obs, run_oracle(variant, schedule_fn=schedule_fn), tdt)
        except (ValueError, ZeroDivisionError, OverflowError):
            continue
        best = min(best, e)
        if best <= 1.0:
            break
    return best


def _float32_numbers(obs, scenario) -> bool:
    """Every value that moved from its initial value is a float32 number (and some moved)."""
    moved = False
    for step in obs.values:
        for group, init_group in zip(step, scenario.groups):
            for arr, init in zip(group, init_group.params):
                a = np.asarray(arr, dtype=np.float64)
                changed = np.isfinite(a) & (a != np.asarray(init, dtype=np.float64))
                vals = a[changed]
                moved |= bool(vals.size)
                if vals.size and not np.array_equal(vals.astype(np.float32).astype(np.float64), vals):
                    return False
    return moved


def detect_precision(target: Target, base: RAdamConfig, dtype: str) -> Precision:
    """The arithmetic precision of ``target`` for ``dtype`` parameters (module docstring)."""
    from .diagnose import float32_step_scalars

    observed = []
    for name, scenario in precision_probes(base, dtype):
        try:
            observed.append((name, scenario, observe(target, scenario)))
        except (TargetError, NotSupported) as exc:
            return Precision([], None, f"probe {name!r} could not run: {exc}")
    (n1, s1, o1), (n2, s2, o2) = observed
    scalars32 = {"step_scalars": "float32"}
    if real_dtype(dtype) != "float64":
        # parameters in their own low precision: only the step scalars can be worse
        own = real_dtype(dtype)
        if _best_error(o2, s2, own) > 1.0 and _best_error(o2, s2, own, schedule_fn=float32_step_scalars) <= 1.0:
            return Precision(["precision/float32_step_scalars"], None,
                             "matches the spec with step scalars evaluated in float32 by the cancelling formula "
                             "(β₂ = 0.9999), not the spec", s2.to_json(), scalars32)
        return Precision([], None, f"{dtype} parameters: checked at their own precision")
    e64 = [_best_error(o, s, "float64") for _, s, o in observed]
    if max(e64) <= 1.0:
        return Precision([], None, "within the float64 tolerance on the precision probes")
    if max(_best_error(o, s, "float64", transform=_round_hyper) for _, s, o in observed) <= 1.0:
        return Precision(["precision/float32_hyperparameters"], "float32",
                         "matches the spec run with lr, β and ε rounded to float32, within the float64 tolerance",
                         s1.to_json())
    e32 = [_best_error(o, s, "float32") for _, s, o in observed]
    f32 = all(_float32_numbers(o, s) for _, s, o in observed)
    if max(e32) <= 1.0:
        if f32:
            return Precision(["precision/float32_update"], "float32",
                             "every value it returns for float64 parameters is a float32 number, and it is "
                             "within the float32 tolerance of the spec", s1.to_json())
        return Precision(["precision/float32_moments"], "float32",
                         "within the float32 tolerance of the spec, not the float64 one", s1.to_json())
    if e32[0] <= 1.0 and e32[1] > 1.0:
        return Precision(["precision/float32_step_scalars"], "float32",
                         f"within the float32 tolerance at β₂ = 0.9 but {e32[1]:.3g}× it at β₂ = 0.9999, "
                         "where 1 − β₂ᵗ and ρ_t cancel", s2.to_json())
    if _best_error(o2, s2, "float32", schedule_fn=float32_step_scalars) <= 1.0:
        return Precision(["precision/float32_step_scalars"], "float32",
                         "matches the spec with step scalars evaluated in float32", s2.to_json(), scalars32)
    return Precision([], None, f"not within the float64 tolerance ({e64[0]:.3g}×, {e64[1]:.3g}×) nor the "
                               f"float32 one ({e32[0]:.3g}×, {e32[1]:.3g}×) of any axis combination")


# --------------------------------------------------------------------------- #
# Which profile to check against
# --------------------------------------------------------------------------- #


def _axes_label(axes: dict) -> str:
    # the comparison (> vs ≥) is not observable at thresholds 4 and 5 (module docstring)
    return (f"threshold {axes['threshold']:g}, ε {_fmt(axes['eps_placement'])}, "
            f"weight decay {axes['weight_decay_mode']}, before rectification {_fmt(axes['before_rectification'])}"
            + (", nesterov" if axes.get("nesterov") else ""))


def choose_profile(target: Target, fp: Fingerprint | None, claimed: RAdamConfig | None = None) -> tuple:
    """The config to check ``target`` against, its label and why: ``(config, label, reason)``.

    * the claimed profile when the fingerprint is consistent with it;
    * else a named profile the fingerprint matches on every axis;
    * else the exact axis combination the fingerprint found;
    * else (nothing reproduces the probes) the closest combination, named loudly
      with the axes that are unexplained.

    A weight decay that had no effect at all although the target was told a
    nonzero λ in its claimed mode is not an axis ("none" means no weight decay is
    offered): the claimed mode is kept, and the weight-decay checks report the
    defect.  Never falls back to the claim silently.
    """
    claimed = claimed or target.claimed_config()
    claimed_name = claimed.profile
    prec = ""
    if fp is not None and fp.precision is not None and fp.precision.causes:
        prec = "; computes in lower precision: " + fp.precision.describe()
    if fp is None:
        return claimed, claimed_name, f"profile: {claimed_name} — claimed (not fingerprinted)"
    if not fp.consistent:
        if fp.closest is None:
            return (claimed, claimed_name,
                    f"profile: {claimed_name} — CLAIMED, NOT VERIFIED: the fingerprint could not run ({fp.note})")
        closest = dict(fp.closest)
        config = claimed.replace(**closest, comparison=_profile_comparison(closest, claimed))
        name = _matching_profile(config, prefer=claimed_name)
        label = f"closest: {name}" if name else "closest: " + _axes_label(closest)
        unexplained = _unexplained_axes(fp)
        return (config.replace(profile=name) if name else config, label,
                f"profile: {label} — NO COMBINATION OF THE SPEC'S AXES REPRODUCES THE PROBES; checked against the "
                f"closest ({_axes_label(closest)}); unexplained: {unexplained}{prec}")
    axes = dict(fp.axes)
    ignored_wd = False
    if axes.get("weight_decay_mode") == ("none",) and claimed.weight_decay_mode != "none":
        axes["weight_decay_mode"] = (claimed.weight_decay_mode,)
        ignored_wd = True
        fp.model = {"weight_decay_ignored": claimed.weight_decay_mode}
    wd_note = (f"; weight decay had no effect when told λ > 0 in mode {claimed.weight_decay_mode!r} "
               "(reported as a finding)") if ignored_wd else ""

    def consistent_with(cfg: RAdamConfig) -> bool:
        return all(getattr(cfg, a) in axes[a] for a in AXES)

    if consistent_with(claimed):
        return (claimed, claimed_name,
                f"profile: {claimed_name} — claimed, and the fingerprint matches it on every axis{wd_note}{prec}")
    named = [name for name, prof in PROFILES.items() if consistent_with(prof.config())]
    if named:
        name = named[0]
        also = f" (also consistent: {', '.join(named[1:])})" if len(named) > 1 else ""
        differs = [a for a in AXES if getattr(claimed, a) not in axes[a] and a != "comparison"]
        return (PROFILES[name].config(), name,
                f"profile: {name} — fingerprint matches {name} on every axis{also}; the claimed {claimed_name} "
                f"differs in {', '.join(differs) or 'nothing observable'}{wd_note}{prec}")
    pick = {a: (getattr(claimed, a) if getattr(claimed, a) in axes[a] else axes[a][0]) for a in AXES}
    config = claimed.replace(**pick)
    label = "axes: " + _axes_label(pick)
    return (config, label,
            f"profile: {label} — no named profile matches; checked against the exact axis combination the "
            f"fingerprint found{wd_note}{prec}")


def _profile_comparison(axes: dict, claimed: RAdamConfig) -> str:
    for prof in PROFILES.values():
        c = prof.config()
        if all(getattr(c, a) == axes[a] for a in axes if a != "comparison"):
            return c.comparison
    return claimed.comparison


def _matching_profile(config: RAdamConfig, prefer: str | None = None) -> str | None:
    names = [n for n, p in PROFILES.items()
             if all(getattr(p.config(), a) == getattr(config, a) for a in AXES if a != "comparison")]
    if prefer in names:
        return prefer
    return names[0] if names else None


def _unexplained_axes(fp: Fingerprint) -> str:
    missing = [a for a in AXES if a != "comparison" and not fp.axes.get(a)]
    if missing:
        return ", ".join(missing) + " (no value of these axes is consistent with every probe)"
    return "every axis has a consistent value on some probes, but no single combination fits all"
