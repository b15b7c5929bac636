"""A finding: one distinct deviation of a target, with its cause and its own scenario.

A check may report several findings (a broad precision difference and, under it, a
narrower and worse defect); each has

``id``        stable within a report: ``"<check>/<n>"`` (1-based, in the order found);
``check``     the check that found it (its ``replay`` re-runs ``scenario``);
``cause``     an id of :data:`radam_ref.conformance.causes.CAUSES`, or ``"unexplained"``;
``title``     one line: what is wrong, in the words of the cause catalogue;
``detail``    how it was established (what was isolated, what matched);
``scenario``  the minimal replayable scenario (:meth:`Scenario.to_json`), or None for a
              finding that is not a trajectory difference (e.g. a dtype note);
``extra``     keyword arguments of the check's ``replay`` (e.g. ``{"guarded_nan": True}``);
``mismatch``  the first failing step, parameter, element, expected vs got (or None);
``severity``  ``"fail"`` (a deviation beyond tolerance) or ``"note"`` (reported but not a
              failure by itself);
``also``      other cause ids that reproduce the same scenario exactly (the scenario
              cannot tell them apart; the check's designed cases usually can).
"""

from __future__ import annotations

import dataclasses

from .compare import Mismatch

__all__ = ["Finding", "mismatch_from_json"]


def mismatch_from_json(data: dict | None) -> Mismatch | None:
    """Inverse of :meth:`Mismatch.to_json` (non-finite floats were written as reprs)."""
    if data is None:
        return None
    return Mismatch(
        step=int(data["step"]),
        group=int(data["group"]),
        param=int(data["param"]),
        index=tuple(int(i) for i in data.get("index", ())),
        expected=float(data["expected"]),
        got=float(data["got"]),
        tolerance=float(data["tolerance"]),
        message=data.get("message", ""),
    )


@dataclasses.dataclass
class Finding:
    """One deviation, its cause (catalogue id or "unexplained") and its minimal scenario."""

    id: str
    check: str
    cause: str
    title: str
    detail: str = ""
    scenario: dict | None = None
    mismatch: Mismatch | None = None
    extra: dict = dataclasses.field(default_factory=dict)
    severity: str = "fail"
    also: list = dataclasses.field(default_factory=list)

    def matches_any(self, causes) -> bool:
        """Whether this finding's cause, or another exact explanation of it, is in ``causes``."""
        return self.cause in causes or bool(set(self.also) & set(causes))

    def __post_init__(self) -> None:
        if self.severity not in ("fail", "note"):
            raise ValueError(f"severity must be 'fail' or 'note', got {self.severity!r}")

    @property
    def cause_text(self) -> str:
        """The catalogue's sentence for ``cause`` (the id itself when unknown)."""
        from .causes import CAUSES

        entry = CAUSES.get(self.cause)
        return entry.text if entry is not None else self.cause

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "check": self.check,
            "cause": self.cause,
            "title": self.title,
            "detail": self.detail,
            "scenario": self.scenario,
            "extra": dict(self.extra),
            "mismatch": self.mismatch.to_json() if self.mismatch else None,
            "severity": self.severity,
            "also": list(self.also),
        }

    @classmethod
    def from_json(cls, data: dict) -> "Finding":
        return cls(
            id=data["id"],
            check=data["check"],
            cause=data["cause"],
            title=data["title"],
            detail=data.get("detail", ""),
            scenario=data.get("scenario"),
            mismatch=mismatch_from_json(data.get("mismatch")),
            extra=dict(data.get("extra") or {}),
            severity=data.get("severity", "fail"),
            also=list(data.get("also") or []),
        )
