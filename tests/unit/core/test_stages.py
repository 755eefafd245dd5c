"""The pure gating core: stage order, verdict aggregation, blocked reasons."""

from __future__ import annotations

import pytest

from pytest_cutover.stages import (
    BLOCKED,
    FAILED,
    NOT_RUN,
    PASSED,
    STAGES,
    PriorVerdict,
    StageMarkerError,
    StageTracker,
    gate,
    stage_of,
)


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
    assert result.first_failure == "t.py::a"
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
    rls = tracker.result("rls")
    assert rls.verdict == PASSED
    assert rls.skipped == [{"id": "t.py::b", "reason": "missing config key target.database_url"}]
    assert tracker.result("monitor").verdict == NOT_RUN


def test_an_interrupted_stage_fails_naming_the_unfinished_test() -> None:
    tracker = StageTracker()
    tracker.record("monitor", "t.py::watch", "setup", "passed")
    result = tracker.result("monitor", interrupted=True)
    assert result.verdict == FAILED
    assert result.reason == "interrupted before t.py::watch finished"


def test_figures_and_times_are_aggregated() -> None:
    tracker = StageTracker()
    tracker.record("sync", "t.py::a", "call", "passed", figures={"points": 5}, start=10.0, stop=11.0)
    tracker.record("sync", "t.py::b", "call", "passed", figures={"missing": 0}, start=11.0, stop=13.5)
    result = tracker.result("sync")
    assert result.figures == {"points": 5, "missing": 0}
    assert (result.start, result.end) == (10.0, 13.5)
