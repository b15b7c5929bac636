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
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from radam_ref import PROFILES, RAdamConfig

from ._dtypes import round_to
from .adapters.base import NotSupported, Target, TargetError
from .compare import judge, normalized_error, observe
from .oracle import exact_schedule, run_oracle
from .scenario import Group, Scenario

__all__ = ["AXES", "Fingerprint", "fingerprint", "probes"]

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
    """

    axes: dict
    consistent: bool
    threshold_interval: tuple | None
    profiles: list
    differs_from_paper: list
    closest: dict | None = None
    config: RAdamConfig | None = None
    note: str = ""

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


def fingerprint(target: Target, base: RAdamConfig | None = None, dtype: str | None = None) -> Fingerprint:
    """Probe ``target`` (told ``base``, default its claimed profile) and fingerprint it."""
    base = base or target.claimed_config()
    dtype = dtype or target.default_dtype
    observed = []
    for name, scenario in probes(base, dtype):
        try:
            observed.append((name, scenario, observe(target, scenario)))
        except (TargetError, NotSupported) as exc:
            return Fingerprint({}, False, None, [], [], note=f"probe {name!r} could not run: {exc}")
    def evaluate(cand, full: bool):
        ok, err = True, 0.0
        for _, scenario, obs in observed:
            variant = scenario.with_configs(lambda c, cand=cand: c.replace(**cand))
            e = normalized_error(obs, run_oracle(variant), dtype)
            err += min(e, 1e300)
            if e > 1.0 and ok:
                ok = judge(target, variant, observed=obs).ok
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
    config = base.replace(**best, profile="auto")
    return Fingerprint(axes, True, interval, profiles, differs, config=config)
