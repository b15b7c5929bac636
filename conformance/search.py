"""Run a Hypothesis property programmatically and keep the minimal failing case.

The checks that draw hyperparameters and gradient streams call :func:`search`
with a strategy of :class:`~.scenario.Scenario` and an ``evaluate(scenario) ->
Outcome`` function.  Hypothesis generates up to ``max_examples`` scenarios; on a
failure it shrinks to a minimal failing one, which :func:`search` returns with
its outcome.  Outcomes are memoised by the scenario's exact JSON, so shrinking
never re-runs a target on a case it has seen, and the number of *new* cases tried
while shrinking is capped (``shrink_budget``): past it, unseen cases count as
passing, which ends shrinking at the smallest failure found so far; and
shrinking stops after ``shrink_seconds`` in any case.
"""

from __future__ import annotations

import contextlib
import dataclasses

from .adapters.base import NotSupported

__all__ = ["SearchResult", "search"]


@contextlib.contextmanager
def _shrink_time_limit(seconds: float):
    """Cap Hypothesis's shrinking time (its default is 300 s) for this search."""
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover
        yield
        return
    old = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if old is None:  # pragma: no cover - a Hypothesis without the constant
        yield
        return
    engine.MAX_SHRINKING_SECONDS = seconds
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = old


@dataclasses.dataclass
class SearchResult:
    examples: int = 0
    acceptable: int = 0
    notes: list = dataclasses.field(default_factory=list)
    failure: tuple | None = None  # (scenario, outcome)
    unsupported: str | None = None


class _Found(Exception):
    def __init__(self, case, outcome) -> None:
        super().__init__("conformance failure")
        self.case, self.outcome = case, outcome


def search(strategy, evaluate, *, max_examples: int, seed: int, shrink_budget: int = 60,
           shrink_seconds: float = 10.0, on_example=None) -> SearchResult:
    """Draw scenarios from ``strategy``; return the minimal failure, if any."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable

    result = SearchResult()
    memo: dict = {}
    state = {"failed": False, "after_fail": 0, "unsupported": None}

    def prop(case):
        key = case.dumps()
        outcome = memo.get(key)
        if outcome is None:
            if state["failed"]:
                if state["after_fail"] >= shrink_budget:
                    return
                state["after_fail"] += 1
            try:
                outcome = evaluate(case)
            except NotSupported as exc:
                state["unsupported"] = str(exc)
                reject()
            memo[key] = outcome
            if not state["failed"]:
                result.examples += 1
                if on_example:
                    on_example()
            if outcome.verdict == "acceptable":
                result.acceptable += 1
                for note in outcome.notes:
                    if note not in result.notes:
                        result.notes.append(note)
        if outcome.verdict == "fail":
            state["failed"] = True
            raise _Found(case, outcome)

    test = settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
    )(hseed(seed)(given(strategy)(prop)))
    try:
        with _shrink_time_limit(shrink_seconds):
            test()
    except _Found as found:
        result.failure = (found.case, found.outcome)
    except Unsatisfiable:
        result.unsupported = state["unsupported"] or "no drawn case could be run"
    if result.examples == 0 and result.failure is None and state["unsupported"]:
        result.unsupported = state["unsupported"]
    return result
