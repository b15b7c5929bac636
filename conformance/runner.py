"""Run the checks on a target and collect a :class:`Report`.

:func:`run_conformance` runs in the calling process (the Python API);
:mod:`.isolation` runs it in a child process with a time limit (the command
line and the pytest mode), and moves the :class:`Report` back through
:meth:`Report.to_json` / :meth:`Report.from_json`.

Before any check, :func:`preflight` builds the target and takes one plain step,
so that what goes wrong there is classified once instead of failing every check:

* a constructor ``TypeError`` for a keyword the user passed → "usage error"
  (naming the keyword and the target's signature);
* the first step raising while the user's keyword arguments name the
  configuration it refuses (``capturable=True`` on CPU) → "not supported", with
  the target's reason;
* any other failure of the plain step, or a step returning the wrong type →
  "error", with a message naming what was expected.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import time
import traceback
import warnings
from typing import Callable, Sequence

import numpy as np

from .adapters.base import NotSupported, Target
from .adapters.registry import resolve_target, target_label
from .checks import CHECKS, CheckResult, Context
from .fingerprint import Fingerprint, choose_profile, fingerprint as take_fingerprint

__all__ = ["Report", "run_conformance", "preflight", "result_from_json", "DEFAULT_MAX_EXAMPLES", "DEFAULT_HORIZON",
           "TARGET_VERDICTS"]

#: Verdicts of a whole target.  "error": the target died, hung, returned garbage
#: or the suite broke; "usage error": the target cannot be built as asked.
TARGET_VERDICTS = ("conforms", "does not conform", "error", "not supported", "usage error", "not installed")

DEFAULT_MAX_EXAMPLES = 10
DEFAULT_HORIZON = 10_000


@dataclasses.dataclass
class Report:
    """The result of checking one target.

    ``verdict`` (:data:`TARGET_VERDICTS`): "conforms" (every check passed, was
    acceptable or not supported), "does not conform" (some check failed),
    "error" (the target died, hung or returned garbage, or the suite broke),
    "not supported" (the target refuses the configuration asked for: ``message``
    says why), "usage error" (it cannot be built as asked) or "not installed".
    ``outcome``, when set, is the verdict decided before or outside the checks
    (preflight, the isolating parent); ``message`` says why.
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
    outcome: str | None = None
    spec: tuple | None = None
    output: str = ""
    fingerprint_json: dict | None = dataclasses.field(default=None, repr=False)

    @property
    def verdict(self) -> str:
        if not self.installed:
            return "not installed"
        if self.outcome:
            return self.outcome
        verdicts = {r.verdict for r in self.results}
        if "error" in verdicts:
            return "error"
        if "fail" in verdicts:
            return "does not conform"
        return "conforms"

    @property
    def conforms(self) -> bool:
        return self.verdict == "conforms"

    def result(self, check: str) -> CheckResult | None:
        return next((r for r in self.results if r.check == check), None)

    def to_json(self) -> dict:
        checks = []
        for r in self.results:
            data = r.to_json()
            if getattr(r, "scenario", None) is not None:
                data.setdefault("scenario", r.scenario)
            checks.append(data)
        return {
            "target": self.target,
            "name": self.name,
            "kwargs": self.kwargs,
            "spec": list(self.spec) if self.spec else None,
            "profile": self.profile,
            "dtype": self.dtype,
            "verdict": self.verdict,
            "outcome": self.outcome,
            "installed": self.installed,
            "message": self.message,
            "output": self.output,
            "seconds": round(self.seconds, 3),
            "fingerprint": (self.fingerprint_json if self.fingerprint_json is not None
                            else self.fingerprint.to_json() if self.fingerprint else None),
            "checks": checks,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Report":
        """Inverse of :meth:`to_json` (what the isolating parent reads back)."""
        spec = data.get("spec")
        return cls(
            target=data["target"], profile=data.get("profile", ""), dtype=data.get("dtype", ""),
            results=[result_from_json(c) for c in data.get("checks", ())],
            fingerprint=_fingerprint_from_json(data.get("fingerprint")),
            seconds=float(data.get("seconds", 0.0)), message=data.get("message", ""),
            installed=data.get("installed", data.get("verdict") != "not installed"),
            kwargs=dict(data.get("kwargs") or {}), name=data.get("name", ""),
            outcome=data.get("outcome"), spec=tuple(spec) if spec else None, output=data.get("output", ""),
            fingerprint_json=data.get("fingerprint"),
        )


def _float(v):
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def result_from_json(data: dict) -> CheckResult:
    """A :class:`CheckResult` from its JSON (findings included when the class has them)."""
    from .compare import Mismatch

    m = data.get("mismatch")
    mismatch = None
    if m is not None:
        mismatch = Mismatch(step=int(m["step"]), group=int(m["group"]), param=int(m["param"]),
                            index=tuple(m.get("index", ())), expected=float(m["expected"]), got=float(m["got"]),
                            tolerance=float(m["tolerance"]), message=m.get("message", ""))
    fields = {f.name for f in dataclasses.fields(CheckResult)}
    kwargs = dict(check=data["check"], verdict=data["verdict"], summary=data.get("summary", ""),
                  mismatch=mismatch, axis=data.get("axis"), repro=data.get("repro"),
                  notes=list(data.get("notes") or ()), examples=int(data.get("examples", 0)),
                  seconds=float(data.get("seconds", 0.0)), scenario=data.get("scenario"))
    if "findings" in fields and data.get("findings") is not None:
        try:
            from .findings import Finding

            kwargs["findings"] = [Finding.from_json(f) for f in data["findings"]]
        except ImportError:  # pragma: no cover - findings not present
            pass
    return CheckResult(**{k: v for k, v in kwargs.items() if k in fields})


def _fingerprint_from_json(data: dict | None) -> Fingerprint | None:
    if data is None:
        return None
    if hasattr(Fingerprint, "from_json"):
        return Fingerprint.from_json(data)
    fields = {f.name for f in dataclasses.fields(Fingerprint)}
    interval = data.get("threshold_interval")
    kwargs = dict(
        axes={k: tuple(_float(v) for v in vs) for k, vs in (data.get("axes") or {}).items()},
        consistent=bool(data.get("consistent")),
        threshold_interval=tuple(_float(v) for v in interval) if interval else None,
        profiles=list(data.get("profiles") or ()),
        differs_from_paper=list(data.get("differs_from_paper") or ()),
        closest={k: _float(v) for k, v in data["closest"].items()} if data.get("closest") else None,
        note=data.get("note", ""),
    )
    return Fingerprint(**{k: v for k, v in kwargs.items() if k in fields})


# --------------------------------------------------------------------------- #
# preflight: build the target and take one plain step
# --------------------------------------------------------------------------- #

_UNKNOWN_KEYWORD = re.compile(r"unexpected keyword argument '([^']+)'|got an unexpected keyword argument "
                              r"'?([A-Za-z_]\w*)'?|invalid keyword argument '?([A-Za-z_]\w*)'?")


def _signature_of(target: Target) -> str:
    for attr in ("cls", "fn", "factory"):
        obj = getattr(target, attr, None)
        if obj is None:
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        return f"{getattr(obj, '__qualname__', obj)}{sig}"
    return target.name


def _root_exception(exc: BaseException) -> BaseException:
    original = getattr(exc, "original", None)
    return original if isinstance(original, BaseException) else exc


def preflight(target: Target, base, dtype: str, kwargs: dict | None) -> tuple[str, str] | None:
    """Build ``target`` and take two plain steps; ``(verdict, message)`` when that
    already decides the target's verdict (see the module docstring), else None."""
    import numpy as np

    from .adapters.base import TargetError
    from .scenario import Group, Scenario

    kwargs = dict(kwargs or {})
    params = [np.array([0.5, -1.0, 2.0])]
    config = base.replace(lr=1e-3, weight_decay=0.0) if base.weight_decay_mode != "none" else base.replace(lr=1e-3)
    scenario = Scenario([Group(params, config)], [[[np.array([0.25, -0.5, 1.0])]] for _ in range(2)], dtype=dtype)
    stage = "building"
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            session = target.open(scenario.groups, dtype)
            try:
                for t in (1, 2):
                    stage = f"step {t}"
                    session.step(scenario.grads_at(t))
                stage = "reading the parameters"
                values = session.params()
            finally:
                session.close()
    except NotSupported:
        return None  # the checks say what is not supported
    except TargetError as exc:
        root = _root_exception(exc)
        text = str(root)
        if isinstance(root, TypeError):
            # the constructor, or a step function called with the keyword arguments at every step
            match = _UNKNOWN_KEYWORD.search(text)
            keyword = next((g for g in (match.groups() if match else ()) if g), None)
            if keyword is not None and keyword in kwargs:
                return ("usage error", f"{target.name} does not accept the keyword argument {keyword!r} "
                                       f"(from --kwargs); its signature is {_signature_of(target)}")
        named = [k for k in kwargs if k in text]
        if stage != "building" and named and not isinstance(root, (TypeError, AttributeError, IndexError,
                                                                       KeyError, NameError)):
            return ("not supported", f"{target.name} refuses {', '.join(f'{k}={kwargs[k]!r}' for k in named)} "
                                     f"on its first step: {type(root).__name__}: {text}")
        return ("error", f"{target.name} fails on the plainest input ({stage}): {exc}")
    except Exception as exc:  # noqa: BLE001 - garbage from the target, e.g. params that are not arrays
        if getattr(exc, "target_fault", False):
            # the target broke (an exec: port that crashed or garbled): its own message says how
            return ("error", f"{target.name} failed ({stage}): {exc}")
        return ("error", f"{target.name}: {stage} raised {type(exc).__name__}: {exc}; expected the parameters "
                         "as arrays shaped like the ones given")
    problem = _check_values(values, scenario)
    if problem:
        return ("error", f"{target.name}: {problem}")
    return None


def _check_values(values, scenario) -> str | None:
    import numpy as np

    shapes = [[np.shape(p) for p in g.params] for g in scenario.groups]
    try:
        got = [[np.shape(np.asarray(p, dtype=np.complex128)) for p in group] for group in values]
    except (TypeError, ValueError) as exc:
        return (f"its parameters read back as {type(values).__name__} that is not numeric ({exc}); "
                f"expected numeric arrays shaped {shapes}")
    if got != shapes:
        return f"its parameters read back with shapes {got}; expected {shapes}"
    return None


# --------------------------------------------------------------------------- #
# the suite's own state: a target must not replace what the verdicts rest on
# --------------------------------------------------------------------------- #

#: Modules whose functions and classes the oracle and the comparisons use (with every
#: loaded module of the suite itself).  A target runs in the same (child) process as the
#: oracle; one that replaces any of these — to patch NumPy "for speed", or the spec it is
#: checked against — would make the suite agree with it.
_GUARDED = ("math", "numpy", "numpy.linalg", "radam_ref", "radam_ref._step", "radam_ref._schedule",
            "radam_ref._config", "radam_ref._profiles", "radam_ref._tree")


def suite_state() -> dict:
    """``{(module, name): object}`` of the guarded modules' functions and classes."""
    import sys

    names = list(_GUARDED) + [m for m in list(sys.modules)
                              if m.startswith(("radam_ref.conformance", "conformance."))]
    snap = {}
    for module_name in names:
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for attr, obj in list(vars(module).items()):
            if not attr.startswith("__") and (callable(obj) or isinstance(obj, type)):
                snap[(module_name, attr)] = obj
    return snap


def tampered(snap: dict) -> list[str]:
    """The guarded names that no longer hold what ``snap`` recorded."""
    import sys

    out = []
    for (module_name, attr), obj in snap.items():
        module = sys.modules.get(module_name)
        if module is None or vars(module).get(attr) is not obj:
            out.append(f"{module_name}.{attr}")
    return out


def _tamper_message(label: str, names: list[str], stage: str) -> str:
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return (f"{label} replaced the suite's own functions in its process ({shown}, found after {stage}): "
            "the oracle and the comparisons run there, so no verdict can be trusted")


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
        if getattr(exc, "target_fault", False):
            # the target broke (e.g. an exec: port crashed or garbled its reply), not the suite
            result = CheckResult(name, "error", str(exc))
            result.seconds = time.perf_counter() - start
            return result
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
    on_start: Callable | None = None,
    on_result: Callable | None = None,
    on_report: Callable | None = None,
) -> Report:
    """Check ``target`` (a TARGET string, a :class:`Target`, or anything
    :func:`resolve_target` accepts) against ``profile`` (default: the one it
    claims; ``"auto"``: its fingerprint), in this process.

    ``on_start(name)`` is called before each stage (``"preflight"``,
    ``"fingerprint"``, then each check), ``on_report(report)`` with the report
    so far before the preflight and before the first check, ``on_result(result)`` with each
    :class:`CheckResult` and ``on_check(name)`` after each stage.

    Raises :class:`TargetUnavailable` when the target cannot be built and
    ValueError for a bad dtype or check name.
    """
    start = time.perf_counter()
    # what the target could replace, recorded before its module is imported
    from . import checks as _checks, compare as _compare, diagnose as _diagnose, oracle as _oracle  # noqa: F401

    guard = suite_state()
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
    report = Report(label, profile or built.profile, dtype, kwargs=dict(kwargs or {}), name=name,
                    spec=built.spec)
    base = built.claimed_config()
    if on_report:
        on_report(report)
    if on_start:
        on_start("preflight")
    decided = preflight(built, base, dtype, kwargs)
    changed = tampered(guard)
    if changed:
        decided = ("error", _tamper_message(label, changed, "building it and its first steps"))
    if decided is not None:
        report.outcome, report.message = decided
        report.seconds = time.perf_counter() - start
        return report
    fp = None
    if fingerprint or profile == "auto":
        if on_start:
            on_start("fingerprint")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fp = take_fingerprint(built, base, built.default_dtype)
        report.fingerprint = fp
        if on_check:
            on_check("fingerprint")
    if profile in (None, "auto"):
        # no --profile: the profile the fingerprint finds, and why (fingerprint.choose_profile)
        base, report.profile, reason = choose_profile(built, fp, base)
    else:
        reason = f"profile: {profile} — given with --profile"
    report.message = reason if not report.message else f"{reason}\n{report.message}"
    ctx = Context(built, base, report.profile, dtype=dtype, max_examples=max_examples, seed=seed,
                  horizon=horizon, shrink_seconds=shrink_seconds, tol_dtype=fp.tol_dtype if fp else None,
                  fingerprint=fp, reason=reason)
    if on_report:
        on_report(report)
    for check_name in names:
        if on_start:
            on_start(check_name)
        result = _run_check(check_name, ctx)
        changed = tampered(guard)
        if changed:
            result = CheckResult(check_name, "error", _tamper_message(label, changed, f"the {check_name} check"))
            report.results.append(result)
            report.outcome, report.message = "error", f"{report.message}\n{result.summary}"
            if on_result:
                on_result(result)
            break
        report.results.append(result)
        if on_result:
            on_result(result)
        if on_check:
            on_check(check_name)
    report.seconds = time.perf_counter() - start
    return report
