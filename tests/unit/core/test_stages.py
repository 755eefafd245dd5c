"""The pure gating core: stage order, verdict aggregation, blocked reasons."""

from __future__ import annotations

import pytest

from pytest_cutover.stages import (
    BLOCKED,
    EXIT_BLOCKED,
    EXIT_PARTIAL,
    FAILED,
    INCOMPLETE,
    INTERRUPTED,
    NOT_RUN,
    PARTIAL,
    PASSED,
    ROLLBACK,
    STAGES,
    SUCCESS,
    PriorVerdict,
    StageMarkerError,
    StageScope,
    StageTracker,
    exit_status,
    gate,
    run_status,
    stage_of,
)


def _finish(tracker: StageTracker, stage: str, nodeid: str, outcome: str = "passed") -> None:
    for when in ("setup", "call", "teardown"):
        tracker.record(stage, nodeid, when, outcome if when == "call" else "passed")


def test_stage_order_is_the_runbook_order() -> None:
    assert STAGES == ("precutover", "sync", "switch", "smoke", "rls", "monitor")


@pytest.mark.parametrize(
    ("markers", "expected"),
    [([], None), (["parametrize"], None), (["smoke"], "smoke"), (["slow", "rls"], "rls")],
)
def test_stage_of(markers: list[str], expected: str | None) -> None:
    assert stage_of("t.py::x", markers) == expected


def test_two_stage_markers_is_an_error_naming_both() -> None:
    with pytest.raises(StageMarkerError) as err:
        stage_of("t.py::x", ["smoke", "sync"])
    assert str(err.value) == "t.py::x has 2 stage markers (sync, smoke): a test belongs to exactly one stage"


def test_gate_passes_when_every_earlier_stage_passed() -> None:
    verdicts = {s: PriorVerdict(PASSED) for s in STAGES[:3]}
    assert gate("smoke", verdicts, "r") is None
    assert gate("precutover", {}, "r") is None


def test_gate_names_the_failed_stage_and_first_failure() -> None:
    verdicts = {"precutover": PriorVerdict(PASSED), "sync": PriorVerdict(FAILED, "t.py::test_vectors")}
    reason = gate("smoke", verdicts, "prod-2026-11-26")
    assert reason == (
        "blocked: stage `sync` failed in run `prod-2026-11-26` (first failure: t.py::test_vectors); "
        "fix it and re-run `pytest -m sync`, or `--cutover-force \"reason\"`"
    )


def test_gate_names_the_first_stage_that_has_not_passed() -> None:
    verdicts = {"precutover": PriorVerdict(PASSED), "sync": PriorVerdict(PASSED), "switch": None}
    reason = gate("smoke", verdicts, "prod-2026-11-26")
    assert reason == (
        "blocked: stage `switch` has not passed in run `prod-2026-11-26`; run `pytest -m switch` first, "
        "or `--cutover-force \"reason\"`"
    )
    assert "stage `precutover` has not passed" in gate("smoke", {"sync": PriorVerdict(PASSED)}, "r")
    assert "stage `sync` has not passed" in gate("switch", {"precutover": PriorVerdict(PASSED),
                                                            "sync": PriorVerdict(BLOCKED)}, "r")


@pytest.mark.parametrize("failing_phase", ["setup", "call", "teardown"])
def test_a_failure_in_any_phase_fails_the_stage(failing_phase: str) -> None:
    tracker = StageTracker()
    for when in ("setup", "call", "teardown"):
        tracker.record("sync", "t.py::a", when, "failed" if when == failing_phase else "passed", message="boom")
        tracker.record("sync", "t.py::b", when, "passed")
    result = tracker.result("sync")
    assert result.verdict == FAILED
    assert result.first_failure == "t.py::a"  # a failure fails the stage whatever its scope
    expected = "failed" if failing_phase == "call" else "error"
    assert [t["outcome"] for t in result.tests] == [expected, "passed"]


def test_a_later_pass_never_overwrites_an_earlier_failure() -> None:
    tracker = StageTracker()
    tracker.record("sync", "t.py::a", "call", "failed", message="first")
    tracker.record("sync", "t.py::a", "teardown", "passed")
    tracker.record("sync", "t.py::b", "call", "passed")
    assert tracker.result("sync").verdict == FAILED
    assert tracker.result("sync").tests[0]["message"] == "first"


def test_blocked_and_skipped_and_not_run() -> None:
    tracker = StageTracker()
    tracker.record("smoke", "t.py::a", "setup", "skipped", blocked="blocked: x")
    tracker.record("rls", "t.py::b", "setup", "skipped", message="missing config key target.database_url")
    tracker.record("rls", "t.py::b", "teardown", "passed")
    assert tracker.result("smoke").verdict == BLOCKED
    assert tracker.result("smoke").reason == "blocked: x"
    rls = tracker.result("rls", StageScope(frozenset({"t.py::b"})))
    assert rls.verdict == PASSED
    assert rls.skipped == [{"id": "t.py::b", "reason": "missing config key target.database_url"}]
    assert tracker.result("monitor").verdict == NOT_RUN


