"""Conformance suite: is this RAdam, which RAdam, and where is it wrong?

Checks any RAdam implementation against the spec (:mod:`radam_ref`) and names the
variant it implements.

* :func:`run_conformance` — every named check (:data:`CHECKS`) on a target, a
  :class:`Report` with a verdict per check; failures carry the first failing
  step, parameter, element, expected vs got, the axis most likely responsible
  and a repro.  The command line is ``radam-ref conformance``.
* :func:`fingerprint` — probe a target with designed inputs and find which
  combination of the spec's axes it follows.
* :func:`replay` — re-run one scenario of one check (what every repro calls).
* :class:`Target` / :class:`Session` — the adapter protocol, to wrap any
  implementation; :func:`resolve_target` builds targets from names.
* Tolerances and their rationale: :mod:`radam_ref.conformance.tolerance`.
* Golden vectors for ports: :mod:`radam_ref.conformance.vectors`
  (``radam-ref vectors generate|validate|check``).
* Pytest mode: ``pytest --pyargs radam_ref.conformance --radam-target TARGET``.
"""

from __future__ import annotations

from radam_ref._extras import require

require("radam_ref.conformance", "cli")  # one line naming the extra, not a bare ModuleNotFoundError

from .adapters import (
    ALL_TARGETS,
    BUILTIN_TARGETS,
    NotSupported,
    Session,
    Target,
    TargetError,
    TargetUnavailable,
    resolve_target,
)
from .checks import CHECKS, CheckResult
from .compare import Outcome
from .fingerprint import Fingerprint, fingerprint
from .runner import Report, run_conformance
from .scenario import GeneratedStream, Group, Scenario

__all__ = [
    "ALL_TARGETS",
    "BUILTIN_TARGETS",
    "CHECKS",
    "CheckResult",
    "Fingerprint",
    "GeneratedStream",
    "Group",
    "NotSupported",
    "Outcome",
    "Report",
    "Scenario",
    "Session",
    "Target",
    "TargetError",
    "TargetUnavailable",
    "fingerprint",
    "replay",
    "resolve_target",
    "run_conformance",
]


def replay(target, kwargs: dict | None = None, *, check: str = "trajectories", scenario,
           extra: dict | None = None, verbose: bool = True) -> Outcome:
    """Re-run ``scenario`` (a :class:`Scenario`, its JSON dict or string) of ``check``
    on ``target`` and print what happened (first failing step, expected vs got).

    This is what every repro printed by the suite calls.
    """
    import warnings

    import numpy as np

    built = resolve_target(target, kwargs)
    if not isinstance(scenario, Scenario):
        scenario = Scenario.from_json(scenario)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        outcome = CHECKS[check].replay(built, scenario, **(extra or {}))
    if verbose:
        print(f"{built.describe()} — check {check!r}: {outcome.verdict}")
        for line in outcome.detail_lines():
            print("  " + line)
    return outcome
