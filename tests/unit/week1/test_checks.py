"""The Week-1 checks on synthetic ledgers: a clean week, a gap, an incident, errors, BLOBs, decommission timing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pytest_cutover.config import parse_config
from pytest_cutover.ledger import Ledger
from pytest_cutover.stages import FAILED, PASSED
from pytest_cutover.week1 import checks
from pytest_cutover.week1.checks import PENDING, Week1Settings, evaluate_week1, week1_settings
from pytest_cutover.week1.history import rolling_window

from .factory import SWITCH, clean_week, monitor_pass, night, reachable, watch

SETTINGS = Week1Settings()


def verdicts(ledger: Ledger, now_days: float) -> dict[str, checks.CheckVerdict]:
    now = SWITCH + timedelta(days=now_days)
    return {v.name: v for v in evaluate_week1(ledger.records(), SETTINGS, now)}


def test_a_clean_week_passes_every_check(tmp_path: Path) -> None:
    ledger = clean_week(tmp_path / "ledger.jsonl", reachable_at=SWITCH + timedelta(days=7, hours=1))
    got = verdicts(ledger, 7.1)
    assert {name: v.verdict for name, v in got.items()} == dict.fromkeys(checks.CHECKS, PASSED), \
        {n: v.evidence for n, v in got.items()}
    assert got["monitoring-24h"].evidence == ("24 h after the switch at 2026-11-26T09:35:00Z covered by 48 monitor "
                                              "pass(es); longest gap 0.1 min (limit 15 min)")
    assert got["error-rate"].evidence.startswith("probe error rate 0.00% (0 of 39420); logged request error rate "
                                                 "0.00% (0 of 146000) over 73 pass(es)")
    assert "40 of 40 attachments in storage and verified" in got["blob-migration"].evidence
    assert got["decommission-ready"].evidence.startswith("7 days of passing monitor windows since the switch")


def test_a_gap_in_coverage_fails_naming_its_start_end_and_length(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger)
    hole = (SWITCH + timedelta(hours=10, minutes=10), SWITCH + timedelta(hours=10, minutes=40))
    watch(ledger, SWITCH + timedelta(minutes=10), SWITCH + timedelta(hours=24, minutes=30), skip=hole)
    got = checks.monitoring_coverage(ledger.records(), SETTINGS, SWITCH + timedelta(hours=30))
    assert got.verdict == FAILED
    # the pass due at 19:45 is missing: the one before ended at 19:44:54, the next started at 20:15
    assert got.evidence == ("1 gap(s) longer than 15 min in the 24 h after the switch at 2026-11-26T09:35:00Z: "
                            "from 2026-11-26T19:44:54Z to 2026-11-26T20:15:00Z (30.1 min)")
    assert got.figures["gaps"] == [{"start": "2026-11-26T19:44:54Z", "end": "2026-11-26T20:15:00Z",
                                    "minutes": 30.1}]


def test_a_gap_is_reported_before_the_24_hours_are_over_and_monitoring_in_progress_is_pending(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger)
    watch(ledger, SWITCH + timedelta(minutes=10), SWITCH + timedelta(hours=10))
    in_progress = checks.monitoring_coverage(ledger.records(), SETTINGS, SWITCH + timedelta(hours=10, minutes=20))
    assert in_progress.verdict == PENDING, in_progress.evidence
    assert in_progress.evidence == ("10.2 h of 24 h after the switch at 2026-11-26T09:35:00Z covered so far in 20 "
                                    "pass(es), no gap over 15 min; last sample 2026-11-26T19:44:54Z")
    stopped = checks.monitoring_coverage(ledger.records(), SETTINGS, SWITCH + timedelta(hours=12))
    assert stopped.verdict == FAILED
    assert "from 2026-11-26T19:44:54Z to 2026-11-26T21:35:00Z (110.1 min)" in stopped.evidence


def test_an_incident_fails_no_critical_issues_naming_the_trigger(tmp_path: Path) -> None:
    ledger = clean_week(tmp_path / "ledger.jsonl", reachable_at=SWITCH + timedelta(days=7, hours=1))
    ledger.append({"kind": "trigger", "name": "error-rate", "stage": "monitor", "window": 12,
                   "evidence": "error rate 7.10% (38 of 535 requests) in the last 300 s: above the 5.0% rollback rate"})
    got = verdicts(ledger, 7.1)
    assert got["no-critical-issues"].verdict == FAILED
    assert got["no-critical-issues"].evidence.startswith("1 critical issue(s): trigger error-rate (monitor, ")
    assert got["no-critical-issues"].evidence.endswith(": error rate 7.10% (38 of 535 requests) in the last 300 s: "
                                                       "above the 5.0% rollback rate")
    assert got["decommission-ready"].verdict == FAILED
    assert "rollback trigger error-rate" in got["decommission-ready"].evidence


@pytest.mark.parametrize(("failures", "verdict"), [(1203, FAILED), (1202, PASSED)])
def test_error_rate_must_stay_strictly_below_one_percent(tmp_path: Path, failures: int, verdict: str) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger)
    watch(ledger, SWITCH + timedelta(minutes=10), SWITCH + timedelta(hours=2))  # 4 clean passes, 540 probes each
    monitor_pass(ledger, SWITCH + timedelta(hours=2), window=5, requests=118140, failures=failures)
    got = checks.error_rates_below(ledger.records(), SETTINGS, SWITCH + timedelta(hours=3))
    assert got.verdict == verdict, got.evidence  # 1203 of 120300 probes is exactly 1%: not below 1%
    if verdict == FAILED:
        assert got.evidence.startswith("probe error rate 1.00% (1203 of 120300); logged request error rate 0.00% "
                                       "(0 of 10000) over 5 pass(es) since the switch at 2026-11-26T09:35:00Z: not "
                                       "below 1%; worst pass window 5 (2026-11-26T11:35:00Z to ")


def test_the_error_rate_limit_comes_from_the_config() -> None:
    assert week1_settings(parse_config({})).error_rate_max == 0.01
    assert week1_settings(parse_config({"thresholds": {"error_rate": 0.02}})).error_rate_max == 0.02
    cfg = parse_config({"thresholds": {"error_rate": 0.02}, "week1": {"error_rate_max": 0.005,
                                                                       "max_gap_minutes": 20}})
    assert week1_settings(cfg) == Week1Settings(max_gap_minutes=20, error_rate_max=0.005)


def test_blob_migration_incomplete_fails_and_absent_is_pending(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger, blobs={"rows": 40, "migrated": 38, "already_done": 0, "rejected": 2,
                         "rejected_by_reason": {"readback-mismatch": 2}, "verified": 38, "verify_failed": 0,
                         "rows_without_data": 0})
    got = checks.blob_migration_run(ledger.records(), SETTINGS, SWITCH)
    assert got.verdict == FAILED
    assert got.evidence.startswith("BLOB migration incomplete (sync stage at ")
    assert got.evidence.endswith("): 2 refused {'readback-mismatch': 2}; 38 of 40 rows in storage; 38 of 40 objects "
                                 "verified; re-run `cutover migrate blobs`")
    # the Week-1 re-run during low traffic completes it: the latest full accounting counts, a dry run does not
    ledger.append({"kind": "migration", "step": "blobs", "ok": True, "end": "2026-11-27T03:00:00.000Z",
                   "figures": {"rows": 40, "migrated": 2, "already_done": 38, "rejected": 0, "verified": 40,
                               "verify_failed": 0, "rows_without_data": 0}})
    ledger.append({"kind": "migration", "step": "blobs", "ok": True, "figures": {"rows": 40, "migrated": 0,
                                                                                 "already_done": 40, "rejected": 0}})
    done = checks.blob_migration_run(ledger.records(), SETTINGS, SWITCH)
    assert done.verdict == PASSED
    assert done.evidence == ("40 of 40 attachments in storage and verified by size and sha256, 0 refused, 0 without "
                             "data (`cutover migrate blobs` at 2026-11-27T03:00:00.000Z)")
    empty = Ledger(tmp_path / "empty.jsonl")
    empty.append({"kind": "note", "text": "nothing yet"})
    assert checks.blob_migration_run(empty.records(), SETTINGS, SWITCH).verdict == PENDING


def test_decommission_is_pending_at_day_5_and_ready_at_day_7(tmp_path: Path) -> None:
    ledger = clean_week(tmp_path / "ledger.jsonl", days=8)
    day5 = checks.decommission_ready(ledger.records(), SETTINGS, SWITCH + timedelta(days=5))
    assert day5.verdict == PENDING
    assert day5.evidence == ("not yet: day 5.0 of 7 since the switch at 2026-11-26T09:35:00Z (ready at "
                             "2026-12-03T09:35:00Z at the earliest)")
    day7 = checks.decommission_ready(ledger.records(), SETTINGS, SWITCH + timedelta(days=7, hours=2))
    assert day7.verdict == PENDING  # seven stable days, but nobody has checked the old side since
    assert "have not been checked since 2026-12-03T09:35:00Z" in day7.evidence
    reachable(ledger, SWITCH + timedelta(days=7, hours=1))
    ready = checks.decommission_ready(ledger.records(), SETTINGS, SWITCH + timedelta(days=7, hours=2))
    assert ready.verdict == PASSED, ready.evidence
    assert ready.figures["reachability_at"] == "2026-12-03T10:35:00Z"


def test_decommission_fails_on_a_failed_pass_a_missing_day_or_an_unreachable_old_database(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger)
    watch(ledger, SWITCH + timedelta(minutes=10), SWITCH + timedelta(hours=24, minutes=30))
    # days 3 and 4 are not watched at all
    watch(ledger, SWITCH + timedelta(days=4), SWITCH + timedelta(days=7), every=timedelta(hours=6))
    monitor_pass(ledger, SWITCH + timedelta(days=5, hours=3), window=99, ok=False)
    reachable(ledger, SWITCH + timedelta(days=3), old_ok=False)
    got = checks.decommission_ready(ledger.records(), SETTINGS, SWITCH + timedelta(days=7, hours=2))
    assert got.verdict == FAILED
    assert "1 monitor pass(es) failed since the switch (first: window 99 (2026-12-01T12:35:00Z to " in got.evidence
    assert "no passing monitor window on day 3 (2026-11-28T09:35:00Z to 2026-11-29T09:35:00Z)" in got.evidence
    assert "no passing monitor window on day 4 " in got.evidence and "day 2 " not in got.evidence
    assert ("old infrastructure not reachable for rollback at 2026-11-29T09:35:00Z: old database: old database "
            "(source.database_url) not reachable: refused") in got.evidence


def test_without_a_passed_switch_every_check_waits(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append({"kind": "stage", "stage": "precutover", "verdict": "passed", "start": None, "end": None})
    got = evaluate_week1(ledger.records(), SETTINGS, SWITCH)
    assert [v.verdict for v in got] == [PENDING] * 5
    assert got[0].evidence.startswith("no passed switch stage in this run")


def test_rolling_window_adds_up_every_pass(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    night(ledger)
    monitor_pass(ledger, SWITCH + timedelta(minutes=10), window=1, requests=100, failures=1,
                 search_ms=[10.0] * 19 + [90.0])
    monitor_pass(ledger, SWITCH + timedelta(minutes=30), window=2, requests=300, failures=2, log_errors=5,
                 search_ms=[20.0] * 20, triggers=["vector-search-broken"])
    ledger.append({"kind": "trigger", "name": "vector-search-broken", "stage": "monitor", "evidence": "0 of 9 ok"})
    rolling = rolling_window(ledger.records()).as_dict()
    # the passes overlap by ten minutes: 50 minutes monitored, not 60
    assert rolling["hours_monitored"] == pytest.approx(50 / 60, abs=1e-3)
    assert (rolling["passes"], rolling["probe_requests"], rolling["probe_failures"]) == (2, 400, 3)
    assert rolling["error_rate"] == 0.0075 and rolling["log_error_rate"] == 5 / 4000
    assert (rolling["search_n"], rolling["search_p95_ms"]) == (40, 20.0)  # over both passes, not the last one's
    assert rolling["passes_failed"] == ["window 2 (2026-11-26T10:05:00Z to 2026-11-26T10:35:00Z)"]
    assert [i["name"] for i in rolling["incidents"]] == ["vector-search-broken"]


def test_the_report_carries_the_week1_verdicts_and_who_decided(tmp_path: Path) -> None:
    from pytest_cutover.report.build import build_report

    ledger = clean_week(tmp_path / "ledger.jsonl", days=8, reachable_at=SWITCH + timedelta(days=7, hours=1))
    ledger.append({"kind": "decommission", "decided_by": "Dana Lee", "at": "2026-12-03T11:00:00.000Z",
                   "ready": "passed", "forced": None, "evidence": "7 days of passing monitor windows"})
    report = build_report(ledger, None, "week", local_versions=False)
    week1 = report["week1"]
    assert week1["evaluated_at"] == report["finished"][:19] + "Z"  # as of the ledger's last record: reproducible
    assert [c["verdict"] for c in week1["checks"]] == [PASSED] * 5, [c["evidence"] for c in week1["checks"]]
    assert week1["decommission"] == [{"decided_by": "Dana Lee", "at": "2026-12-03T11:00:00.000Z", "forced": None,
                                      "ready": "passed", "evidence": "7 days of passing monitor windows"}]
    assert week1["rolling"]["passes"] == 77 and week1["rolling"]["incidents"] == []
    assert "week1" not in build_report(Ledger(tmp_path / "none.jsonl"), None, "week", local_versions=False)
