"""Channels against a real loopback receiver and real commands: bodies, retries, failures."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from pytest_cutover.config import NotifyChannel
from pytest_cutover.notify.channels import deliver
from pytest_cutover.notify.templates import message_facts, render_message
from pytest_cutover.rehearsal.procs import free_port

from .conftest import Receiver

FACTS = message_facts("maintenance-enabled", {"detail": "maintenance on"}, run="r1", lead="Ana",
                      window_start="2026-11-28 22:00 UTC", window_end="2026-11-29 02:00 UTC",
                      report="reports/r1/report.json")


def test_generic_webhook_gets_the_event_document(receiver: Receiver) -> None:
    channel = NotifyChannel(kind="webhook", url=receiver.url("/hook"))
    delivery = deliver(channel, "hello users", FACTS)
    assert (delivery.ok, delivery.status, delivery.attempts) == (True, 200, 1)
    [got] = receiver.bodies("/hook")
    assert got.json == {"event": "maintenance-enabled", "status": "MAINTENANCE", "run": "r1", "lead": "Ana",
                        "window": {"start": "2026-11-28 22:00 UTC", "end": "2026-11-29 02:00 UTC"},
                        "report": "reports/r1/report.json", "details": {"detail": "maintenance on"},
                        "text": "hello users"}


def test_slack_webhook_gets_only_text(receiver: Receiver) -> None:
    delivery = deliver(NotifyChannel(kind="slack", url=receiver.url("/slack")), "hi", FACTS)
    assert delivery.ok
    assert [r.json for r in receiver.bodies("/slack")] == [{"text": "hi"}]


def test_a_500_is_retried_then_reported_not_raised(receiver: Receiver) -> None:
    channel = NotifyChannel(kind="webhook", url=receiver.url("/fail/token-abc123"), retries=3)
    delivery = deliver(channel, "x", FACTS)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, 500, 3)
    assert len(receiver.bodies("/fail/token-abc123")) == 3
    assert "HTTP 500 after 3 attempt(s): receiver down" in delivery.detail
    assert "token-abc123" not in delivery.detail  # the URL (it carries a token) is never echoed


def test_a_500_then_200_is_delivered_on_the_second_attempt(receiver: Receiver) -> None:
    delivery = deliver(NotifyChannel(kind="webhook", url=receiver.url("/flaky")), "x", FACTS)
    assert (delivery.ok, delivery.status, delivery.attempts) == (True, 200, 2)


def test_connection_refused_is_retried_and_reported() -> None:
    channel = NotifyChannel(kind="slack", url=f"http://127.0.0.1:{free_port()}/x", retries=2, timeout_s=2)
    started = time.monotonic()
    delivery = deliver(channel, "x", FACTS)
    assert (delivery.ok, delivery.status, delivery.attempts) == (False, None, 2)
    assert delivery.detail.startswith("ConnectError after 2 attempt(s)")
    assert time.monotonic() - started < 10


def test_command_channel_gets_the_message_on_stdin_and_the_event_in_env(tmp_path: Path) -> None:
    out = tmp_path / "mail.txt"
    script = ("import os, sys; open(sys.argv[1], 'w').write(os.environ['CUTOVER_EVENT'] + '|' + sys.stdin.read())")
    channel = NotifyChannel(kind="command", command=f"{sys.executable} -c \"{script}\" '{out}'")
    delivery = deliver(channel, "maintenance starts now", FACTS)
    assert (delivery.ok, delivery.status) == (True, 0)
    assert out.read_text() == "maintenance-enabled|maintenance starts now"


@pytest.mark.parametrize(("command", "status", "detail"), [
    (f"{sys.executable} -c \"import sys; sys.stderr.write('smtp refused password=hunter22'); sys.exit(3)\"", 3,
     "exited 3: smtp refused password=***"),
    ("/nonexistent/pager-cli --page", None, "command not found: /nonexistent/pager-cli"),
    (f"{sys.executable} -c \"import time; time.sleep(30)\"", None, "timed out after 0.5s"),
])
def test_command_channel_failures_are_reported(command: str, status: int | None, detail: str) -> None:
    delivery = deliver(NotifyChannel(kind="command", command=command, timeout_s=0.5), "m", FACTS)
    assert (delivery.ok, delivery.status) == (False, status)
    assert detail in delivery.detail
    assert "hunter22" not in delivery.detail


def test_templates_carry_the_facts_and_are_redacted() -> None:
    rollback = message_facts("rollback", {"triggers": ["error-spike"],
                                          "evidence": "error rate 7% on postgresql://app:Pw-9931xyz@db:6543/x"},
                             run="r1", lead="Ana", window_start=None, window_end=None, report="reports/r1/report.json")
    text = render_message(rollback)
    assert text.startswith("[ROLLBACK] Rollback trigger fired during the cutover: error-spike.")
    assert "postgresql://app:***@db:6543/x" in text and "Pw-9931xyz" not in text
    assert "Run r1, lead Ana. Report: reports/r1/report.json" in text
    assert "Maintenance window: 2026-11-28 22:00 UTC to 2026-11-29 02:00 UTC." in render_message(FACTS)
    assert render_message(FACTS, "{{ run }} token={{ 'abc12345' }}") == "r1 token=***"


def test_config_rejects_incomplete_channels() -> None:
    from pytest_cutover.config import parse_config
    from pytest_cutover.errors import ConfigError

    with pytest.raises(ConfigError, match="needs url"):
        parse_config({"notify": {"users": {"kind": "slack"}}})
    with pytest.raises(ConfigError, match=re.escape("notify.p.events.0: input should be 'maintenance-enabled'")):
        parse_config({"notify": {"p": {"kind": "command", "command": "mail", "events": ["switched"]}}})
    with pytest.raises(ConfigError, match="needs command"):
        parse_config({"notify": {"p": {"kind": "command"}}})
    cfg = parse_config({"notify": {"users": {"kind": "webhook", "url": "https://hooks.example/T1/secretpath"}}})
    assert cfg.notify["users"].events == ("maintenance-enabled", "maintenance-disabled", "rollback")
    assert cfg.notify["users"].required is False


def test_a_webhook_url_token_is_masked_everywhere() -> None:
    from pytest_cutover.config import parse_config
    from pytest_cutover.redact import redact

    url = "https://hooks.slack.com/services/T0AAA/B0BBB/tok3nXYZ998877"
    cfg = parse_config({"notify": {"incident": {"kind": "slack", "url": url}}})
    assert str(cfg.notify["incident"].url) == "***"
    assert "tok3nXYZ998877" not in str(cfg.model_dump(mode="json"))
    assert "tok3nXYZ998877" not in redact(f"posting to {url} failed")


def test_rehearsal_notify_toml_is_a_valid_config_pointing_at_the_receiver(receiver: Receiver) -> None:
    import tomllib

    from pytest_cutover.config import parse_config
    from pytest_cutover.notify.receiver import rehearsal_notify_toml

    cfg = parse_config(tomllib.loads(rehearsal_notify_toml(receiver)))
    assert sorted(cfg.notify) == ["incident", "stakeholders", "users"]
    assert cfg.notify["incident"].required and cfg.notify["incident"].events == ("rollback",)
    delivery = deliver(cfg.notify["users"], "m", FACTS)
    assert delivery.ok and [r.path for r in receiver.bodies()] == ["/users"]


def test_a_malformed_or_unsupported_url_is_a_failed_delivery_not_a_crash() -> None:
    for url in ("ftp://127.0.0.1/x", "http://[::1/x"):
        delivery = deliver(NotifyChannel(kind="webhook", url=url, retries=1), "m", FACTS)
        assert (delivery.ok, delivery.status) == (False, None), delivery
