"""What a check is, what it returns, and how a failure is written up.

A check is a function ``run(ctx) -> CheckResult`` registered under a name with
:func:`check`.  It builds scenarios, runs them through the target and the oracle
(:func:`~radam_ref.conformance.compare.judge`), and reports one verdict:

``pass``           everything within tolerance of the claimed profile;
``acceptable``     within what the tolerance model allows but not the nominal
                   trajectory (threshold branch flipped inside the window,
                   guarded 0/0 under ε = 0);
``fail``           a deviation beyond tolerance, with the first failing step,
                   parameter, element, expected vs got, the axis most likely
                   responsible and a copy-pasteable repro;
``not supported``  the target lacks the feature, dtype or option (never a crash);
``error``          the suite itself broke (a bug to report, not a verdict).

Each check also registers a ``replay(target, scenario, **extra) -> Outcome`` so the
repro of any failure re-runs exactly that scenario.

A failing result carries its :class:`~..findings.Finding` list: one per distinct
deviation, each with a cause from :mod:`..causes` (or "unexplained") and its own
minimal scenario, replayable with ``replay(target, check=f.check,
scenario=f.scenario, extra=f.extra)``.  The single ``mismatch``/``axis``/``repro``
/``scenario`` fields mirror the first finding.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

from radam_ref import RAdamConfig

from ..adapters.base import HYPERPARAMETERS, Target
from ..compare import Mismatch, Outcome, judge
from ..diagnose import diagnose
from ..findings import Finding
from ..scenario import Scenario

__all__ = ["Check", "CheckResult", "Context", "CHECKS", "check", "fail_result", "render_repro", "VERDICTS",
           "unsupported_reason", "make_finding", "result_from_findings"]

VERDICTS = ("pass", "acceptable", "fail", "not supported", "error")


@dataclasses.dataclass
class Check:
    name: str
    title: str
    axis: str
    run: Callable
    replay: Callable
    doc: str


#: Every registered check, by name, in report order.
CHECKS: dict[str, Check] = {}


def _default_replay(target: Target, scenario: Scenario, **extra) -> Outcome:
    return judge(target, scenario, **extra)


def check(name: str, title: str, axis: str, replay: Callable | None = None):
    """Register ``run(ctx) -> CheckResult`` as check ``name``."""

    def register(fn):
        CHECKS[name] = Check(name, title, axis, fn, replay or _default_replay, (fn.__doc__ or "").strip())
        return fn

    return register


@dataclasses.dataclass
class CheckResult:
    check: str
    verdict: str
    summary: str = ""
    mismatch: Mismatch | None = None
    axis: str | None = None
    repro: str | None = None
    notes: list = dataclasses.field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0
    scenario: dict | None = None
    findings: list = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        # A failing result always carries at least one finding; the first mirrors
        # the single mismatch/repro/scenario/axis fields older code reads.
        if self.verdict == "fail" and not self.findings:
            from ..causes import cause_from_axis

            self.findings = [Finding(
                id=f"{self.check}/1", check=self.check, cause=cause_from_axis(self.axis),
                title=self.summary.split(". ")[0] if self.summary else self.check,
                detail=self.axis or "", scenario=self.scenario, mismatch=self.mismatch)]

    @property
    def failing_findings(self) -> list:
        """Findings of severity "fail" (notes excluded)."""
        return [f for f in self.findings if f.severity == "fail"]

    def to_json(self) -> dict:
        return {
            "check": self.check,
            "verdict": self.verdict,
            "summary": self.summary,
            "mismatch": self.mismatch.to_json() if self.mismatch else None,
            "axis": self.axis,
            "repro": self.repro,
            "notes": list(self.notes),
            "examples": self.examples,
            "seconds": round(self.seconds, 3),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclasses.dataclass
class Context:
    """What every check gets.

    Attributes:
        target: the target under test.
        base: the config of the profile it is checked against (hyperparameters
            are drawn on top of it).
        profile: that profile's name (``"auto"`` when fingerprinted).
        dtype: the dtype of the main checks.
        max_examples: Hypothesis examples for the main property; the smaller
            properties use about half.
        seed: the Hypothesis seed.
        horizon: steps of the long-horizon check.
        tick: called once per example (progress bars).
        shrink_seconds: cap on Hypothesis's shrinking time per failing property.
        tol_dtype: the tolerance the checks judge at when the target was found to
            compute in lower precision than ``dtype`` (None: ``dtype``'s own); the
            precision itself is reported once, by the ``arithmetic`` check.
        fingerprint: the target's fingerprint (with its precision), if taken.
        reason: why ``base`` was chosen (the report's first line).
        model: defects found before the checks and reported by one check only
            (:func:`~..compare.apply_model`; e.g. weight decay ignored in a mode,
            reported by ``weight_decay_modes``): the other checks look past them.
    """

    target: Target
    base: RAdamConfig
    profile: str
    dtype: str = "float64"
    max_examples: int = 12
    seed: int = 0
    horizon: int = 10_000
    tick: Callable | None = None
    shrink_seconds: float = 8.0
    tol_dtype: str | None = None
    fingerprint: object = None
    reason: str = ""
    model: dict | None = None

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = dict(getattr(self.fingerprint, "model", None) or {})

    @property
    def few(self) -> int:
        return max(2, self.max_examples // 2)

    def judge(self, scenario: Scenario, **kwargs) -> Outcome:
        """:func:`~..compare.judge` at this context's tolerance."""
        kwargs.setdefault("tol_dtype", self.tol_dtype if _lower_precision_applies(self, scenario) else None)
        kwargs.setdefault("model", self.model or None)
        return judge(self.target, scenario, **kwargs)

    def cannot_tell(self, config: RAdamConfig) -> list[str]:
        """Options of ``config`` the target cannot be told, relative to the config it
        is checked against (``base``), not to the profile it claims: an axis the
        fingerprint found is the target's own behaviour, not a missing option."""
        out = []
        for f in dataclasses.fields(RAdamConfig):
            name = f.name
            if name in HYPERPARAMETERS or name in ("profile", "nonfinite", "decay_form", "comparison"):
                continue
            want = getattr(config, name)
            if name == "weight_decay_mode":
                if config.weight_decay and want not in self.target.modes() and want != self.base.weight_decay_mode:
                    out.append(f"weight_decay_mode={want!r}")
                continue
            if name in self.target.tunable:
                continue
            if want != getattr(self.base, name):
                out.append(f"{name}={want!r}")
        return out

    @property
    def extra(self) -> dict:
        """Replay keywords that reproduce this context's tolerance and model."""
        out = {"tol_dtype": self.tol_dtype} if self.tol_dtype else {}
        if self.model:
            out["model"] = dict(self.model)
        return out


def _lower_precision_applies(ctx: "Context", scenario: Scenario) -> bool:
    from .._dtypes import real_dtype

    return ctx.tol_dtype is not None and real_dtype(scenario.dtype) == "float64"

def render_repro(target: Target, check_name: str, scenario: Scenario, extra: dict | None = None) -> str:
    """Python source that re-runs one scenario of one check and prints the verdict."""
    if target.spec is not None and target.spec[0]:
        name, kwargs = target.spec
        head = f"replay({name!r}, {kwargs!r}, "
        setup = ""
    else:
        head = "replay(TARGET, None, "
        setup = f"# TARGET = {target!r}  (the object under test)\n"
    extra_s = f", extra={extra!r}" if extra else ""
    body = json.dumps(scenario.to_json(), separators=(",", ":"))
    return (
        f"{setup}from radam_ref.conformance import replay\n"
        f"{head}check={check_name!r}{extra_s},\n"
        f"       scenario=r'''{body}''')"
    )


def make_finding(ctx: Context, check_name: str, scenario: Scenario, outcome: Outcome, *, axis: str,
                 index: int = 1, extra: dict | None = None, cause: str | None = None,
                 title: str | None = None, diagnoses: list | None = None) -> tuple[Finding, str]:
    """A :class:`Finding` for ``outcome`` on ``scenario`` (diagnosed unless ``cause``
    is given), and the diagnosis text (the old ``axis`` field).  The diagnosis is
    appended to ``diagnoses`` when given."""
    from ..causes import CAUSES, UNEXPLAINED

    extra = {**ctx.extra, **(extra or {})}
    axis_text, diag_cause = axis, UNEXPLAINED
    diagnoses = diagnoses if diagnoses is not None else []
    if cause is None and outcome.mismatch is not None and outcome.observed is not None:
        try:
            diag = diagnose(scenario, outcome.observed, fallback=axis, upto=outcome.mismatch.step,
                            tol_dtype=extra.get("tol_dtype"))
            axis_text, diag_cause = diag.describe(), diag.cause
            diagnoses.append(diag)
        except Exception:  # noqa: BLE001 - a diagnosis that breaks must not hide the failure
            axis_text = f"{axis} (diagnosis unavailable)"
    if cause is None and diag_cause == UNEXPLAINED and _nan_spreads(outcome):
        cause = "eps/nan_spreads"
    if cause is None and outcome.mismatch is not None and outcome.mismatch.message.startswith("parameter dtype is"):
        cause, axis_text = "precision/dtype_changed", f"{axis}: {outcome.mismatch.message}"
    if cause is None and outcome.error and "assigning param.grad" in outcome.error and "dtype" in outcome.error:
        cause = "precision/dtype_changed"  # the target changed its parameter's dtype: the next grad won't fit
    cause = cause or diag_cause
    if cause != UNEXPLAINED and "matches the spec with" not in axis_text:
        axis_text = f"{axis}: {CAUSES[cause].text}"
    where = outcome.mismatch.describe() if outcome.mismatch else (outcome.error or "failed")
    head = CAUSES[cause].text if cause in CAUSES else f"unexplained deviation ({axis})"
    also = [c for c in (diagnoses[-1].also if diagnoses else []) if c != cause]
    finding = Finding(id=f"{check_name}/{index}", check=check_name, cause=cause,
                      title=title or head, detail=f"{axis_text}. First deviation: {where}",
                      scenario=scenario.to_json(), mismatch=outcome.mismatch, extra=extra, also=also)
    return finding, axis_text


def _nan_spreads(outcome: Outcome) -> bool:
    """The first mismatch is a NaN where the spec is finite, in a parameter where the
    spec itself has a NaN at that step (a 0/0 elsewhere spread to it)."""
    import math

    import numpy as np

    m, exp, obs = outcome.mismatch, outcome.expected, outcome.observed
    if m is None or exp is None or obs is None or not math.isnan(m.got) or math.isnan(m.expected):
        return False
    try:
        k = obs.steps.index(m.step)
        return bool(np.isnan(exp.values[k][m.group][m.param]).any())
    except (ValueError, IndexError):
        return False


def fail_result(ctx: Context, check_name: str, scenario: Scenario, outcome: Outcome, *,
                axis: str, extra: dict | None = None, summary: str | None = None,
                examples: int = 0, cause: str | None = None) -> CheckResult:
    """A ``fail`` result for ``outcome`` on ``scenario``: diagnosis, finding and repro."""
    finding, axis_text = make_finding(ctx, check_name, scenario, outcome, axis=axis, extra=extra, cause=cause)
    if summary is None:
        summary = outcome.mismatch.describe() if outcome.mismatch else (outcome.error or "failed")
    return CheckResult(
        check=check_name,
        verdict="fail",
        summary=summary,
        mismatch=outcome.mismatch,
        axis=axis_text,
        repro=render_repro(ctx.target, check_name, scenario, finding.extra or None),
        notes=list(outcome.notes),
        examples=examples,
        scenario=scenario.to_json(),
        findings=[finding],
    )


def result_from_findings(ctx: Context, check_name: str, findings: list, *, passed_summary: str,
                         examples: int = 0, notes: list | None = None, acceptable: bool = False) -> CheckResult:
    """A check's result from its findings (several independent ones allowed): the
    first failing finding fills the single mismatch/repro/scenario fields."""
    failing = [f for f in findings if f.severity == "fail"]
    if not failing:
        return CheckResult(check_name, "acceptable" if acceptable else "pass", passed_summary,
                           notes=list(notes or []), examples=examples, findings=list(findings))
    first = failing[0]
    summary = first.title if len(failing) == 1 else f"{len(failing)} findings: " + "; ".join(
        f.title for f in failing)
    if first.mismatch is not None:
        summary += f" — {first.mismatch.describe()}"
    scenario = Scenario.from_json(first.scenario) if first.scenario else None
    return CheckResult(
        check=check_name, verdict="fail", summary=summary, mismatch=first.mismatch,
        axis=first.detail.split(". First deviation")[0],
        repro=render_repro(ctx.target, check_name, scenario, first.extra or None) if scenario else None,
        notes=list(notes or []), examples=examples, scenario=first.scenario, findings=list(findings))


def unsupported_reason(target: Target, scenario: Scenario) -> str | None:
    """Why ``target`` cannot even start ``scenario`` (build + first step), or None.

    Optional features (complex and low-precision dtypes, several parameter
    groups) that the target rejects outright are "not supported", not failures;
    a target that starts and then goes wrong still fails.
    """
    from ..adapters.base import NotSupported, TargetError

    try:
        session = target.open(scenario.groups, scenario.dtype)
        try:
            session.step(scenario.grads_at(1))
        finally:
            session.close()
    except NotSupported as exc:
        return str(exc)
    except TargetError as exc:
        return f"rejected: {exc}"
    return None


def timed(fn):
    """Decorator: fill ``seconds`` of the returned CheckResult."""

    def wrapper(ctx):
        start = time.perf_counter()
        result = fn(ctx)
        result.seconds = time.perf_counter() - start
        return result

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper
