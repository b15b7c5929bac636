"""Pytest mode: ``pytest --pyargs radam_ref.conformance --radam-target TARGET``.

Registered as a pytest plugin (entry point ``pytest11``), so the flags exist
wherever radam-ref is installed; they only matter for the suite's own test module
(``radam_ref/conformance/test_target.py``), collected by ``--pyargs``.  Flags, in
the style of array-api-tests:

  --radam-target TARGET      what to check (required; or the RADAM_TARGET variable)
  --radam-kwargs JSON        constructor / factory keyword arguments
  --radam-profile NAME|auto  profile to check against (default, like ``auto`` and the
                             command line: the profile the target's fingerprint follows,
                             see :func:`.fingerprint.choose_profile`)
  --radam-dtype DTYPE        dtype of the main checks
  --radam-max-examples N     Hypothesis examples per drawn property
  --radam-seed N             Hypothesis seed
  --radam-horizon STEPS      steps of the long-horizon check
  --radam-timeout SECONDS    time limit of the target's child process (default 300)

The target runs in a child process (:mod:`.isolation`), once per session, with
the checks the session selected (``-k`` works); a target that exits, crashes or
hangs fails every selected test with the reason, and cannot touch pytest's own
process.  The profile checked against, and why, is printed in the session's
summary and heads every failure message.  Each check is one test: a failure prints its findings (first failing
step, expected vs got, cause, repro); "not supported" is a skip.
"""

from __future__ import annotations

import json
import os

import pytest

MARKER = "radam_conformance"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("radam-ref conformance")
    group.addoption("--radam-target", default=None, metavar="TARGET",
                    help="RAdam implementation to check (built-in name or module:attr)")
    group.addoption("--radam-kwargs", default=None, metavar="JSON", help="keyword arguments of the target")
    group.addoption("--radam-profile", default=None, metavar="NAME",
                    help="profile to check against, or auto (default: the one the target's fingerprint follows, "
                         "as on the command line)")
    group.addoption("--radam-dtype", default=None, metavar="DTYPE", help="dtype of the main checks")
    group.addoption("--radam-max-examples", type=int, default=None, metavar="N",
                    help="Hypothesis examples per drawn property")
    group.addoption("--radam-seed", type=int, default=0, metavar="N", help="Hypothesis seed")
    group.addoption("--radam-horizon", type=int, default=None, metavar="STEPS",
                    help="steps of the long-horizon check")
    group.addoption("--radam-timeout", type=float, default=None, metavar="SECONDS",
                    help="time limit of the target's child process (default 300)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a check of the radam-ref conformance suite")


def _target_option(config):
    return config.getoption("--radam-target") or os.environ.get("RADAM_TARGET")


def pytest_collection_modifyitems(config, items) -> None:
    if any(item.get_closest_marker(MARKER) for item in items) and not _target_option(config):
        raise pytest.UsageError(
            "the radam-ref conformance tests need a target: pass --radam-target TARGET "
            "(e.g. torch.optim.RAdam, optax.radam, mymodule:MyRAdam) or set RADAM_TARGET"
        )


def _selected_checks(session) -> list:
    from radam_ref.conformance.checks import CHECKS

    chosen = []
    for item in getattr(session, "items", ()):
        callspec = getattr(item, "callspec", None)
        check = callspec.params.get("check") if callspec is not None else None
        if check in CHECKS and check not in chosen:
            chosen.append(check)
    return [c for c in CHECKS if c in chosen]


@pytest.fixture(scope="session")
def radam_report(request):
    """The :class:`Report` of the target named by the --radam-* flags, run in a
    child process with the selected checks."""
    from radam_ref.conformance.adapters.registry import TargetUnavailable, check_kwargs
    from radam_ref.conformance.isolation import DEFAULT_TIMEOUT, run_isolated
    from radam_ref.conformance.runner import DEFAULT_HORIZON, DEFAULT_MAX_EXAMPLES

    config = request.config
    name = _target_option(config)
    raw = config.getoption("--radam-kwargs")
    try:
        kwargs = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise pytest.UsageError(f"--radam-kwargs: invalid JSON {raw!r} ({exc})") from None
    if not isinstance(kwargs, dict):
        raise pytest.UsageError(f"--radam-kwargs must be a JSON object, got {raw!r}")
    problem = check_kwargs(kwargs)
    if problem:
        raise pytest.UsageError(problem.replace("--kwargs", "--radam-kwargs"))
    profile = config.getoption("--radam-profile")
    if profile is not None and profile != "auto":
        from radam_ref import PROFILES

        if profile not in PROFILES:
            raise pytest.UsageError(f"--radam-profile: unknown profile {profile!r} "
                                    f"(known: {', '.join(PROFILES)}, auto)")
    try:
        report = run_isolated(
            name, kwargs, timeout=config.getoption("--radam-timeout") or DEFAULT_TIMEOUT,
            profile=profile, dtype=config.getoption("--radam-dtype"),
            checks=_selected_checks(request.session) or None,
            max_examples=config.getoption("--radam-max-examples") or DEFAULT_MAX_EXAMPLES,
            seed=config.getoption("--radam-seed"),
            horizon=config.getoption("--radam-horizon") or DEFAULT_HORIZON,
        )
    except (TargetUnavailable, ValueError) as exc:
        raise pytest.UsageError(f"--radam-target: {exc}") from None
    if report.verdict == "usage error":
        raise pytest.UsageError(f"--radam-target: {report.message}")
    config.stash[_REPORT_KEY] = report
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(f"radam-ref conformance: {report.target}: {profile_line(report)}")
    return report


_REPORT_KEY = pytest.StashKey()


def profile_line(report) -> str:
    """Which profile the target was checked against, and why (the report's first
    message line, as the command line prints it: ``profile: NAME — reason``)."""
    first = (report.message or "").splitlines()[0] if report.message else ""
    if first.startswith("profile:"):
        return first
    return f"profile: {report.profile or '?'}" + (f" ({first})" if first else "")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    report = config.stash.get(_REPORT_KEY, None)
    if report is None:
        return
    terminalreporter.section("radam-ref conformance")
    terminalreporter.write_line(f"target: {report.target}")
    terminalreporter.write_line(profile_line(report))
    terminalreporter.write_line(f"verdict: {report.verdict}")
