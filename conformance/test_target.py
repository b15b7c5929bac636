"""The conformance checks as pytest tests (see :mod:`.pytest_plugin` for the flags)."""

from __future__ import annotations

import pytest

from radam_ref.conformance.checks import CHECKS
from radam_ref.conformance.fingerprint import AXES

pytestmark = pytest.mark.radam_conformance


def _explain(result) -> str:
    lines = [f"{result.check}: {result.summary}"]
    m = result.mismatch
    if m is not None:
        lines.append(f"first failing step {m.step}, params[{m.group}][{m.param}], element {list(m.index)}: "
                     f"expected {m.expected!r}, got {m.got!r}, tolerance {m.tolerance:.3g}")
    if result.axis:
        lines.append(f"most likely axis: {result.axis}")
    for finding in getattr(result, "findings", None) or ():
        lines.append(f"finding {finding.id}: {finding.title} [{finding.cause}]")
    lines += result.notes
    if result.repro:
        lines += ["repro:", result.repro]
    return "\n".join(lines)


def _target_level(report):
    """Fail or skip every test when the target as a whole got its verdict outside
    the checks (it died, hung, or refuses the configuration)."""
    if report.verdict == "not supported":
        pytest.skip(f"not supported: {report.message}")
    if report.outcome == "error":
        detail = report.message + ("\n" + report.output if report.output else "")
        pytest.fail(f"error: {detail}", pytrace=False)


@pytest.mark.parametrize("check", list(CHECKS))
def test_check(check, radam_report):
    result = radam_report.result(check)
    if result is None:
        _target_level(radam_report)
        pytest.fail(f"{check} did not run: {radam_report.message}", pytrace=False)
    if result.verdict == "not supported":
        pytest.skip(f"not supported: {result.summary}")
    if result.verdict in ("fail", "error"):
        from radam_ref.conformance.pytest_plugin import profile_line

        pytest.fail(f"[{profile_line(radam_report)}]\n{_explain(result)}", pytrace=False)
    assert result.verdict in ("pass", "acceptable")


def test_fingerprint_matches_profile(radam_report):
    """The probes must be reproducible by the profile checked against."""
    from radam_ref import PROFILES

    _target_level(radam_report)
    fp = radam_report.fingerprint
    if fp is None:
        pytest.fail(f"no fingerprint: {radam_report.message}", pytrace=False)
    if not fp.consistent:
        pytest.fail(f"fingerprint: {fp.summary()}", pytrace=False)
    profile = radam_report.profile
    if profile in PROFILES:
        base = PROFILES[profile].config()
        wrong = [axis for axis in AXES if getattr(base, axis) not in fp.axes.get(axis, ())]
        if wrong:
            pytest.fail(f"the target does not follow profile {profile!r} on {', '.join(wrong)}: "
                        f"fingerprint {fp.summary()}", pytrace=False)
