"""Run the checks on a target and collect a :class:`Report`."""

from __future__ import annotations

import dataclasses
import time
import traceback
import warnings
from typing import Callable, Sequence

import numpy as np

from .adapters.base import NotSupported, Target
from .adapters.registry import resolve_target, target_label
from .checks import CHECKS, CheckResult, Context
from .fingerprint import Fingerprint, fingerprint as take_fingerprint

__all__ = ["Report", "run_conformance", "DEFAULT_MAX_EXAMPLES", "DEFAULT_HORIZON"]

DEFAULT_MAX_EXAMPLES = 10
DEFAULT_HORIZON = 10_000


@dataclasses.dataclass
class Report:
    """The result of checking one target.

    ``verdict``: "conforms" (every check passed, was acceptable or not supported),
    "does not conform" (some check failed), "error" (the suite broke), or
    "not installed".
    """

    target: str
    profile: str
    dtype: str
    results: list = dataclasses.field(default_factory=list)
    fingerprint: Fingerprint | None = None
    seconds: float = 0.0
    message: str = ""
    installed: bool = True
    kwargs: dict = dataclasses.field(default_factory=dict)
    name: str = ""

    @property
    def verdict(self) -> str:
        if not self.installed:
            return "not installed"
        verdicts = {r.verdict for r in self.results}
        if "fail" in verdicts:
            return "does not conform"
        if "error" in verdicts:
            return "error"
        return "conforms"

    @property
    def conforms(self) -> bool:
        return self.verdict == "conforms"

    def result(self, check: str) -> CheckResult | None:
        return next((r for r in self.results if r.check == check), None)

    def to_json(self) -> dict:
        return {
            "target": self.target,
            "name": self.name,
            "kwargs": self.kwargs,
            "profile": self.profile,
            "dtype": self.dtype,
            "verdict": self.verdict,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "fingerprint": self.fingerprint.to_json() if self.fingerprint else None,
            "checks": [r.to_json() for r in self.results],
        }


def _run_check(name: str, ctx: Context) -> CheckResult:
    check = CHECKS[name]
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = check.run(ctx)
    except NotSupported as exc:
        result = CheckResult(name, "not supported", str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug in the suite, reported as such
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        result = CheckResult(name, "error", f"the suite raised {type(exc).__name__}: {exc}",
                             notes=["".join(tb[-6:])])
    result.seconds = time.perf_counter() - start
    return result


def run_conformance(
    target,
    kwargs: dict | None = None,
    *,
    profile: str | None = None,
    dtype: str | None = None,
    checks: Sequence[str] | None = None,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    horizon: int = DEFAULT_HORIZON,
    fingerprint: bool = True,
    on_check: Callable | None = None,
    shrink_seconds: float = 8.0,
) -> Report:
    """Check ``target`` (a TARGET string, a :class:`Target`, or anything
    :func:`resolve_target` accepts) against ``profile`` (default: the one it
    claims; ``"auto"``: its fingerprint).

    Raises :class:`TargetUnavailable` when the target cannot be built and
    ValueError for a bad dtype or check name.
    """
    start = time.perf_counter()
    built: Target = resolve_target(target, kwargs, profile=profile)
    name = target if isinstance(target, str) else built.name
    label = target_label(name, kwargs) if isinstance(target, str) else built.name
    dtype = dtype or built.default_dtype
    if dtype not in built.dtypes:
        raise ValueError(f"target {label} does not support dtype {dtype!r} (it supports {', '.join(built.dtypes)})")
    names = list(checks) if checks else list(CHECKS)
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {unknown} (known: {', '.join(CHECKS)})")
    report = Report(label, profile or built.profile, dtype, kwargs=dict(kwargs or {}), name=name)
    base = built.claimed_config()
    fp = None
    if fingerprint or profile == "auto":
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fp = take_fingerprint(built, base, built.default_dtype)
        report.fingerprint = fp
        if on_check:
            on_check("fingerprint")
    if profile == "auto":
        if fp is not None and fp.consistent and fp.config is not None:
            base = fp.config
            report.profile = "auto (" + (", ".join(fp.profiles) if fp.profiles else "no named profile") + ")"
        else:
            report.message = "no consistent fingerprint: checked against the claimed profile " + built.profile
            report.profile = built.profile
    ctx = Context(built, base, report.profile, dtype=dtype, max_examples=max_examples, seed=seed,
                  horizon=horizon, shrink_seconds=shrink_seconds)
    for check_name in names:
        report.results.append(_run_check(check_name, ctx))
        if on_check:
            on_check(check_name)
    report.seconds = time.perf_counter() - start
    return report
