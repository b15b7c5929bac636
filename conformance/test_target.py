"""The conformance checks as pytest tests (see :mod:`.pytest_plugin` for the flags)."""

from __future__ import annotations

import warnings

import numpy as np
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
    lines += result.notes
    if result.repro:
        lines += ["repro:", result.repro]
    return "\n".join(lines)


@pytest.mark.parametrize("check", list(CHECKS))
def test_check(check, radam_context):
    ctx, _ = radam_context
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = CHECKS[check].run(ctx)
    if result.verdict == "not supported":
        pytest.skip(f"not supported: {result.summary}")
    if result.verdict in ("fail", "error"):
        pytest.fail(_explain(result), pytrace=False)
    assert result.verdict in ("pass", "acceptable")


def test_fingerprint_matches_profile(radam_context):
    """The probes must be reproducible by the profile checked against."""
    ctx, fp = radam_context
    if not fp.consistent:
        pytest.fail(f"fingerprint: {fp.summary()}", pytrace=False)
    wrong = [axis for axis in AXES if getattr(ctx.base, axis) not in fp.axes[axis]]
    if wrong:
        pytest.fail(f"the target does not follow profile {ctx.profile!r} on {', '.join(wrong)}: "
                    f"fingerprint {fp.summary()}", pytrace=False)
