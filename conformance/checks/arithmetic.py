"""The arithmetic precision of the update, reported once.

A target that updates float64 parameters in float32 (``p.data.float()`` …
``p.data.copy_(p_fp32)``), keeps its moments in float32, computes its step
scalars in float32 or rounds its hyperparameters to float32 deviates from the
spec everywhere at float32-rounding size.  That is one finding, found here by
:func:`~..fingerprint.detect_precision` (two probes with full-mantissa values at
β₂ = 0.9 and 0.9999, compared with every axis combination at the float64 and then
the float32 tolerance); every other check then compares at the precision found
(``Context.tol_dtype``), so the target's other deviations are still found, each
with its own cause, instead of a wall of float32-rounding failures.
"""

from __future__ import annotations

from .._dtypes import real_dtype
from ..compare import Outcome
from ..findings import Finding
from ..scenario import Scenario
from .base import CheckResult, check, result_from_findings, timed

__all__ = ["arithmetic"]


@check("arithmetic", "Arithmetic precision of the update", "precision")
@timed
def arithmetic(ctx) -> CheckResult:
    """See the module docstring."""
    from ..causes import CAUSES
    from ..fingerprint import detect_precision

    fp = ctx.fingerprint
    prec = getattr(fp, "precision", None) if fp is not None else None
    if prec is None or real_dtype(ctx.dtype) != real_dtype(ctx.target.default_dtype):
        prec = detect_precision(ctx.target, ctx.base, ctx.dtype)
        if prec.tol_dtype and ctx.tol_dtype is None:
            ctx.tol_dtype = prec.tol_dtype
        for key, value in prec.model.items():
            ctx.model.setdefault(key, value)
    if not prec.causes:
        return CheckResult("arithmetic", "pass", f"{ctx.dtype} arithmetic ({prec.detail})")
    findings = []
    for cause in prec.causes:
        mismatch = None
        if prec.scenario is not None:
            outcome: Outcome = ctx.judge(Scenario.from_json(prec.scenario), tol_dtype=None, model=None)
            mismatch = outcome.mismatch
        findings.append(Finding(
            id=f"arithmetic/{len(findings) + 1}", check="arithmetic", cause=cause, title=CAUSES[cause].text,
            detail=(f"{prec.detail}; the other checks look past it (" + (
                f"they compare at the {prec.tol_dtype} tolerance" if prec.tol_dtype else
                "their oracle computes the step scalars the same way") + ") so that other deviations still show"),
            scenario=prec.scenario, mismatch=mismatch))
    return result_from_findings(ctx, "arithmetic", findings, passed_summary="")
