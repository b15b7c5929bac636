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
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable

from radam_ref import RAdamConfig

from ..adapters.base import Target
from ..compare import Mismatch, Outcome, judge
from ..diagnose import diagnose
from ..scenario import Scenario

__all__ = ["Check", "CheckResult", "Context", "CHECKS", "check", "fail_result", "render_repro", "VERDICTS",
           "unsupported_reason"]

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

    @property
    def few(self) -> int:
        return max(2, self.max_examples // 2)


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


def fail_result(ctx: Context, check_name: str, scenario: Scenario, outcome: Outcome, *,
                axis: str, extra: dict | None = None, summary: str | None = None,
                examples: int = 0) -> CheckResult:
    """A ``fail`` result for ``outcome`` on ``scenario``: diagnosis and repro."""
    axis_text = axis
    if outcome.mismatch is not None and outcome.observed is not None:
        try:
            diag = diagnose(scenario, outcome.observed, fallback=axis, upto=outcome.mismatch.step)
            axis_text = diag.describe()
        except Exception:  # noqa: BLE001 - a diagnosis that breaks must not hide the failure
            axis_text = f"{axis} (diagnosis unavailable)"
    if summary is None:
        summary = outcome.mismatch.describe() if outcome.mismatch else (outcome.error or "failed")
    return CheckResult(
        check=check_name,
        verdict="fail",
        summary=summary,
        mismatch=outcome.mismatch,
        axis=axis_text,
        repro=render_repro(ctx.target, check_name, scenario, extra),
        notes=list(outcome.notes),
        examples=examples,
        scenario=scenario.to_json(),
    )


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
