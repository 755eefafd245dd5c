"""The fault matrix's pure parts: how each fault is rehearsed, how a row is read, and that a bad reset is caught."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pytest_cutover.rehearsal import faults as catalog
from pytest_cutover.rehearsal import matrix
from pytest_cutover.rehearsal.attached import RuntimeFaultTarget, attached_environ
from pytest_cutover.rehearsal.errors import RehearsalError


def test_reversible_before_precutover_faults_and_monitor_faults_share_a_stack_and_the_rest_get_their_own() -> None:
    kinds = {f.name: matrix.matrix_kind(f) for f in catalog.list_faults()}
    assert kinds["rls-disabled"] == kinds["dirty-git"] == kinds["stale-backup"] == "shared-precutover"
    assert kinds["error-spike"] == kinds["cross-org-leak"] == "shared-monitor"
    assert {kinds[name] for name in (*catalog.SURFACE_FAULTS, "missing-attestation", "on-call-gap")} == {
        "shared-precutover"}
    # Data the sync stage migrates, a build-time certificate, and stages after a migration: fresh stacks.
    for name in ("missing-point", "vector-altered", "tls-expiring", "app-fails-start", "private-tier-leak"):
        assert kinds[name] == "fresh", name


def test_a_fault_without_an_undoer_refuses_to_be_undone() -> None:
    with pytest.raises(RehearsalError, match="nan-vector cannot be undone"):
        catalog.undo(SimpleNamespace(), "nan-vector")


def test_matrix_row_reads_the_first_failed_stage_every_failure_and_every_verdict() -> None:
    report = {"status": "INCOMPLETE", "stages": [
        {"name": "precutover", "verdict": "passed", "tests": []},
        {"name": "sync", "verdict": "failed", "tests": [
            {"id": "a", "outcome": "passed", "message": ""},
            {"id": "b", "outcome": "failed", "message": "AssertionError: 1 rejected (nan-or-inf 1)\nmore"},
            {"id": "c", "outcome": "error", "message": "postgresql://u:hunter2@h/db unreachable"}]},
        {"name": "switch", "verdict": "not-run", "tests": []}]}
    row = matrix.matrix_row("nan-vector", "sync", report)
    assert row.caught and row.failed == "sync"
    assert row.message == "AssertionError: 1 rejected (nan-or-inf 1)"
    assert len(row.messages) == 2 and "hunter2" not in row.messages[1]
    assert dict(row.verdicts) == {"precutover": "passed", "sync": "failed", "switch": "not-run"}


def test_a_report_where_nothing_failed_is_a_row_that_was_not_caught() -> None:
    row = matrix.matrix_row("slow-search", "monitor", {"status": "SUCCESS", "stages": [
        {"name": "monitor", "verdict": "passed", "tests": []}]})
    assert not row.caught and "status SUCCESS" in row.message


def test_only_during_monitor_faults_can_be_planted_from_the_suites_process(tmp_path: Path) -> None:
    with pytest.raises(RehearsalError, match="rls-disabled cannot be planted from the suite"):
        attached_environ(tmp_path / "faults.json", ["rls-disabled"], 6.0)
    env = attached_environ(tmp_path / "faults.json", ["slow-search"], 6.0)
    target = RuntimeFaultTarget(Path(env["CUTOVER_REHEARSAL_FAULTS_FILE"]), ["slow-search"])
    target.plant("slow-search")
    assert json.loads((tmp_path / "faults.json").read_text()) == {"slow-search": 250}
    with pytest.raises(RehearsalError, match="not during the monitor window"):
        target.plant("dirty-git")


def test_an_undo_that_does_not_restore_the_stack_stops_the_matrix(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """The reset is checked, never assumed: a state that differs from the baseline after an undo is an error
    naming the fault and what is still different."""
    states = iter([{"catalog": "table threads rls=true"}, {"catalog": "table threads rls=false"}])
    monkeypatch.setattr(matrix, "stack_state", lambda stack: next(states))
    undone: list[str] = []
    stack = SimpleNamespace(undo=undone.append, workdir=tmp_path / "stack")
    shared = matrix.SharedStack(stack, tmp_path, monitor_window_s=6.0)
    with pytest.raises(RehearsalError, match=r"undoing fault rls-disabled did not restore.*rls=true.*rls=false"):
        shared._undo("rls-disabled")
    assert undone == ["rls-disabled"]


def test_git_state_reads_head_status_branches_and_origin_of_the_checkout(tmp_path: Path) -> None:
    catalog.run_git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "a.txt").write_text("1\n", encoding="utf-8")
    catalog.run_git(tmp_path, "add", "a.txt")
    catalog.run_git(tmp_path, "commit", "-q", "-m", "one")
    state = matrix._git_state(tmp_path)
    head = catalog.run_git(tmp_path, "rev-parse", "HEAD").stdout.strip()
    assert state == {"head": head, "status": "", "branches": "main", "origin": ""}  # no origin: empty, not raised
    (tmp_path / "a.txt").write_text("2\n", encoding="utf-8")
    assert matrix._git_state(tmp_path)["status"] == "M a.txt"
    with pytest.raises(RehearsalError, match="not a healthy git repository"):
        catalog.run_git(tmp_path, "rev-parse", "no-such-rev")
