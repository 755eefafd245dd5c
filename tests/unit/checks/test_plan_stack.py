"""``cutover plan`` against the rehearsal stack's own cutover.toml (the checks' shared stack): it counts live,
reads a rehearsal's figures from the reports folder, and budgets the rehearsal's 120-minute window."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.cli import main
from pytest_cutover.ledger import Ledger

from ..plan.factory import night

pytestmark = pytest.mark.integration


@pytest.fixture
def operator(stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stack's variables exported, and a reports folder holding an earlier rehearsal's ledger."""
    from pytest_cutover.rehearsal.stack import read_env_file

    for name, value in read_env_file(stack.stack_env_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    reports = tmp_path / "reports"
    ledger = Ledger.for_run(reports, "rehearsal-earlier")
    for record in night():
        ledger.append(record)
    return reports


def plan(capsys: pytest.CaptureFixture[str], config: Path, reports: Path, *args: str) -> tuple[int, str, str]:
    code = main(["plan", "--config", str(config), "--reports-dir", str(reports), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_against_the_rehearsal_config_prints_every_step_of_the_night(
        stack: Any, operator: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = plan(capsys, stack.config_path, operator)
    assert code == 0, out + err
    assert re.search(r"window \d{4}-\d\d-\d\dT\d\d:\d\d:00Z, 120 min, margin 25%", out), out
    assert re.search(r"counts: [1-9]\d* points, [1-9]\d* BLOBs", out), out
    for title in ("Step 1: enable maintenance mode", "Step 2: final data sync", "Step 3: switch DATABASE_URL",
                  "Step 4: restart backend services", "Step 5: smoke tests", "RLS isolation in depth",
                  "Step 6: monitor logs", "Step 7: disable maintenance mode"):
        assert title in out
    assert "measured on another environment" in out  # the earlier rehearsal ran against other systems
    assert re.search(r"total .* of 120 min: fits, .* to spare", out), out
    records = Ledger.for_run(operator, stack.run_id).records()
    assert records[-1]["kind"] == "plan" and records[-1]["fits"] is True


def test_a_window_too_short_exits_non_zero_and_says_by_how_much(
        stack: Any, operator: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = stack.config_path.read_text()
    assert "window_minutes = 120" in text
    short = tmp_path / "cutover.toml"
    short.write_text(text.replace("window_minutes = 120", "window_minutes = 1"))
    code, out, _ = plan(capsys, short, operator, "--json", "--no-record")
    assert code == 1
    data = json.loads(out)
    assert data["fits"] is False and data["over_s"] == pytest.approx(data["total_s"] - 60, abs=0.01)
    code, out, _ = plan(capsys, short, operator, "--no-record")
    assert code == 1
    assert re.search(r"DOES NOT FIT, .+ over", out)
    assert re.search(r"warning: the plan does not fit: it needs .+ in a 1-minute window, .+ over", out)


def test_an_unreachable_old_database_is_a_clear_error_without_its_password(
        stack: Any, operator: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OLD_DATABASE_URL", f"postgresql://old_app:Plan-Secret-77@127.0.0.1:{port}/old_app")
    code, out, err = plan(capsys, stack.config_path, operator)
    assert code == 2
    assert "connection refused" in err and "source.database_url" in err
    assert "Plan-Secret-77" not in out + err
