"""Planned against actual (report/plan.py, cutover status) and the running migration's ETA."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from pytest_cutover.ledger import Ledger
from pytest_cutover.plan.estimate import Budget, Counts, make_plan
from pytest_cutover.plan.figures import run_figures
from pytest_cutover.plan.progress import eta_from, migration_eta
from pytest_cutover.report.plan import plan_versus_actual

from .factory import T0, at, night


def recorded_plan(when: float) -> dict:
    plan = make_plan("night", Counts(points=1000, blob_rows=40, blob_bytes=4_000_000),
                     Budget(window_start=T0, window_minutes=60, monitor_window_s=8.0),
                     [run_figures("rehearsal", night())])
    return {"kind": "plan", **plan.as_dict(), "ts": at(when)}


def test_the_plan_recorded_before_the_night_is_compared_step_by_step() -> None:
    records = night()
    records.insert(2, recorded_plan(-30))  # after precutover, before maintenance-on
    versus = plan_versus_actual(records, None, "night")
    assert versus.source.startswith("plan recorded by `cutover plan` at 2026-11-26T07:59:30")
    assert versus.window_minutes == 60 and versus.fits is True
    restart = next(r for r in versus.rows if r.step == "restart")
    assert restart.state == "done" and restart.actual_s == pytest.approx(1.8)
    assert restart.delta_s == pytest.approx(1.8 - restart.planned_s)  # type: ignore[operator]
    assert versus.actual_total_s == pytest.approx(24.9)  # maintenance-on start (0.1) to the last delivery (25.0)


def test_a_plan_made_after_the_night_began_is_not_the_plan() -> None:
    records = [*night(), recorded_plan(100)]
    versus = plan_versus_actual(records, None, "night")
    assert versus.source.startswith("no plan recorded before the night: estimated from the run's records before")
    # before the night this run had measured nothing: the migration cannot be estimated, and it says why
    sync = next(r for r in versus.rows if r.step == "final-sync")
    assert sync.planned_s is None and "no measured vector pass" in (sync.missing or "")
    assert sync.actual_s == pytest.approx(9.5)


def test_the_eta_extrapolates_the_rate_so_far() -> None:
    eta = eta_from(250, 1000, T0, T0 + timedelta(seconds=10))
    assert eta.points_per_s == 25.0 and eta.remaining_s == 30.0 and eta.finish == "2026-11-26T08:00:40Z"
    assert "250 of 1000 points read at 25.0 points/s: 30.0 s left" in eta.line()
    assert eta_from(0, 1000, T0, T0 + timedelta(seconds=5)).reason == "no batch committed yet: no rate to extrapolate"
    assert "unknown" in (eta_from(5, None, T0, T0).reason or "")


def test_without_a_target_the_eta_is_omitted_with_the_reason() -> None:
    eta = migration_eta(None, "night", T0, 1000, T0)
    assert eta.reason is not None and "target.database_url" in eta.reason
    assert eta.line().startswith("final sync ETA: omitted: ")


def test_status_shows_planned_against_actual_and_the_eta_while_the_sync_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    ledger = Ledger.for_run(tmp_path / "reports", "night")
    for record in [*night()[:2], recorded_plan(-30), *night()[2:4]]:  # the sync stage is under way
        ledger.append(record)
    assert main(["status", "--run", "night", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["step"]: r for r in data["plan"]["rows"]}
    assert rows["maintenance-on"]["state"] == "done" and rows["final-sync"]["state"] == "running"
    assert rows["restart"]["state"] == "pending" and rows["restart"]["planned_s"] is not None
    assert "target.database_url" in data["eta"]["reason"]
    assert main(["status", "--run", "night"]) == 0
    out = capsys.readouterr().out
    assert "plan versus actual" in out and "Step 2: final data sync" in out and "running" in out
    assert "final sync ETA: omitted" in out
