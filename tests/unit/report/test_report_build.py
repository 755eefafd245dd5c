"""The report aggregates a run's ledger: verdicts, status, issues, figures, several invocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cutover.report.build import build_report, is_waived, merge_figure
from pytest_cutover.report.writer import write_report
from pytest_cutover.stages import BLOCKED, FAILED, INCOMPLETE, NOT_RUN, PASSED, ROLLBACK, STAGES, SUCCESS

from . import factory

needs_checker = pytest.mark.skipif(not factory.CHECK_REPORT.exists(),
                                   reason=f"contract checker {factory.CHECK_REPORT} not available")


def _contract_ok(path: Path) -> None:
    if not factory.CHECK_REPORT.exists():
        return
    proc = factory.check_report(path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _write(ctx) -> dict:
    path = write_report(ctx, generate_allure=False)
    _contract_ok(path)
    return json.loads(path.read_text())


def test_success_when_every_stage_passed(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.all_passed(ctx)
    report = _write(ctx)
    assert report["status"] == SUCCESS
    assert [s["name"] for s in report["stages"]] == list(STAGES)
    assert all(s["verdict"] == PASSED for s in report["stages"])
    assert report["issues"] == []
    assert report["lead"] == "Ada Lovelace"
    assert report["date"] == "2027-01-15" and report["time"] == "08:55:00Z"
    first = report["stages"][0]["tests"][0]
    assert set(first) == {"id", "outcome", "runbook", "duration", "message"}
    assert first["runbook"] == "All syntax verified with `py_compile`"
    assert report["figures"]["vectors"]["migrated"] == 118
    assert set(report["artifacts"]) == {"ledger.jsonl", "report.html"}


@pytest.mark.parametrize("verdict", [FAILED, BLOCKED])
def test_failed_or_blocked_stage_is_incomplete_with_issues(tmp_path: Path, verdict: str) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover")
    factory.stage(ctx, "sync", verdict,
                  reason="blocked: stage `precutover` has not passed in run `night`" if verdict == BLOCKED else None)
    report = _write(ctx)
    assert report["status"] == INCOMPLETE
    verdicts = {s["name"]: s["verdict"] for s in report["stages"]}
    assert verdicts == {"precutover": PASSED, "sync": verdict, "switch": NOT_RUN, "smoke": NOT_RUN, "rls": NOT_RUN,
                        "monitor": NOT_RUN}
    if verdict == FAILED:
        assert "sync: tests/cutover/test_sync.py::test_0 failed: sync check 0 went wrong" in report["issues"]
    else:
        assert any(i.startswith("sync: blocked - blocked: stage `precutover`") for i in report["issues"])
    assert "sync " + verdict in report["status_reason"]


def test_rollback_trigger_and_steps(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.all_passed(ctx)
    ctx.ledger.append({"kind": "trigger", "name": "error-rate", "evidence": "7.5% of 400 probes failed",
                       "stage": "monitor"})
    ctx.ledger.append({"kind": "rollback", "step": "restore DATABASE_URL", "ok": True, "detail": "old url back"})
    ctx.ledger.append({"kind": "rollback", "step": "verify health", "ok": False, "detail": "HTTP 503"})
    ctx.ledger.append({"kind": "notification", "event": "rollback", "channel": "incident", "ok": True, "status": 200})
    report = _write(ctx)
    assert report["status"] == ROLLBACK
    assert report["triggers"][0]["name"] == "error-rate" and report["triggers"][0]["stage"] == "monitor"
    assert [(s["step"], s["ok"]) for s in report["rollback"]] == [("restore DATABASE_URL", True),
                                                                  ("verify health", False)]
    assert report["notifications"][0]["event"] == "rollback"
    assert "rollback trigger error-rate (monitor): 7.5% of 400 probes failed" in report["issues"]
    assert "rollback step verify health failed: HTTP 503" in report["issues"]


def test_rollback_without_trigger_is_still_rollback(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover")
    ctx.ledger.append({"kind": "rollback", "step": "restart", "ok": True})
    assert _write(ctx)["status"] == ROLLBACK


def test_forced_override_is_shown_and_listed(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover", FAILED)
    factory.stage(ctx, "sync", forced="DBA approved, INC-42",
                  forced_over="blocked: stage `precutover` failed in run `night`")
    report = _write(ctx)
    assert report["status"] == INCOMPLETE
    sync = report["stages"][1]
    assert sync["forced"] == "DBA approved, INC-42" and sync["verdict"] == PASSED
    assert report["forced_overrides"] == [{"stage": "sync", "reason": "DBA approved, INC-42",
                                           "over": "blocked: stage `precutover` failed in run `night`"}]
    assert any("sync: forced over a gate" in i and "DBA approved, INC-42" in i for i in report["issues"])


def test_unwaived_skip_prevents_success_and_a_waiver_allows_it(tmp_path: Path) -> None:
    skip = [{"id": "tests/cutover/test_precutover.py::test_storage_bucket",
             "reason": "missing config key target.storage_url"}]
    ctx = factory.context(tmp_path, factory.config())
    for name in STAGES:
        factory.stage(ctx, name, skipped=skip if name == "precutover" else None)
    report = _write(ctx)
    assert report["status"] == INCOMPLETE
    assert "1 check(s) skipped without a waiver" in report["status_reason"]
    assert any("skipped without a waiver: missing config key target.storage_url" in i for i in report["issues"])

    waived_ctx = factory.context(tmp_path / "w", factory.config(waivers={"target.storage_url": "no storage, INC-9"}))
    for name in STAGES:
        factory.stage(waived_ctx, name, skipped=skip if name == "precutover" else None)
    report = _write(waived_ctx)
    assert report["status"] == SUCCESS
    assert report["waivers"][0]["waiver"] == "no storage, INC-9"
    assert any("skipped, waived: no storage, INC-9" in i for i in report["issues"])


@pytest.mark.parametrize(("key", "expected"), [
    ("tests/cutover/test_a.py::test_b[x]", "by id"),
    ("test_b", "by name"),
    ("target.storage_url", "by key"),
    ("target.storage", None),
    ("storage_url", None),
])
def test_waiver_matching(key: str, expected: str | None) -> None:
    found = is_waived("tests/cutover/test_a.py::test_b[x]", "missing config key target.storage_url",
                      {key: expected or "no"})
    assert found == expected


def test_several_invocations_aggregate_into_one_report(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover", FAILED, invocation="day7-a")
    factory.stage(ctx, "precutover", invocation="day7-b", offset=100)
    for name in STAGES[1:]:
        factory.stage(ctx, name, invocation=f"night-{name}")
    report = _write(ctx)
    assert report["status"] == SUCCESS
    assert report["stages"][0]["attempts"] == 2 and report["stages"][0]["invocation"] == "day7-b"
    assert len(report["invocations"]) == 7
    assert [h["effective"] for h in report["history"]][:2] == [False, True]


def test_rerunning_an_earlier_stage_invalidates_later_ones(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover")
    factory.stage(ctx, "sync")
    factory.stage(ctx, "switch")
    factory.stage(ctx, "sync", offset=5000, invocation="again")
    report = _write(ctx)
    verdicts = [s["verdict"] for s in report["stages"]]
    assert verdicts == [PASSED, PASSED, NOT_RUN, NOT_RUN, NOT_RUN, NOT_RUN]
    assert report["stages"][1]["invocation"] == "again"


def test_figures_merge_per_section(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover", figures={"qdrant_points": 120, "versions.pgvector": "0.8.0"})
    factory.stage(ctx, "sync", figures={"vectors": {"points": 3, "migrated": 3, "rejected": 0, "missing": 0,
                                                    "bit_exact": 3}})
    ctx.ledger.append({"kind": "figures", "section": "vectors", "figures": {"recall_at_10": 1.0}})
    ctx.ledger.append({"kind": "monitor", "stage": "monitor", "window": 1, "samples": 12, "figures":
                       {"error_rate": 0.0, "search_p95_ms": 12.5}, "criteria": [{"name": "error-rate", "ok": True}]})
    report = _write(ctx)
    figures = report["figures"]
    assert figures["precutover"] == {"qdrant_points": 120}
    assert figures["vectors"] == {"points": 3, "migrated": 3, "rejected": 0, "missing": 0, "bit_exact": 3,
                                  "recall_at_10": 1.0}
    assert figures["monitor"]["search_p95_ms"] == 12.5 and figures["monitor"]["samples"] == 12
    assert report["environment"]["versions"]["pgvector"] == {"version": "0.8.0", "source": "figures.versions.pgvector"}
    assert report["monitor"][0]["criteria"] == [{"name": "error-rate", "ok": True}]


def test_merge_figure_rules() -> None:
    figures: dict = {}
    merge_figure(figures, "blobs", {"rows": 2}, "sync")
    merge_figure(figures, "blobs.verified", 2, "sync")
    merge_figure(figures, "org_count", 3, "sync")
    assert figures == {"blobs": {"rows": 2, "verified": 2}, "sync": {"org_count": 3}}


def test_generic_records_acks_notes_and_unknown_kinds(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config(run={"id": "night", "lead": "Ada", "notes": "from config"}))
    factory.stage(ctx, "precutover")
    ctx.ledger.append({"kind": "ack", "who": "Grace Hopper", "at": "2027-01-15T08:00:00Z"})
    ctx.ledger.append({"kind": "note", "text": "BLOB migration deferred to Tuesday"})
    ctx.ledger.append({"kind": "action", "action": "maintenance-on", "name": "maintenance-on", "ok": True})
    ctx.ledger.append({"kind": "decommission", "decided_by": "CTO", "who": "CTO"})
    report = _write(ctx)
    assert report["acks"] == [{"name": "Grace Hopper", "at": "2027-01-15T08:00:00Z"}]
    assert report["notes"] == "from config\nBLOB migration deferred to Tuesday"
    assert report["actions"][0]["name"] == "maintenance-on"
    assert report["other_records"]["decommission"][0]["who"] == "CTO"


def test_local_time_of_the_lead(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config(run={"id": "night", "lead": "Ada", "timezone": "America/New_York"}))
    factory.stage(ctx, "precutover")
    report = _write(ctx)
    assert report["local_time"] == {"timezone": "America/New_York", "date": "2027-01-15", "time": "03:05:00 EST"}
    bad = factory.context(tmp_path / "bad", factory.config(run={"id": "night", "timezone": "Mars/Olympus"}))
    factory.stage(bad, "precutover")
    report = _write(bad)
    assert report["local_time"] is None
    assert any("'Mars/Olympus' is not a known time zone" in i for i in report["issues"])


def test_environment_hosts_are_reduced_and_empty_ledger_reports_not_run(tmp_path: Path) -> None:
    cfg = factory.config(target={"database_url": "postgresql://admin:pw-Zq81xx@db.example.com:5432/postgres?sslmode=require",
                                 "app_database_url": "postgresql://app:pw-Zq81xx@db.example.com:6543/postgres"})
    ctx = factory.context(tmp_path, cfg)
    report = build_report(ctx.ledger, cfg, ctx.run, local_versions=False)
    assert report["environment"]["hosts"] == {
        "target.database_url": "postgresql://db.example.com:5432/postgres",
        "target.app_database_url": "postgresql://db.example.com:6543/postgres",
    }
    assert [s["verdict"] for s in report["stages"]] == [NOT_RUN] * 6
    assert report["status"] == INCOMPLETE and report["date"] is None


@needs_checker
def test_contract_checker_rejects_a_broken_report(tmp_path: Path) -> None:
    """Guard: the subprocess check really fails on a bad report (so the positive checks mean something)."""
    bad = tmp_path / "report.json"
    bad.write_text(json.dumps({"run": "x", "status": "MAYBE", "stages": []}))
    assert factory.check_report(bad).returncode == 1


def test_a_report_built_with_another_config_says_so(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.stage(ctx, "precutover")
    other = factory.context(tmp_path, factory.config(run={"id": "night", "lead": "Somebody Else"}))
    report = build_report(other.ledger, other.config, other.run, local_versions=False)
    assert any(i.startswith(f"this report was built with config {other.config_hash}, but the stages ran with "
                            f"{ctx.config_hash}") for i in report["issues"])


def test_cli_rebuild_reuses_the_runs_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pytest_cutover.cli import cli

    cfg_path = tmp_path / "stack" / "cutover.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text('[run]\nid = "night"\nlead = "Ada Lovelace"\n')
    from pytest_cutover.config import load_config

    ctx = factory.context(tmp_path, load_config(cfg_path))
    factory.all_passed(ctx)
    write_report(ctx, generate_allure=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(cli, ["report", "--run", "night", "--reports-dir", str(tmp_path / "reports"),
                                      "--no-allure"], standalone_mode=False, catch_exceptions=False)
    assert result.return_value == 0, result.output
    assert f"using the run's config {cfg_path.resolve()}" in result.output
    assert json.loads((ctx.run_dir / "report.json").read_text())["lead"] == "Ada Lovelace"
