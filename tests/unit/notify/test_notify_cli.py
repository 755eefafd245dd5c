"""``cutover notify EVENT`` through the real ``cutover`` entry point (registered here as the lead will)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cutover import cli

from .conftest import Receiver

PASSWORD = "Cli-Pw-5521-kk"


@pytest.fixture
def suite_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Path:
    monkeypatch.setitem(cli.LAZY_COMMANDS, "notify", ("pytest_cutover.notify.cli", "notify", "Send a notification."))
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cutover.toml").write_text(f'''
[run]
id = "night1"
lead = "Ana Lead"

[target]
database_url = "postgresql://postgres:{PASSWORD}@db.example:5432/postgres"

[notify.incident]
kind = "slack"
url = "{receiver.url('/incident')}"
events = ["rollback"]

[notify.users]
kind = "webhook"
url = "{receiver.url('/fail/users')}"
events = ["maintenance-enabled", "maintenance-disabled"]
retries = 1
''')
    return tmp_path


def _ledger(suite_dir: Path) -> list[dict]:
    path = suite_dir / "reports" / "night1" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_notify_sends_to_subscribed_channels_and_records_it(suite_dir: Path, receiver: Receiver,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["notify", "rollback", "--detail", "triggers=error-spike",
                     "--detail", f"evidence=5xx from postgresql://app:{PASSWORD}@db:6543/x", "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    [got] = receiver.bodies("/incident")
    assert got.json["text"].startswith("[ROLLBACK] Rollback trigger fired during the cutover: error-spike. "
                                       "Evidence: 5xx from postgresql://app:***@db:6543/x.")
    assert PASSWORD.encode() not in got.raw and PASSWORD not in out
    assert [(r["event"], r["channel"], r["ok"], r["status"]) for r in _ledger(suite_dir)] == [
        ("rollback", "incident", True, 200)]
    assert json.loads(out)[0]["channel"] == "incident"


def test_a_failed_delivery_exits_1_and_names_the_channel(suite_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["notify", "maintenance-enabled", "--channel", "users"])
    err = capsys.readouterr().err
    assert code == 1
    assert "cutover notification maintenance-enabled via users (webhook) failed: HTTP 500 after 1 attempt(s)" in err
    assert _ledger(suite_dir)[0]["ok"] is False


@pytest.mark.parametrize(("argv", "message"), [
    (["notify", "maintenance-on"], "unknown notification event maintenance-on"),
    (["notify", "switched"], "unknown notification event switched"),
    (["notify", "rollback", "--channel", "pager"], "no notify channel named pager"),
    (["notify", "maintenance-disabled", "--config", "none.toml"], "config file none.toml does not exist"),
    (["notify", "rollback", "--detail", "novalue"], "--detail 'novalue' is not KEY=VALUE"),
])
def test_usage_errors_exit_2(suite_dir: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                             message: str) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