def test_an_interrupted_stage_is_interrupted_naming_what_did_not_run() -> None:
    tracker = StageTracker()
    tracker.record("monitor", "t.py::watch", "setup", "passed")
    result = tracker.result("monitor", StageScope(frozenset({"t.py::watch", "t.py::after"})), interrupted=True)
    assert result.verdict == INTERRUPTED
    assert result.reason == "interrupted before 2 test(s) ran: t.py::after, t.py::watch"
    assert result.not_run == [{"id": "t.py::after", "why": "interrupted"}, {"id": "t.py::watch", "why": "interrupted"}]


def test_a_stage_started_but_interrupted_before_any_report_is_interrupted() -> None:
    tracker = StageTracker()
    tracker.start("sync")
    result = tracker.result("sync", StageScope(frozenset({"t.py::a"})), interrupted=True)
    assert (result.verdict, result.not_run) == (INTERRUPTED, [{"id": "t.py::a", "why": "interrupted"}])
    assert "sync" in tracker.stages_seen()


def test_only_the_whole_scope_passes() -> None:
    tracker = StageTracker()
    _finish(tracker, "sync", "t.py::a")
    whole = StageScope(frozenset({"t.py::a"}))
    assert tracker.result("sync", whole).verdict == PASSED
    part = tracker.result("sync", StageScope(frozenset({"t.py::a", "t.py::b"}), {"t.py::b": "deselected by -k 'a'"}))
    assert part.verdict == PARTIAL
    assert part.reason == "1 of 2 test(s) did not run (deselected by -k 'a'): t.py::b"
    assert part.not_run == [{"id": "t.py::b", "why": "deselected by -k 'a'"}]
    stopped = tracker.result("sync", StageScope(frozenset({"t.py::a", "t.py::c"})))
    assert stopped.verdict == PARTIAL and "never started" in stopped.reason
    narrowed = tracker.result("sync", StageScope(whole.expected, narrowed="collection narrowed to t.py::a"))
    assert (narrowed.verdict, narrowed.reason) == (PARTIAL, "collection narrowed to t.py::a")
    assert tracker.result("sync").verdict == PARTIAL  # no scope known (e.g. no manifest from the workers)


def test_a_failure_in_a_partial_run_still_fails_the_stage() -> None:
    tracker = StageTracker()
    _finish(tracker, "sync", "t.py::a", "failed")
    scope = StageScope(frozenset({"t.py::a", "t.py::b"}), {"t.py::b": "deselected by -k 'a'"})
    assert tracker.result("sync", scope).verdict == FAILED


@pytest.mark.parametrize(("prior", "words"), [(PARTIAL, "ran only in part"), (INTERRUPTED, "was interrupted")])
def test_partial_and_interrupted_stages_block_the_next(prior: str, words: str) -> None:
    reason = gate("sync", {"precutover": PriorVerdict(prior, None, "1 of 3 test(s) did not run")}, "r")
    assert reason is not None and words in reason and "1 of 3 test(s) did not run" in reason
    assert "pytest -m precutover" in reason


@pytest.mark.parametrize(("pytest_code", "verdicts", "code"), [
    (0, [PASSED, PASSED], 0),
    (0, [PASSED, BLOCKED], EXIT_BLOCKED),
    (0, [PARTIAL], EXIT_PARTIAL),
    (0, [BLOCKED, PARTIAL], EXIT_BLOCKED),
    (2, [INTERRUPTED], 2),
    (1, [FAILED, BLOCKED], 1),
    (0, [], 0),
])
def test_exit_status(pytest_code: int, verdicts: list[str], code: int) -> None:
    assert exit_status(pytest_code, verdicts) == code


def test_run_status_is_decided_next_to_the_gate() -> None:
    every = dict.fromkeys(STAGES, PASSED)
    assert run_status(every, rollback=False, unwaived_skips=0)[0] == SUCCESS
    assert run_status(every, rollback=True, unwaived_skips=0)[0] == ROLLBACK
    status, why = run_status({**every, "sync": PARTIAL}, rollback=False, unwaived_skips=1)
    assert status == INCOMPLETE and why == "sync partial; 1 check(s) skipped without a waiver"


def test_figures_and_times_are_aggregated() -> None:
    tracker = StageTracker()
    tracker.record("sync", "t.py::a", "call", "passed", figures={"points": 5}, start=10.0, stop=11.0)
    tracker.record("sync", "t.py::b", "call", "passed", figures={"missing": 0}, start=11.0, stop=13.5)
    result = tracker.result("sync")
    assert result.figures == {"points": 5, "missing": 0}
    assert (result.start, result.end) == (10.0, 13.5)


def test_rehearse_until_exits_0_when_every_stage_up_to_it_passed() -> None:
    from pytest_cutover.rehearsal.cli import rehearsal_exit

    rows = [{"stage": s, "verdict": PASSED if s == "precutover" else NOT_RUN} for s in STAGES]
    assert rehearsal_exit(INCOMPLETE, rows, "precutover") == 0
    assert rehearsal_exit(INCOMPLETE, rows, "sync") == 1
    assert rehearsal_exit(INCOMPLETE, rows, None) == 1
    failed = [{**rows[0], "verdict": FAILED}, *rows[1:]]
    assert rehearsal_exit(INCOMPLETE, failed, "precutover") == 1
    assert rehearsal_exit(ROLLBACK, rows, "precutover") == 1
    assert rehearsal_exit(SUCCESS, [{"stage": s, "verdict": PASSED} for s in STAGES], None) == 0
