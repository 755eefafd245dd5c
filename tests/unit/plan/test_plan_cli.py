"""``cutover plan`` in-process without a stack: the counts the run recorded, its exit codes and its record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cutover.cli import main
from pytest_cutover.ledger import Ledger

from .factory import night


def operator(tmp_path: Path, minutes: float) -> Path:
    config = tmp_path / "cutover.toml"
    config.write_text(f'[run]\nid = "night"\nwindow_start = "2026-11-26T08:00:00Z"\nwindow_minutes = {minutes}\n'
                      '[thresholds]\nmonitor_window_s = 8\n')
    ledger = Ledger.for_run(tmp_path / "reports", "night")
    for record in night():
        ledger.append(record)
    return config


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)


def test_recorded_counts_plan_without_connecting_and_the_plan_is_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = operator(tmp_path, 120)
    assert main(["plan", "--config", str(config), "--recorded-counts"]) == 0
    out = capsys.readouterr().out
    assert "counts: 1000 points, 40 BLOBs (4000000 bytes) - recorded by the precutover stage" in out
    assert " 1. 08:00:00 -> " in out and "fits" in out
    record = Ledger.for_run(tmp_path / "reports", "night").records()[-1]
    assert record["kind"] == "plan" and record["fits"] is True and len(record["steps"]) == 10


def test_too_short_a_window_exits_1_and_the_json_says_by_how_much(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = operator(tmp_path, 0.2)
    assert main(["plan", "--config", str(config), "--recorded-counts", "--json", "--no-record"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False and data["over_s"] > 0
    assert data["over_s"] == pytest.approx(data["total_s"] - 12, abs=0.01)
    assert any("in a 0.2-minute window" in p for p in data["problems"])
    assert Ledger.for_run(tmp_path / "reports", "night").records()[-1]["kind"] != "plan"  # --no-record


def test_without_a_config_plan_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan"]) == 2
    assert "no config found" in capsys.readouterr().err


def test_a_window_start_that_is_not_a_time_is_a_configuration_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    config = operator(tmp_path, 120)
    config.write_text(config.read_text().replace("2026-11-26T08:00:00Z", "8 am"))
    assert main(["plan", "--config", str(config), "--recorded-counts"]) == 2
    assert "[run] window_start '8 am' is not an ISO 8601 time" in capsys.readouterr().err
