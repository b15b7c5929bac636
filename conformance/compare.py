"""Run a scenario through a target and through the oracle, and judge the difference.

:func:`judge` returns an :class:`Outcome`:

* ``pass``: every recorded value is within the tolerance of :mod:`.tolerance` of
  the oracle's trajectory for the claimed config, NaN exactly where it has NaN;
* ``acceptable``: not so, but the target matches a trajectory the tolerance
  model also allows — the spec with the threshold decision flipped at a step
  whose ρ_t lies in the branch window, or (for the ε = 0 check) the guarded
  0/0 → 0 update where the spec has NaN;
* ``fail``: neither; the :class:`Mismatch` names the first failing step, the
  parameter, the element, expected vs got and the tolerance.

A target that raises on input it claims to support fails too (the exception is
the message); :class:`~.adapters.NotSupported` propagates to the check.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ._dtypes import real_dtype, real_view
from .adapters.base import Target, TargetError
from .oracle import Trajectory, run_oracle
from .scenario import Scenario
from .tolerance import EPS64, ambiguous_steps, tolerance

__all__ = ["Mismatch", "Observed", "Outcome", "observe", "compare", "judge", "normalized_error", "apply_model"]


_MODEL_KEYS = ("weight_decay_ignored", "step_scalars")


def apply_model(scenario: Scenario, model: dict) -> Scenario:
    """``scenario`` as the oracle should see it given defects already reported.

    ``model`` keys: ``"weight_decay_ignored"``: a weight-decay mode in which the
    target ignores λ (the oracle's groups in that mode get λ = 0);
    ``"step_scalars": "float32"``: the step scalars evaluated in float32
    (:func:`model_oracle_kwargs`).
    """
    unknown = set(model) - set(_MODEL_KEYS)
    if unknown:
        raise ValueError(f"unknown model key(s) {sorted(unknown)} (known: {', '.join(_MODEL_KEYS)})")
    mode = model.get("weight_decay_ignored")
    if mode:
        scenario = scenario.with_configs(
            lambda c: c.replace(weight_decay=0.0) if c.weight_decay_mode == mode else c)
    return scenario


def model_oracle_kwargs(model: dict | None) -> dict:
    """The :func:`~.oracle.run_oracle` keywords of ``model`` (see :func:`apply_model`)."""
    if model and model.get("step_scalars") is not None:
        if model["step_scalars"] != "float32":
            raise ValueError(f"model step_scalars must be 'float32', got {model['step_scalars']!r}")
        from .diagnose import float32_step_scalars

        return {"schedule_fn": float32_step_scalars}
    return {}


@dataclasses.dataclass
class Mismatch:
    """The first (earliest step; then the worst element) deviation beyond tolerance."""

    step: int
    group: int
    param: int
    index: tuple
    expected: float
    got: float
    tolerance: float
    message: str = ""

    def where(self) -> str:
        idx = "".join(f"[{i}]" for i in self.index)
        return f"params[{self.group}][{self.param}]{idx}"

    def describe(self) -> str:
        if self.message:
            return f"step {self.step}, {self.where()}: {self.message}"
        return (f"step {self.step}, {self.where()}: expected {self.expected!r}, got {self.got!r} "
                f"(|diff| = {abs(self.got - self.expected):.3g} > tolerance {self.tolerance:.3g})")

    def to_json(self) -> dict:
        return {
            "step": self.step, "group": self.group, "param": self.param, "index": list(self.index),
            "expected": _jsonable(self.expected), "got": _jsonable(self.got),
            "tolerance": _jsonable(self.tolerance), "message": self.message,
        }


def _jsonable(x):
    x = float(x)
    return x if math.isfinite(x) else repr(x)


@dataclasses.dataclass
class Observed:
    steps: list
    values: list
    dtypes: list | None = None


@dataclasses.dataclass
class Outcome:
    verdict: str
    mismatch: Mismatch | None = None
    notes: list = dataclasses.field(default_factory=list)
    observed: Observed | None = None
    expected: Trajectory | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict in ("pass", "acceptable")

    def detail_lines(self) -> list[str]:
        """The mismatch, the error and the notes, one line each (for a replay's printout)."""
        lines = [self.mismatch.describe()] if self.mismatch is not None else []
        if self.error:
            lines.append(self.error)
        return lines + [str(note) for note in self.notes]


def _real(values) -> list:
    return [[real_view(np.asarray(p)) for p in group] for group in values]


def observe(target: Target, scenario: Scenario) -> Observed:
    """Run ``scenario`` through ``target``; raises TargetError / NotSupported."""
    session = target.open(scenario.groups, scenario.dtype)
    try:
        if not scenario.added and scenario.record_every > 1:
            values = session.run_stream(scenario.grads_at, scenario.steps, scenario.recorded)
            steps = [t for t in range(1, scenario.steps + 1) if scenario.recorded(t)]
        else:
            steps, values = [], []
            for t in range(1, scenario.steps + 1):
                if t in scenario.added:
                    session.add_group(scenario.added[t])
                session.step(scenario.grads_at(t))
                if scenario.recorded(t):
                    steps.append(t)
                    values.append(session.params())
        dtypes = session.param_dtypes()
    finally:
        session.close()
    return Observed(steps, [_real(v) for v in values], dtypes)


def _element_compare(got: np.ndarray, exp: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Boolean array: element agrees (NaN ⇔ NaN, inf ⇔ same inf, else within tol)."""
    with np.errstate(invalid="ignore"):
        exp_nan = np.isnan(exp)
        got_nan = np.isnan(got)
        exp_inf = np.isinf(exp)
        finite_ok = np.abs(got - exp) <= tol
        ok = np.where(exp_nan, got_nan, np.where(exp_inf, got == exp, ~got_nan & finite_ok))
    return ok


def normalized_error(observed: Observed, expected: Trajectory, dtype: str) -> float:
    """max |got − expected| / tolerance over everything recorded (inf for NaN mismatches).

    ``dtype`` names the tolerance (:func:`~.tolerance.tolerance`): the run's dtype,
    or the precision a target was found to compute in (see :mod:`.fingerprint`)."""
    worst = 0.0
    for got_step, exp_step, scale_step in zip(observed.values, expected.values, expected.scales):
        for got_g, exp_g, sc_g in zip(got_step, exp_step, scale_step):
            for got, exp, sc in zip(got_g, exp_g, sc_g):
                if got.shape != exp.shape:
                    return math.inf
                tol = tolerance(sc, dtype)
                ok = _element_compare(got, exp, tol)
                if not ok.all():
                    with np.errstate(invalid="ignore", divide="ignore"):
                        ratio = np.abs(got - exp) / tol
                    ratio = np.where(ok, 0.0, np.where(np.isnan(ratio), np.inf, ratio))
                    worst = max(worst, float(np.max(ratio)))
    return worst


def compare(observed: Observed, expected: Trajectory, dtype: str, *, alternatives=(),
            tol_dtype: str | None = None, scalar_eps: float = EPS64) -> tuple:
    """First mismatch of ``observed`` against ``expected`` (element-wise, an element
    may instead match the same element of any trajectory in ``alternatives``).

    ``tol_dtype``: judge with the tolerance of this dtype instead of ``dtype``'s
    (a target found to compute float64 parameters in float32 is compared at the
    float32 tolerance, so that its other deviations stand out).

    Returns ``(mismatch or None, used_alternative: bool)``.
    """
    used_alt = False
    tdt = tol_dtype or dtype
    if observed.dtypes is not None:
        want = real_dtype(dtype) if dtype.startswith("complex") else dtype
        for gi, group in enumerate(observed.dtypes):
            for pi, got_dtype in enumerate(group):
                if got_dtype not in (dtype, want):
                    return Mismatch(observed.steps[0] if observed.steps else 0, gi, pi, (), math.nan,
                                    math.nan, 0.0, f"parameter dtype is {got_dtype}, expected {dtype}"), False
    for k, (t, got_step) in enumerate(zip(observed.steps, observed.values)):
        exp_step, sc_step = expected.values[k], expected.scales[k]
        alts = [(a.values[k], a.scales[k]) for a in alternatives]
        worst = None
        for gi, (got_g, exp_g, sc_g) in enumerate(zip(got_step, exp_step, sc_step)):
            if len(got_g) != len(exp_g):
                return Mismatch(t, gi, 0, (), math.nan, math.nan, 0.0,
                                f"group has {len(got_g)} parameters, expected {len(exp_g)}"), used_alt
            for pi, (got, exp, sc) in enumerate(zip(got_g, exp_g, sc_g)):
                if got.shape != exp.shape:
                    return Mismatch(t, gi, pi, (), math.nan, math.nan, 0.0,
                                    f"shape {got.shape}, expected {exp.shape}"), used_alt
                tol = tolerance(sc, tdt, scalar_eps)
                ok = _element_compare(got, exp, tol)
                if not ok.all() and alts:
                    for alt_values, alt_scales in alts:
                        alt_ok = _element_compare(got, alt_values[gi][pi], tolerance(alt_scales[gi][pi], tdt, scalar_eps))
                        if (alt_ok & ~ok).any():
                            used_alt = True
                        ok = ok | alt_ok
                if ok.all():
                    continue
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio = np.abs(got - exp) / tol
                ratio = np.where(ok, -1.0, np.where(np.isnan(ratio), np.inf, ratio))
                flat = int(np.argmax(ratio))
                index = np.unravel_index(flat, got.shape) if got.shape else ()
                r = float(ratio.reshape(-1)[flat])
                if worst is None or r > worst[0]:
                    g_val = float(got.reshape(-1)[flat]) if got.size else math.nan
                    e_val = float(exp.reshape(-1)[flat]) if exp.size else math.nan
                    message = ""
                    if math.isnan(e_val) and not math.isnan(g_val):
                        message = f"expected NaN (IEEE result of the spec), got {g_val!r}"
                    elif math.isnan(g_val) and not math.isnan(e_val):
                        message = f"expected {e_val!r}, got NaN"
                    worst = (r, Mismatch(t, gi, pi, tuple(int(i) for i in index), e_val, g_val,
                                         float(tol.reshape(-1)[flat]), message))
        if worst is not None:
            return worst[1], used_alt
    return None, used_alt


def _flip_sets(scenario: Scenario, tol_dtype: str | None = None, scalar_eps: float = EPS64) -> list:
    pairs = []
    for gi, group in enumerate(scenario.all_groups()):
        for t in ambiguous_steps(group.config, tol_dtype or scenario.dtype, scenario.steps, scalar_eps):
            pairs.append((gi, t))
    pairs = pairs[:4]
    out = []
    for r in range(1, len(pairs) + 1):
        out.extend(frozenset(c) for c in itertools.combinations(pairs, r))
    return out


def judge(target: Target, scenario: Scenario, *, guarded_nan: bool = False,
          observed: Observed | None = None, tol_dtype: str | None = None,
          oracle_kwargs: dict | None = None, model: dict | None = None) -> Outcome:
    """Run ``scenario`` on ``target`` (unless ``observed`` is given) and judge it.

    ``guarded_nan``: where the oracle has NaN, also accept the value of the spec
    run with ε = 1e-300 (a guarded 0/0 → 0 update), with verdict "acceptable".
    ``tol_dtype``: the tolerance's dtype (default: the scenario's), see :func:`compare`.
    ``oracle_kwargs``: passed to :func:`~.oracle.run_oracle` (a modelled defect, for
    the suite's diagnosis only).
    ``model``: defects already found and reported elsewhere, applied to the oracle's
    configs so that a check looks past them (:func:`apply_model`); JSON-able, so a
    replay reproduces it.
    """
    okw = {**model_oracle_kwargs(model), **(oracle_kwargs or {})}
    scalar_eps = 2.0**-23 if model and model.get("step_scalars") == "float32" else EPS64
    if observed is None:
        try:
            observed = observe(target, scenario)
        except TargetError as exc:
            return Outcome("fail", error=str(exc))
    if model:
        scenario = apply_model(scenario, model)
    expected = run_oracle(scenario, **okw)
    if len(observed.steps) != len(expected.steps):
        return Outcome("fail", observed=observed, expected=expected,
                       error=f"target recorded {len(observed.steps)} steps, expected {len(expected.steps)}")
    alternatives = []
    if guarded_nan:
        guarded = scenario.with_configs(lambda c: c.replace(eps=1e-300) if c.eps == 0.0 else c)
        alternatives.append(run_oracle(guarded, **okw))
    mismatch, used_alt = compare(observed, expected, scenario.dtype, alternatives=alternatives,
                                 tol_dtype=tol_dtype, scalar_eps=scalar_eps)
    if mismatch is None:
        notes = ["matched the guarded 0/0 → 0 update where the spec has NaN"] if used_alt else []
        return Outcome("acceptable" if used_alt else "pass", None, notes, observed, expected)
    for flips in _flip_sets(scenario, tol_dtype, scalar_eps):
        alt = run_oracle(scenario, flips=flips, **okw)
        alt_alternatives = alternatives
        alt_mismatch, alt_used = compare(observed, alt, scenario.dtype, alternatives=alt_alternatives,
                                         tol_dtype=tol_dtype, scalar_eps=scalar_eps)
        if alt_mismatch is None:
            where = ", ".join(f"group {g} step {t}" for g, t in sorted(flips))
            return Outcome("acceptable", None,
                           [f"threshold decision flipped at {where} (ρ_t within the branch window)"],
                           observed, alt)
    return Outcome("fail", mismatch, [], observed, expected)
