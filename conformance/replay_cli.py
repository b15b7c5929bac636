"""``radam-ref replay REPORT.json FINDING``: re-run one finding of a report.

``REPORT.json`` is what ``radam-ref conformance --json`` wrote (one report, a
list of them for ``--all``, or JSON lines).  ``FINDING`` is a finding id
(``threshold/1``), or a check name (its first finding); in a file with several
reports, prefix the report's position in the table: ``3:threshold/1``.  The
target is rebuilt from the report (name and keyword arguments) and the check's
replay runs the finding's scenario, exactly as stored (hex floats).

Exit status: 1 the failure reproduces (as a failing test would), 0 it does not
(the target now passes), 2 a usage error (no such file, report or finding).
"""

from __future__ import annotations

import ast
import json
import re
import sys

__all__ = ["register", "run", "load_reports", "find"]


def register(subparsers) -> None:
    import argparse

    parser = subparsers.add_parser(
        "replay", help="re-run one finding of a conformance report (the command each finding prints)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", metavar="REPORT.json", help="a report written by radam-ref conformance --json")
    parser.add_argument("finding", metavar="FINDING", help="a finding id (threshold/1) or check name; "
                                                           "N:FINDING for the N-th report of an --all file")
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"radam-ref replay: error: {message}", file=sys.stderr)
    return 2


def load_reports(path: str) -> list:
    """The report dicts in ``path`` (a report, a list of reports, or JSON lines)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = [data]
    return [d for d in data if isinstance(d, dict) and "checks" in d]


def _extra_from_repro(repro: str | None) -> dict:
    if not repro:
        return {}
    match = re.search(r"extra=(\{.*?\})\s*,\s*\n", repro, re.S)
    if not match:
        return {}
    try:
        return ast.literal_eval(match.group(1))
    except (ValueError, SyntaxError):
        return {}


def _scenario_from_repro(repro: str | None):
    if not repro or "r'''" not in repro:
        return None
    return repro.split("r'''", 1)[1].split("'''", 1)[0]


def find(reports: list, ref: str):
    """``(report, check, finding_id, scenario, extra)`` for ``ref``, or a message."""
    index = None
    head, sep, rest = ref.partition(":")
    if sep and head.isdigit():
        index, ref = int(head), rest
    if index is None:
        if len(reports) != 1:
            return (f"the report file holds {len(reports)} reports: write N:{ref}, N the target's row "
                    f"(1 to {len(reports)})")
        index = 1
    if not 1 <= index <= len(reports):
        return f"no report {index} (the file holds {len(reports)})"
    report = reports[index - 1]
    known = []
    for check in report.get("checks", ()):
        for finding in check.get("findings") or ():
            known.append(finding.get("id"))
            if finding.get("id") == ref and finding.get("scenario") is not None:
                return report, finding["check"], finding["id"], finding["scenario"], dict(finding.get("extra") or {})
    for check in report.get("checks", ()):
        if check.get("check") == ref and check.get("verdict") == "fail":
            findings = [f for f in check.get("findings") or () if f.get("scenario") is not None]
            if findings:
                f = findings[0]
                return report, f["check"], f["id"], f["scenario"], dict(f.get("extra") or {})
            scenario = check.get("scenario") or _scenario_from_repro(check.get("repro"))
            if scenario is not None:
                return report, ref, ref, scenario, _extra_from_repro(check.get("repro"))
        known.append(check.get("check")) if check.get("verdict") == "fail" else None
    listed = ", ".join(k for k in known if k) or "none"
    return f"no replayable finding {ref!r} in report {index} ({report.get('target')}); its findings: {listed}"


def run(args) -> int:
    import os
    import tempfile
    import warnings

    # Hypothesis keeps files in .hypothesis/ of the working directory: not here.
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "radam-ref-hypothesis"))
    import numpy as np

    from .adapters.registry import TargetUnavailable, resolve_target
    from .checks import CHECKS
    from .scenario import Scenario

    try:
        reports = load_reports(args.report)
    except OSError as exc:
        return _usage(f"cannot read {args.report!r}: {exc.strerror or exc}")
    except (json.JSONDecodeError, ValueError) as exc:
        return _usage(f"{args.report!r} is not a conformance report ({exc})")
    if not reports:
        return _usage(f"{args.report!r} holds no conformance report")
    found = find(reports, args.finding)
    if isinstance(found, str):
        return _usage(found)
    report, check, finding_id, scenario, extra = found
    if check not in CHECKS:
        return _usage(f"the report names check {check!r}, which this version does not have")
    spec = report.get("spec") or [report.get("name") or report["target"], report.get("kwargs") or {}]
    name, kwargs = spec[0], dict(spec[1] or {})
    try:
        target = resolve_target(name, kwargs)
    except TargetUnavailable as exc:
        return _usage(str(exc))
    try:
        scenario = Scenario.from_json(scenario)
        if not isinstance(extra, dict):
            raise TypeError(f"its 'extra' is {type(extra).__name__}, not an object")
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return _usage(f"the scenario of {finding_id!r} in {args.report!r} is not valid "
                      f"({type(exc).__name__}: {exc}): was the report edited?")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        outcome = CHECKS[check].replay(target, scenario, **extra)
    print(f"{report['target']} — {finding_id} (check {check}): {outcome.verdict}")
    for line in outcome.detail_lines():
        print("  " + line)
    if outcome.ok:
        print("does not reproduce: the target now passes this scenario")
        return 0
    print("reproduced")
    return 1
