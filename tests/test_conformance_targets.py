"""The built-in targets against their own profiles, in CI.

torch.optim.RAdam (foreach off and on, float64 and float32), optax.radam (x64 on
and off) and this project's own implementations.  Every finding against them is
either a real defect — listed in KNOWN_FINDINGS, shown with its repro on
docs/conformance-results.md — or a bug of the suite; so everything not listed
must pass (or be "not supported"), and everything listed must keep failing for
the documented reason.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from radam_ref.conformance import run_conformance
from radam_ref.conformance.adapters.registry import TargetUnavailable

EXAMPLES = max(3, settings.default.max_examples // 8)

#: (target, kwargs) -> {check: substring of the diagnosed axis or summary}
KNOWN_FINDINGS = {
    ("torch.optim.RAdam", (("foreach", True),)): {"eps_zero": "expected 0"},
    ("optax.radam", (("x64", True),)): {"autodiff": "nan", "complex": "complex convention"},
    ("optax.radam", ()): {
        "threshold": "step-scalar arithmetic",
        "long_horizon": "step-scalar arithmetic",
        "autodiff": "nan",
        "complex": "complex convention",
    },
}
#: Checks of optax without x64 that fail whenever their drawn inputs reach β₂ near 1 —
#: for the same documented reason, so a failure must name that axis.
FLOAT32_SCALARS_AXIS = "step-scalar arithmetic"

CASES = [
    ("torch.optim.RAdam", {"foreach": False}, "float64", 10_000),
    ("torch.optim.RAdam", {"foreach": False}, "float32", 10_000),
    ("torch.optim.RAdam", {"foreach": True}, "float64", 10_000),
    ("torch.optim.RAdam", {"foreach": True}, "float32", 10_000),
    ("torch.optim.RAdam", {"foreach": False, "decoupled_weight_decay": True}, "float64", 2_000),
    ("optax.radam", {"x64": True}, "float64", 10_000),
    ("optax.radam", {}, "float32", 10_000),
    ("radam_ref.step", {}, "float64", 3_000),
    ("radam_ref.step", {}, "float32", 2_000),
    ("radam_ref.optax_transform", {}, "float32", 300),
    ("radam_ref.backends.numpy", {}, "float64", 1_000),
    ("radam_ref.backends.torch", {}, "float64", 1_000),
]


def _run(name, kwargs, dtype, horizon):
    known = KNOWN_FINDINGS.get((name, tuple(sorted(kwargs.items()))), {})
    try:
        return run_conformance(name, kwargs, dtype=dtype, max_examples=EXAMPLES, horizon=horizon,
                               shrink_seconds=0.5 if known else 2.0)
    except TargetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name,kwargs,dtype,horizon", CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}-{d}"
                              for n, kw, d, _ in CASES])
def test_builtin_target_against_its_own_profile(name, kwargs, dtype, horizon):
    report = _run(name, kwargs, dtype, horizon)
    known = KNOWN_FINDINGS.get((name, tuple(sorted(kwargs.items()))), {})
    unexpected = []
    for result in report.results:
        assert result.verdict != "error", (result.check, result.summary, result.notes)
        if result.check in known:
            assert result.verdict == "fail", (result.check, "documented finding no longer found")
            text = f"{result.axis} {result.summary}".lower()
            assert known[result.check].lower() in text, (result.check, result.axis, result.summary)
            assert result.repro and result.mismatch is not None
            continue
        if result.verdict == "fail":
            if name == "optax.radam" and not kwargs.get("x64") and FLOAT32_SCALARS_AXIS in (result.axis or ""):
                continue
            unexpected.append((result.check, result.summary, result.axis))
    assert not unexpected, unexpected
    if name.startswith("radam_ref"):
        assert report.conforms
    fp = report.fingerprint
    if not (name == "optax.radam" and not kwargs.get("x64")):
        assert fp.consistent and report.profile in fp.profiles, fp.summary()
