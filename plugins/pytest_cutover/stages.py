"""Stage order and the gating policy: pure logic, no pytest, no I/O.

A stage's verdict aggregates every phase (setup, call, teardown) of every one of
its items, so one teardown error fails the stage; a later result never
overwrites an earlier failure (the "last result wins" defect of
pytest-dependency).  :func:`gate` decides whether a stage may start, from the
verdicts of the stages before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BLOCKED",
    "FAILED",
    "INCOMPLETE",
    "NOT_RUN",
    "PASSED",
    "ROLLBACK",
    "STAGES",
    "SUCCESS",
    "VERDICTS",
    "StageMarkerError",
    "StageResult",
    "StageTracker",
    "gate",
    "stage_index",
    "stage_of",
]

STAGES: tuple[str, ...] = ("precutover", "sync", "switch", "smoke", "rls", "monitor")
PASSED, FAILED, BLOCKED, NOT_RUN = "passed", "failed", "blocked", "not-run"
VERDICTS: tuple[str, ...] = (PASSED, FAILED, BLOCKED, NOT_RUN)
SUCCESS, ROLLBACK, INCOMPLETE = "SUCCESS", "ROLLBACK", "INCOMPLETE"

STAGE_HELP: Mapping[str, str] = {
    "precutover": "Day 7 pre-cutover validation: code, data counts, infrastructure, team",
    "sync": "Steps 1-2: maintenance mode on, final vector/BLOB sync, consistency checks",
    "switch": "Steps 3-4: DATABASE_URL to the transaction pooler, restart the backend",
    "smoke": "Step 5: smoke tests after the restart",
    "rls": "row-level security isolation in depth, through the pooler",
    "monitor": "Steps 6-7: watch the window, decide rollback triggers, maintenance off",
}
_MESSAGE_LIMIT = 2000


class StageMarkerError(ValueError):
    """A test carries more than one stage marker."""


def stage_index(stage: str) -> int:
    """Position of ``stage`` in the cutover order."""
    return STAGES.index(stage)


def stage_of(nodeid: str, marker_names: Iterable[str]) -> str | None:
    """The single stage among ``marker_names``; ``None`` for an unstaged test."""
    found = sorted({m for m in marker_names if m in STAGES}, key=stage_index)
    if len(found) > 1:
        raise StageMarkerError(
            f"{nodeid} has {len(found)} stage markers ({', '.join(found)}): a test belongs to exactly one stage"
        )
    return found[0] if found else None


@dataclass(frozen=True)
class PriorVerdict:
    """What gating needs to know about one earlier stage."""

    verdict: str
    first_failure: str | None = None
    reason: str | None = None


def gate(stage: str, verdicts: Mapping[str, PriorVerdict | None], run: str) -> str | None:
    """Why ``stage`` may not start (a 'blocked' reason), or ``None`` when every earlier stage passed."""
    for earlier in STAGES[: stage_index(stage)]:
        prior = verdicts.get(earlier)
        if prior is not None and prior.verdict == PASSED:
            continue
        if prior is not None and prior.verdict == FAILED:
            where = f" (first failure: {prior.first_failure})" if prior.first_failure else ""
            return (
                f"blocked: stage `{earlier}` failed in run `{run}`{where}; fix it and re-run "
                f"`pytest -m {earlier}`, or `--cutover-force \"reason\"`"
            )
        return (
            f"blocked: stage `{earlier}` has not passed in run `{run}`; run `pytest -m {earlier}` first, "
            f"or `--cutover-force \"reason\"`"
        )
    return None


@dataclass
class _TestRecord:
    nodeid: str
    outcome: str = PASSED
    message: str | None = None
    duration: float = 0.0
    runbook: str | None = None
    phases: set[str] = field(default_factory=set)


@dataclass
class StageResult:
    """The verdict of one stage in one invocation, ready for the ledger."""

    stage: str
    verdict: str
    start: float | None
    end: float | None
    first_failure: str | None
    reason: str | None
    counts: dict[str, int]
    tests: list[dict[str, Any]]
    figures: dict[str, Any]
    skipped: list[dict[str, str]]

    def prior(self) -> PriorVerdict:
        return PriorVerdict(self.verdict, self.first_failure, self.reason)


class StageTracker:
    """Collects phase reports per stage and decides each stage's verdict."""

    def __init__(self) -> None:
        self._tests: dict[str, dict[str, _TestRecord]] = {s: {} for s in STAGES}
        self._first_failure: dict[str, str] = {}
        self._block_reason: dict[str, str] = {}
        self._figures: dict[str, dict[str, Any]] = {s: {} for s in STAGES}
        self._times: dict[str, list[float]] = {}

    def record(self, stage: str, nodeid: str, when: str, outcome: str, *, message: str | None = None,
               duration: float = 0.0, blocked: str | None = None, figures: Mapping[str, Any] | None = None,
               runbook: str | None = None, start: float | None = None, stop: float | None = None,
               wasxfail: bool = False) -> None:
        """Record one phase report (``when`` is setup, call or teardown)."""
        test = self._tests[stage].setdefault(nodeid, _TestRecord(nodeid, runbook=runbook))
        test.phases.add(when)
        test.duration += duration
        if figures:
            self._figures[stage].update(figures)
        if start is not None and stop is not None:
            times = self._times.setdefault(stage, [start, stop])
            times[0], times[1] = min(times[0], start), max(times[1], stop)
        if blocked:
            self._block_reason.setdefault(stage, blocked)
            if test.outcome == PASSED:
                test.outcome, test.message = BLOCKED, blocked
            return
        if outcome == "failed":
            if test.outcome not in ("failed", "error"):
                test.outcome = "failed" if when == "call" else "error"
                test.message = (message or "")[:_MESSAGE_LIMIT]
            self._first_failure.setdefault(stage, nodeid)
        elif outcome == "skipped" and test.outcome == PASSED:
            test.outcome = "xfailed" if wasxfail else "skipped"
            test.message = (message or "")[:_MESSAGE_LIMIT]

    def stages_seen(self) -> list[str]:
        return [s for s in STAGES if self._tests[s]]

    def result(self, stage: str, *, interrupted: bool = False) -> StageResult:
        """The stage's verdict from everything recorded so far."""
        tests = list(self._tests[stage].values())
        counts = {k: 0 for k in ("passed", "failed", "error", "skipped", "xfailed", "blocked")}
        for t in tests:
            counts[t.outcome] = counts.get(t.outcome, 0) + 1
        unfinished = [t.nodeid for t in tests if "teardown" not in t.phases and t.outcome != BLOCKED]
        reason = None
        if not tests:
            verdict = NOT_RUN
        elif counts["failed"] or counts["error"]:
            verdict = FAILED
        elif counts["blocked"]:
            verdict, reason = BLOCKED, self._block_reason.get(stage)
        elif interrupted and unfinished:
            verdict, reason = FAILED, f"interrupted before {unfinished[0]} finished"
        else:
            verdict = PASSED
        if verdict == FAILED and reason is None and stage in self._first_failure:
            reason = f"first failure: {self._first_failure[stage]}"
        start, end = self._times.get(stage, (None, None))
        return StageResult(
            stage=stage,
            verdict=verdict,
            start=start,
            end=end,
            first_failure=self._first_failure.get(stage) or (unfinished[0] if interrupted and unfinished else None),
            reason=reason,
            counts=counts,
            tests=[
                {"id": t.nodeid, "outcome": t.outcome, "message": t.message, "duration": round(t.duration, 3),
                 "runbook": t.runbook}
                for t in tests
            ],
            figures=dict(self._figures[stage]),
            skipped=[{"id": t.nodeid, "reason": t.message or ""} for t in tests if t.outcome == "skipped"],
        )
