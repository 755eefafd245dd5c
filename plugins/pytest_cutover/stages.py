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
    "CONTRACT_VERDICT",
    "EXIT_BLOCKED",
    "EXIT_CODES_HELP",
    "EXIT_MEANING",
    "EXIT_PARTIAL",
    "FAILED",
    "INCOMPLETE",
    "INTERRUPTED",
    "NOT_RUN",
    "PARTIAL",
    "PASSED",
    "ROLLBACK",
    "STAGES",
    "SUCCESS",
    "VERDICTS",
    "StageMarkerError",
    "StageResult",
    "StageScope",
    "StageTracker",
    "exit_status",
    "gate",
    "run_status",
    "stage_index",
    "stage_of",
]

STAGES: tuple[str, ...] = ("precutover", "sync", "switch", "smoke", "rls", "monitor")
PASSED, FAILED, BLOCKED, NOT_RUN = "passed", "failed", "blocked", "not-run"
# A stage of which only some tests ran (-k, --deselect, -m, --lf, a narrowed path, a collection error, a
# crashed worker) is PARTIAL; one stopped by Ctrl-C is INTERRUPTED.  Neither ever unblocks a later stage.
PARTIAL, INTERRUPTED = "partial", "interrupted"
VERDICTS: tuple[str, ...] = (PASSED, FAILED, BLOCKED, PARTIAL, INTERRUPTED, NOT_RUN)
# report.json's stage vocabulary is passed | failed | blocked | not-run: a partial stage did not run as a stage.
CONTRACT_VERDICT: Mapping[str, str] = {PARTIAL: NOT_RUN, INTERRUPTED: NOT_RUN}
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


# Exit codes a script can trust: 0 only when every stage this invocation touched passed completely.
# 1-5 are pytest's own (1 tests failed, 2 interrupted, 3 internal error, 4 usage error, 5 nothing collected).
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_BLOCKED, EXIT_PARTIAL = 0, 1, 2, 6, 7
EXIT_MEANING: Mapping[int, str] = {
    EXIT_OK: "every selected stage passed completely",
    EXIT_FAILED: "a check failed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): the stage does not count",
    3: "internal error",
    4: "usage or configuration error",
    5: "no tests collected",
    EXIT_BLOCKED: "a stage was blocked by an earlier stage that has not passed",
    EXIT_PARTIAL: "a stage ran only in part (-k, --deselect, -m, --lf, paths, -x): it does not count",
}
EXIT_CODES_HELP = ", ".join(f"{code} {EXIT_MEANING[code]}" for code in (0, 1, 2, 6, 7))


def exit_status(pytest_status: int, verdicts: Iterable[str]) -> int:
    """The invocation's exit code from pytest's own and the verdicts of the stages it recorded."""
    found = set(verdicts)
    if pytest_status != EXIT_OK:
        return pytest_status
    for verdict, code in ((FAILED, EXIT_FAILED), (INTERRUPTED, EXIT_INTERRUPTED), (BLOCKED, EXIT_BLOCKED),
                          (PARTIAL, EXIT_PARTIAL)):
        if verdict in found:
            return code
    return EXIT_OK


def run_status(stage_verdicts: Mapping[str, str], *, rollback: bool, unwaived_skips: int) -> tuple[str, str]:
    """The run's verdict (SUCCESS / ROLLBACK / INCOMPLETE) and why: ROLLBACK beats everything; SUCCESS needs
    every stage passed in full, no required check skipped without a waiver and no rollback."""
    if rollback:
        return ROLLBACK, "a rollback trigger fired or a rollback ran"
    missing = [f"{s} {stage_verdicts.get(s, NOT_RUN)}" for s in STAGES if stage_verdicts.get(s) != PASSED]
    if not missing and not unwaived_skips:
        return SUCCESS, "every stage passed; no unwaived skip; no rollback trigger"
    if unwaived_skips:
        missing.append(f"{unwaived_skips} check(s) skipped without a waiver")
    return INCOMPLETE, "; ".join(missing)


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
        if prior is not None and prior.verdict in (PARTIAL, INTERRUPTED):
            how = "ran only in part" if prior.verdict == PARTIAL else "was interrupted"
            why = f" ({prior.reason})" if prior.reason else ""
            return (
                f"blocked: stage `{earlier}` {how} in run `{run}`{why}; run the whole stage with "
                f"`pytest -m {earlier}` (no -k, --deselect or paths), or `--cutover-force \"reason\"`"
            )
        return (
            f"blocked: stage `{earlier}` has not passed in run `{run}`; run `pytest -m {earlier}` first, "
            f"or `--cutover-force \"reason\"`"
        )
    return None


