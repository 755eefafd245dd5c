"""The plugin end to end under pytester: a staged suite announces moments, a real receiver hears them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..core.conftest import CutoverRun
from .conftest import CutoverPytester, Receiver

PASSWORD = "Dsn-Pw-7731-zq"

SUITE = '''
import pytest
from pytest_cutover.plugin import announce

@pytest.fixture(scope="module")
def maintenance(pytestconfig):
    announce(pytestconfig, "maintenance-enabled", detail="maintenance on, /health says so")
    return True

@pytest.mark.precutover
def test_pre():
    pass

@pytest.mark.sync
def test_sync(maintenance):
    assert maintenance

@pytest.mark.switch
def test_switch():
    pass

@pytest.mark.smoke
def test_smoke():
    pass

@pytest.mark.rls
def test_rls():
    pass

@pytest.mark.monitor
def test_monitor(pytestconfig):
    announce(pytestconfig, "monitor-started", window_s=1)
    announce(pytestconfig, "rollback", triggers=["error-spike"],
             evidence="error rate 7.2% talking to postgresql://app:PASSWORD@db.example:6543/postgres")
    announce(pytestconfig, "maintenance-disabled", detail="maintenance off")
'''.replace("PASSWORD", PASSWORD)

SYNC_ONLY = '''
import pytest
from pytest_cutover.plugin import announce

@pytest.fixture(scope="module")
def maintenance(pytestconfig):
    announce(pytestconfig, "maintenance-enabled")
    return True

@pytest.mark.precutover
def test_pre():
    pass

@pytest.mark.sync
def test_sync(maintenance):
    assert maintenance
'''


def _config(cp: CutoverPytester, channels: str) -> None:
    cp.pytester.makefile(".toml", cutover=f'''
[run]
lead = "Ana Lead"
maintenance_start = "2026-11-28 22:00 UTC"
maintenance_end = "2026-11-29 02:00 UTC"

[target]
database_url = "postgresql://postgres:{PASSWORD}@db.example:5432/postgres"
{channels}
''')


def _run(cp: CutoverPytester, notify_args: list[str], *args: str) -> CutoverRun:
    return cp.run(*notify_args, "-W", "error", *args)


def _notifications(run: CutoverRun) -> list[dict[str, Any]]:
    return [r for r in run.records() if r["kind"] == "notification"]


def test_each_contract_event_reaches_its_channels_without_secrets(
        cutover_pytester: CutoverPytester, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
        notify_args: list[str]) -> None:
    monkeypatch.setenv("CUTOVER_ALLURE_HTML", "0")
    _config(cutover_pytester, f'''
[notify.users]
kind = "webhook"
url = "{receiver.url('/users')}"
events = ["maintenance-enabled", "maintenance-disabled"]

[notify.incident]
kind = "slack"
url = "{receiver.url('/incident')}"
events = ["rollback"]
required = true
''')
    cutover_pytester.suite(SUITE)
    run = _run(cutover_pytester, notify_args)
    assert run.result.ret == 0, run.output

    users = [r.json for r in receiver.bodies("/users")]
    assert [b["event"] for b in users] == ["maintenance-enabled", "maintenance-disabled"]
    assert [b["status"] for b in users] == ["MAINTENANCE", "LIVE"]
    for body in users:
        assert body["run"] == "r1" and body["lead"] == "Ana Lead"
        assert body["window"] == {"start": "2026-11-28 22:00 UTC", "end": "2026-11-29 02:00 UTC"}
        assert body["report"].endswith("reports/r1/report.json")
        assert "Maintenance window: 2026-11-28 22:00 UTC to 2026-11-29 02:00 UTC." in body["text"]
    [incident] = [r.json for r in receiver.bodies("/incident")]
    assert incident["text"].startswith("[ROLLBACK] Rollback trigger fired during the cutover: error-spike. "
                                       "Evidence: error rate 7.2% talking to postgresql://app:***@db.example:6543")
    everything = b"".join(r.raw for r in receiver.bodies())
    assert PASSWORD.encode() not in everything
    assert PASSWORD not in run.ledger_path.read_text()

    records = _notifications(run)
    assert [(r["event"], r["channel"], r["ok"], r["status"], r["stage"]) for r in records] == [
        ("maintenance-enabled", "users", True, 200, "sync"),
        ("rollback", "incident", True, 200, "monitor"),
        ("maintenance-disabled", "users", True, 200, "monitor"),
    ]
    report = json.loads((run.ledger_path.parent / "report.json").read_text())
    assert [(n["event"], n["channel"], n["ok"]) for n in report["notifications"]] == [
        ("maintenance-enabled", "users", True), ("rollback", "incident", True),
        ("maintenance-disabled", "users", True)]


def test_a_failing_channel_is_a_warning_and_a_ledger_record(cutover_pytester: CutoverPytester,
                                                            receiver: Receiver, notify_args: list[str]) -> None:
    _config(cutover_pytester, f'''
[notify.users]
kind = "webhook"
url = "{receiver.url('/fail/users')}"
retries = 2
''')
    cutover_pytester.suite(SYNC_ONLY)
    run = _run(cutover_pytester, notify_args)
    assert run.result.ret == 0, run.output
    assert len(receiver.bodies("/fail/users")) == 2  # retried
    [record] = _notifications(run)
    assert (record["event"], record["channel"], record["ok"], record["status"]) == (
        "maintenance-enabled", "users", False, 500)
    assert run.verdicts() == {"precutover": "passed", "sync": "passed"}
    assert "WARNING cutover notification maintenance-enabled via users (webhook) failed: HTTP 500 after 2 " \
           "attempt(s): receiver down [stage sync] (not required: the run goes on)" in run.output
    assert "cutover notifications" in run.output  # summary section
    report = json.loads((run.ledger_path.parent / "report.json").read_text())
    assert "notification maintenance-enabled via users failed (status 500)" in report["issues"]
    assert "/fail/users" not in run.output


def test_a_required_channel_failing_fails_the_announcing_stage(cutover_pytester: CutoverPytester,
                                                               receiver: Receiver, notify_args: list[str]) -> None:
    _config(cutover_pytester, f'''
[notify.users]
kind = "webhook"
url = "{receiver.url('/users')}"

[notify.pager]
kind = "command"
command = "/nonexistent/pager-cli --page oncall"
required = true
''')
    cutover_pytester.suite(SYNC_ONLY)
    run = _run(cutover_pytester, notify_args)
    assert run.result.ret == 1, run.output
    assert run.verdicts() == {"precutover": "passed", "sync": "failed"}
    assert [(r["channel"], r["ok"]) for r in _notifications(run)] == [("users", True), ("pager", False)]
    assert len(receiver.bodies("/users")) == 1  # every channel is tried before the required one fails the stage
    assert "NotifyFailed: cutover notification maintenance-enabled via pager (command) failed: " \
           "command not found: /nonexistent/pager-cli" in run.output


def test_without_notify_config_nothing_is_sent_or_recorded(cutover_pytester: CutoverPytester,
                                                           notify_args: list[str]) -> None:
    _config(cutover_pytester, "")
    cutover_pytester.suite(SYNC_ONLY)
    run = _run(cutover_pytester, notify_args)
    assert run.result.ret == 0, run.output
    assert _notifications(run) == []


@pytest.mark.slow
def test_under_xdist_the_controller_summarises_what_workers_sent(cutover_pytester: CutoverPytester,
                                                                 receiver: Receiver, notify_args: list[str]) -> None:
    _config(cutover_pytester, f'''
[notify.users]
kind = "webhook"
url = "{receiver.url('/users')}"

[notify.stakeholders]
kind = "slack"
url = "{receiver.url('/fail/stakeholders')}"
retries = 1
''')
    cutover_pytester.suite(SYNC_ONLY)
    run = cutover_pytester.run(*notify_args, "-n", "2", subprocess=True)
    assert run.result.ret == 0, run.output
    assert [(r["channel"], r["ok"], r["status"]) for r in _notifications(run)] == [
        ("users", True, 200), ("stakeholders", False, 500)]
    assert "1 delivered, 1 failed without failing a stage:" in run.output
    assert "via stakeholders (slack) failed: HTTP 500 after 1 attempt(s): receiver down [stage sync]" in run.output


ROLLBACK_ONLY = SYNC_ONLY.replace('"maintenance-enabled")', '"rollback", triggers=["error-spike"], evidence="5xx")')


def test_a_required_channel_never_holds_up_a_rollback(cutover_pytester: CutoverPytester, receiver: Receiver,
                                                      notify_args: list[str]) -> None:
    _config(cutover_pytester, f'''
[notify.incident]
kind = "slack"
url = "{receiver.url('/fail/incident')}"
required = true
retries = 1
''')
    cutover_pytester.suite(ROLLBACK_ONLY)
    run = _run(cutover_pytester, notify_args)
    assert run.result.ret == 0, run.output  # the fixture went on (to roll back, on the night)
    assert [(r["event"], r["ok"], r["required"]) for r in _notifications(run)] == [("rollback", False, True)]
    assert "ERROR cutover notification rollback via incident (slack) failed: HTTP 500 after 1 attempt(s)" in run.output
    assert "0 delivered, 1 failed without failing a stage:" in run.output
