"""``cutover action rollback`` alerts the incident channel (a real local webhook receiver) before its steps."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.context import RunContext
from pytest_cutover.notify.receiver import WebhookReceiver

PASSWORD = "Pw-0ld-db-9931"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(tmp_path: Path, receiver: WebhookReceiver, *, path: str = "/incident") -> tuple[list[str], RunContext]:
    app = f"http://127.0.0.1:{_closed_port()}"  # the app is down: the rollback goes on, then stops at the restore
    (tmp_path / ".env").write_text(f"DATABASE_URL=postgresql://app:{PASSWORD}@127.0.0.1:1/dac\n")
    cfg = tmp_path / "cutover.toml"
    cfg.write_text(f"""[run]
id = "night"
lead = "Ada Lovelace"

[app]
env_file = ".env"
health_url = "{app}/health"
api_base = "{app}"
maintenance = "endpoint"
admin_token = "adm-token-123456"

[thresholds]
health_timeout_s = 2
connect_timeout_s = 2

[notify.incident]
kind = "slack"
url = "{receiver.url(path)}"
events = ["rollback"]
required = true
timeout_s = 5
retries = 1

[notify.users]
kind = "webhook"
url = "{receiver.url('/users')}"
events = ["maintenance-enabled", "maintenance-disabled"]
""")
    from pytest_cutover.config import load_config

    ctx = RunContext(run="night", reports_dir=tmp_path / "reports", config=load_config(cfg), suite_dir=tmp_path,
                     git_rev="test")
    return ["--config", str(cfg), "--run", "night", "--reports-dir", str(tmp_path / "reports")], ctx


def _rollback(base: list[str], *extra: str) -> Any:
    return CliRunner().invoke(cli, ["action", "rollback", *base, *extra], standalone_mode=False,
                              catch_exceptions=False)


def test_rollback_alerts_the_incident_channel_with_the_triggers(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        base, ctx = _setup(tmp_path, receiver)
        ctx.ledger.append({"kind": "trigger", **ctx.stamp(), "stage": "monitor", "name": "error-spike",
                           "evidence": "error rate 7.5% over 40 requests"})
        result = _rollback(base, "--reason", f"db at postgresql://app:{PASSWORD}@127.0.0.1:1/dac refuses", "--json")
        got = receiver.bodies()
    assert result.return_value == 1  # no env-switch backup here: the restore step fails, after the alert
    assert [b.path for b in got] == ["/incident"]  # only the channel subscribed to rollback
    text = got[0].json["text"]
    assert text.startswith("[ROLLBACK] Rollback trigger fired during the cutover: error-spike. Evidence: db at ")
    assert "error-spike: error rate 7.5% over 40 requests" in text and "Run night, lead Ada Lovelace" in text
    payload = json.loads(result.output)
    assert payload["notifications"] == [{"event": "rollback", "channel": "incident", "ok": True, "status": 200,
                                         "detail": payload["notifications"][0]["detail"]}]
    assert payload["failed_step"] == "restore-database-url"
    records = [r for r in ctx.ledger.records() if r["kind"] == "notification"]
    assert [(r["event"], r["channel"], r["ok"]) for r in records] == [("rollback", "incident", True)]
    rollback_at = next(r["ts"] for r in ctx.ledger.records() if r["kind"] == "rollback")
    assert records[0]["ts"] <= rollback_at  # the team hears of it before the steps run
    everything = result.output + "".join(b.raw.decode() for b in got) + (ctx.run_dir / "ledger.jsonl").read_text()
    assert PASSWORD not in everything


def test_a_manual_rollback_says_who_and_a_down_receiver_never_holds_it_up(tmp_path: Path) -> None:
    with WebhookReceiver() as receiver:
        base, ctx = _setup(tmp_path, receiver, path="/fail-incident")
        result = _rollback(base)
        got = receiver.bodies()
    assert result.return_value == 1
    assert len(got) == 1 and "manual rollback by " in got[0].json["text"]
    assert "WARNING cutover notification rollback via incident (slack) failed" in result.output
    assert "(the rollback went on)" in result.output
    steps = [r["step"] for r in ctx.ledger.records() if r["kind"] == "rollback"]
    assert steps == ["maintenance-on", "restore-database-url"]  # the failed alert did not stop the rollback