@dataclass(frozen=True)
class StageScope:
    """What "the whole stage" is in one invocation, so that a partial run can never pass for it.

    ``expected`` is every test of the stage in the collection *before* any selection (``-k``, ``-m``,
    ``--deselect``, ``--lf``, other plugins); ``deselected`` maps the ones left out to why.  ``narrowed``
    says why even ``expected`` cannot be trusted to be the whole stage (explicit paths, a collection
    error, ``--lf`` skipping files); ``None`` when the collection was complete.
    """

    expected: frozenset[str] = frozenset()
    deselected: Mapping[str, str] = field(default_factory=dict)
    narrowed: str | None = None
    known: bool = True


UNKNOWN_SCOPE = StageScope(known=False)
_LISTED = 5


def _listing(ids: list[str]) -> str:
    shown = ", ".join(ids[:_LISTED])
    return shown + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


@dataclass
class _TestRecord:
    nodeid: str
    outcome: str = PASSED
    message: str | None = None
    duration: float = 0.0
    runbook: str | None = None
    phases: set[str] = field(default_factory=set)

    @property
    def finished(self) -> bool:
        """Every phase pytest runs for it was reported (a skip in setup still ends with a teardown)."""
        return "teardown" in self.phases


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
    not_run: list[dict[str, str]] = field(default_factory=list)

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
        self._started: set[str] = set()

    def start(self, stage: str) -> None:
        """The stage began in this invocation (a test of it started), even if no phase ever reports."""
        self._started.add(stage)

    def record(self, stage: str, nodeid: str, when: str, outcome: str, *, message: str | None = None,
               duration: float = 0.0, blocked: str | None = None, figures: Mapping[str, Any] | None = None,
               runbook: str | None = None, start: float | None = None, stop: float | None = None,
               wasxfail: bool = False) -> None:
        """Record one phase report (``when`` is setup, call or teardown)."""
        self._started.add(stage)
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
        return [s for s in STAGES if self._tests[s] or s in self._started]

    def result(self, stage: str, scope: StageScope = UNKNOWN_SCOPE, *, interrupted: bool = False) -> StageResult:
        """The stage's verdict: PASSED only when every test of its whole scope ran in every phase and passed."""
        tests = list(self._tests[stage].values())
        counts = {k: 0 for k in ("passed", "failed", "error", "skipped", "xfailed", "blocked", "unfinished")}
        for t in tests:
            outcome = "unfinished" if t.outcome == PASSED and not t.finished else t.outcome
            counts[outcome] = counts.get(outcome, 0) + 1
        finished = {t.nodeid for t in tests if t.finished}
        not_run = self._not_run(stage, scope, finished, interrupted)
        reason = None
        if not tests and stage not in self._started:
            verdict = NOT_RUN
        elif counts["failed"] or counts["error"]:
            verdict = FAILED  # a failure is evidence, however little of the stage ran
        elif counts["blocked"]:
            verdict, reason = BLOCKED, self._block_reason.get(stage)
        elif interrupted and (not_run or not tests):  # not_run holds every unfinished test too
            verdict = INTERRUPTED
            reason = f"interrupted before {len(not_run)} test(s) ran" + (
                f": {_listing([n['id'] for n in not_run])}" if not_run else "")
        elif not scope.known:
            verdict, reason = PARTIAL, "the stage's full set of tests is unknown in this invocation"
        elif scope.narrowed:
            verdict, reason = PARTIAL, scope.narrowed
        elif not_run:
            verdict = PARTIAL
            whys = sorted({n["why"] for n in not_run})
            reason = (f"{len(not_run)} of {len(scope.expected)} test(s) did not run ({'; '.join(whys)}): "
                      f"{_listing([n['id'] for n in not_run])}")
        else:
            verdict = PASSED
        if verdict == FAILED and stage in self._first_failure:
            reason = f"first failure: {self._first_failure[stage]}"
        start, end = self._times.get(stage, (None, None))
        return StageResult(
            stage=stage,
            verdict=verdict,
            start=start,
            end=end,
            first_failure=self._first_failure.get(stage),
            reason=reason,
            counts=counts,
            tests=[
                {"id": t.nodeid, "outcome": t.outcome, "message": t.message, "duration": round(t.duration, 3),
                 "runbook": t.runbook}
                for t in tests
            ],
            figures=dict(self._figures[stage]),
            skipped=[{"id": t.nodeid, "reason": t.message or ""} for t in tests if t.outcome == "skipped"],
            not_run=not_run,
        )

    def _not_run(self, stage: str, scope: StageScope, finished: set[str], interrupted: bool) -> list[dict[str, str]]:
        """Each test of the stage's scope that did not finish here, with why."""
        seen = self._tests[stage]
        out = []
        for nodeid in sorted(scope.expected | set(seen)):
            if nodeid in finished:
                continue
            if nodeid in scope.deselected:
                why = scope.deselected[nodeid]
            elif interrupted:
                why = "interrupted"
            elif nodeid in seen:
                why = "did not finish"
            else:
                why = "never started (stopped early: -x, --maxfail or a crashed worker)"
            out.append({"id": nodeid, "why": why})
        return out
