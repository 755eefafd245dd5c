"""A report rebuilt after the config is gone (a rehearsal's temp folder) keeps its lead, contacts and window."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.config import load_config
from pytest_cutover.context import RunContext
from pytest_cutover.report.effective import record_config
from pytest_cutover.report.sign import keygen
from pytest_cutover.report.writer import write_report_files

from . import factory

CONFIG = """
[run]
id = "night"
lead = "Ada Lovelace"
timezone = "Europe/Berlin"
maintenance_start = "2027-01-15T08:00Z"
maintenance_end = "2027-01-15T14:00Z"

[target]
database_url = "postgresql://postgres:hunter2-secret@db.example.com:5432/postgres"
app_database_url = "postgresql://app:hunter2-secret@db.example.com:6543/postgres"

[[people.contacts]]
name = "Grace Hopper"
role = "on-call"
channel = "slack:#incident"

[[people.contacts]]
name = "Linus"
role = "escalation"
channel = "phone:+4930123"

[team.support_standby]
who = "Grace Hopper"
when = "2027-01-14T16:00Z"
"""
KEPT = ("lead", "maintenance_window", "started", "finished", "date", "time", "local_time", "team", "status")


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, standalone_mode=False, catch_exceptions=False)
    return result.return_value, result.output


@pytest.fixture
def rehearsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict]:
    """A rehearsal-like run whose config file is deleted after the stages ran (as the rehearsal's temp dir is)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    cfg_path = tmp_path / "stack" / "cutover.toml"
    cfg_path.parent.mkdir()
    cfg_path.write_text(CONFIG)
    ctx = RunContext(run="night", reports_dir=tmp_path / "reports", config=load_config(cfg_path), suite_dir=tmp_path)
    factory.rehearsal_ledger(ctx)
    assert record_config(ctx) and not record_config(ctx)  # once per config, not once per call
    before = write_report_files(ctx, generate_allure=False).report
    cfg_path.unlink()
    return tmp_path, before


def _same_people(before: dict, after: dict) -> None:
    for key in KEPT:
        assert after[key] == before[key], key
    assert after["sign_off"]["lead"] == "Ada Lovelace"
    assert after["sign_off"]["contacts_on_duty"] == before["sign_off"]["contacts_on_duty"]
    assert [c["name"] for c in after["sign_off"]["contacts_on_duty"]] == ["Grace Hopper", "Linus"]
    assert after["environment"]["hosts"] == before["environment"]["hosts"]
    assert after["environment"]["hosts"]["target.app_database_url"] == "postgresql://db.example.com:6543/postgres"
    assert after["issues"] == before["issues"]  # no "rebuild with --config" for a config nobody can have
    assert after["checklist"] == before["checklist"]


def test_ack_rebuilds_from_the_recorded_config(rehearsed: tuple[Path, dict]) -> None:
    root, before = rehearsed
    assert before["lead"] == "Ada Lovelace" and before["maintenance_window"] == "2027-01-15T08:00Z → 2027-01-15T14:00Z"
    code, out = _run(["report", "--run", "night", "--reports-dir", str(root / "reports"), "--ack", "A Person",
                      "--no-allure"])
    assert code == 0, out
    after = json.loads((root / "reports/night/report.json").read_text())
    _same_people(before, after)
    assert [a["who"] for a in after["sign_off"]["acks"]] == ["A Person"]  # the ack adds a line ...
    assert after["finished"] == before["finished"]  # ... and does not stretch the window to its own time
    assert after["environment"]["config_source"] == "recorded in the ledger"
    page = (root / "reports/night/report.html").read_text()
    assert "Ada Lovelace" in page and "Grace Hopper" in page and "A Person" in page
    assert "hunter2" not in page and "hunter2" not in (root / "reports/night/ledger.jsonl").read_text()


def test_sign_with_ack_rebuilds_from_the_recorded_config(rehearsed: tuple[Path, dict]) -> None:
    root, before = rehearsed
    key = root / "keys" / "lead.key"
    keygen(key)
    code, out = _run(["report", "sign", "--run", "night", "--reports-dir", str(root / "reports"), "--key", str(key),
                      "--ack", "A Person"])
    assert code == 0, out
    after = json.loads((root / "reports/night/report.json").read_text())
    _same_people(before, after)
    assert after["signature"]["signer"] == "Ada Lovelace"  # the default signer is the recorded lead
    assert [a["who"] for a in after["sign_off"]["acks"]] == ["A Person"]


def test_without_a_recorded_config_the_gap_is_reported(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, None)
    factory.rehearsal_ledger(ctx)
    report = write_report_files(ctx, generate_allure=False).report
    assert report["lead"] is None and report["environment"]["config_source"] is None
