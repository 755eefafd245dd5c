"""``cutover status`` (rolling window, --week1) and ``cutover decommission`` on synthetic week-long ledgers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_cutover.cli import main
from pytest_cutover.ledger import Ledger

from .factory import clean_week, iso, night, reachable, watch

RUN = "prod-2026-11-26"


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (no cutover.toml) with a reports folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    return tmp_path / "reports"


def _week_ending_now(reports: Path, *, days: float = 7.5, reachable_days: float | None = 7.2) -> datetime:
    """A clean week whose switch was ``days`` ago, so the commands judge it at the real time."""
    switch = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days)
    ledger = clean_week(Ledger.for_run(reports, RUN).path, switch, days=int(days) + 1)
    if reachable_days is not None:
        reachable(ledger, switch + timedelta(days=reachable_days))
    return switch


def test_status_shows_the_rolling_window_and_the_week1_verdicts(reports: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    switch = _week_ending_now(reports)
    at = iso(switch + timedelta(days=7, hours=6))
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--week1", "--at", at]) == 0
    out = capsys.readouterr().out
    assert "monitor" in out and "passed" in out  # the stage table is still there
    lines = out.splitlines()
    rolling = next(i for i, line in enumerate(lines) if line.startswith("rolling monitor window:"))
    assert lines[rolling].startswith("rolling monitor window: 74 pass(es), 36.88 h monitored (")
    # as of --at: 49 passes on the first day, then 25 six-hourly ones, 540 probes and 3 searches each
    assert lines[rolling + 1] == ("  error rate 0.00% (0 of 39960 probes); logged request error rate 0.00% (0 of "
                                  "148000)")
    assert lines[rolling + 2] == "  search p95 40.0 ms (n=222)"
    assert lines[rolling + 3] == "  incidents: none"
    week = lines[rolling + 4:]
    assert week[0] == f"Week 1 (evaluated at {at[:19]}Z; switch at {iso(switch)[:19]}Z):"
    verdicts = [line.split()[0] for line in week[1:6]]
    assert verdicts == ["PASSED"] * 5, "\n".join(week)
    assert week[1].startswith("  PASSED  Monitoring continued for 24 hours: 24 h after the switch at")
    assert week[5].startswith("  PASSED  Old infrastructure decommission-ready (after 7 days stable): 7 days of")


def test_status_json_keeps_its_shape_and_adds_the_rolling_window(reports: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    switch = _week_ending_now(reports, days=5, reachable_days=None)
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--json", "--week1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sorted(data) == ["eta", "ledger", "monitor_rolling", "plan", "run", "run_source", "stages", "week1"]
    assert [s["verdict"] for s in data["stages"]] == ["passed"] * 6
    assert data["monitor_rolling"]["passes"] == 65  # as of now: the factory's later passes are in the future
    assert data["week1"]["switch"] == iso(switch)[:19] + "Z"
    by_name = {c["name"]: c["verdict"] for c in data["week1"]["checks"]}
    assert by_name == {"monitoring-24h": "passed", "no-critical-issues": "passed", "error-rate": "passed",
                       "blob-migration": "passed", "decommission-ready": "pending"}
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--json"]) == 0
    assert "week1" not in json.loads(capsys.readouterr().out)


def test_status_week1_exits_1_on_a_failed_check(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = Ledger.for_run(reports, RUN)
    switch = datetime.now(UTC) - timedelta(days=2)
    night(ledger, switch)
    watch(ledger, switch + timedelta(minutes=10), switch + timedelta(hours=5))  # then nothing: a 19-hour gap
    assert main(["status", "--run", RUN, "--reports-dir", str(reports)]) == 0
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--week1"]) == 1
    out = capsys.readouterr().out
    assert "  FAILED  Monitoring continued for 24 hours: 1 gap(s) longer than 15 min" in out
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--week1", "--at", "yesterday"]) == 2


def test_decommission_is_refused_until_ready_and_force_records_the_reason(reports: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    _week_ending_now(reports, days=5, reachable_days=None)
    args = ["decommission", "--run", RUN, "--reports-dir", str(reports), "--decided-by", "Dana Lee", "--no-probe"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "decommission-ready: PENDING: not yet: day 5.0 of 7 since the switch" in out
    assert "refused: the run is not decommission-ready; nothing recorded" in out
    assert not [r for r in Ledger.for_run(reports, RUN).records() if r["kind"] == "decommission"]
    assert main([*args, "--force", "  "]) == 2
    assert main([*args, "--force", "old cluster costs; CTO approved, CHG-77"]) == 0
    assert "recorded: Dana Lee decided to decommission the old infrastructure of run prod-2026-11-26 (forced: " \
           "old cluster costs; CTO approved, CHG-77); nothing was changed" in capsys.readouterr().out
    (decision,) = [r for r in Ledger.for_run(reports, RUN).records() if r["kind"] == "decommission"]
    assert (decision["decided_by"], decision["ready"], decision["forced"]) == (
        "Dana Lee", "pending", "old cluster costs; CTO approved, CHG-77")
    assert main(["status", "--run", RUN, "--reports-dir", str(reports), "--week1"]) == 0
    assert "  decommission decided by Dana Lee at " in capsys.readouterr().out


def test_decommission_when_ready_records_who_decided(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _week_ending_now(reports)
    assert main(["decommission", "--run", RUN, "--reports-dir", str(reports), "--decided-by", "Dana Lee",
                 "--no-probe", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["recorded"], data["ready"]["verdict"], data["forced"]) == (True, "passed", None)
    (decision,) = [r for r in Ledger.for_run(reports, RUN).records() if r["kind"] == "decommission"]
    assert decision["decided_by"] == "Dana Lee" and decision["ready"] == "passed"


def test_decommission_probes_live_and_refuses_when_the_old_database_is_gone(
        reports: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.rehearsal.procs import free_port

    qdrant = _local_qdrant(tmp_path / "qdrant", points=120)
    port = free_port()  # nothing listens there: the old database is gone
    (tmp_path / "cutover.toml").write_text(
        f'[source]\ndatabase_url = "postgresql://old:s3cr3t-pw@127.0.0.1:{port}/old"\nqdrant_path = "{qdrant}"\n'
        '[thresholds]\nconnect_timeout_s = 2\n')
    _week_ending_now(reports, reachable_days=None)
    assert main(["decommission", "--run", RUN, "--reports-dir", str(reports), "--decided-by", "Dana Lee"]) == 1
    out = capsys.readouterr().out
    assert "live check: old database (source.database_url) not reachable: " in out
    assert "live check: qdrant: reachable, 120 points in dac_memory, as at precutover" in out
    assert "decommission-ready: FAILED: not decommission-ready: old infrastructure not reachable for rollback" in out
    assert "s3cr3t-pw" not in out + Ledger.for_run(reports, RUN).path.read_text()
    (check,) = [r for r in Ledger.for_run(reports, RUN).records() if r["kind"] == "week1-reachability"]
    assert (check["old_database"]["ok"], check["qdrant"]["ok"], check["qdrant"]["count"]) == (False, True, 120)


def _local_qdrant(folder: Path, points: int) -> Path:
    """A local-mode Qdrant collection ``dac_memory`` with ``points`` 4-dimensional points."""
    import warnings

    from qdrant_client import QdrantClient, models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QdrantClient(path=str(folder))
        try:
            client.create_collection("dac_memory", vectors_config=models.VectorParams(
                size=4, distance=models.Distance.COSINE))
            client.upsert("dac_memory", [models.PointStruct(id=i + 1, vector=[1.0, 0.5, 0.25, float(i)])
                                         for i in range(points)])
        finally:
            client.close()
    return folder


def test_decommission_without_a_source_config_is_a_config_error(reports: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _week_ending_now(reports)
    assert main(["decommission", "--run", RUN, "--reports-dir", str(reports), "--decided-by", "Dana Lee"]) == 2
    assert "missing config key source.database_url: the old infrastructure cannot be checked" in \
        capsys.readouterr().err
    kinds = [r["kind"] for r in Ledger.for_run(reports, RUN).records()]
    assert "decommission" not in kinds and kinds.count("week1-reachability") == 1  # only the factory's
