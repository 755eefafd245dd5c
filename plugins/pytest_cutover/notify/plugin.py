"""Answer ``pytest_cutover_event``: deliver to every subscribed channel and record each delivery.

Each delivery appends a ledger record of kind ``notification`` ``{event, channel, ok, status,
detail, ...}`` (the report lists them, and a failed one as an issue).  A failed delivery is
non-fatal by default: the suite runs with ``filterwarnings = error``, so it is NOT a Python
warning (that would fail the test); it is printed at once through the terminal reporter (with
capture suspended, as live logging does) and repeated in a "cutover notifications" summary
section.  A channel marked ``required = true`` raises :class:`NotifyFailed` after every channel
was tried, so the fixture that announced the moment errors and its stage fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.config import NotifyChannel
from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.notify.channels import Delivery, deliver
from pytest_cutover.notify.templates import message_facts, render_message
from pytest_cutover.redact import redact

__all__ = ["PLUGIN_NAME", "NotifyFailed", "NotifyPlugin", "register"]

PLUGIN_NAME = "cutover-notify"


class NotifyFailed(CutoverError, RuntimeError):
    """A channel marked ``required`` could not be told about a cutover moment."""


class NotifyPlugin:
    """Notification hooks of one pytest process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.item: pytest.Item | None = None
        self.failures: list[str] = []
        self.delivered = 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        self.item = item  # events are announced from fixtures of the running item: name its stage
        try:
            return (yield)
        finally:
            self.item = None

    def _where(self) -> dict[str, Any]:
        from pytest_cutover.plugin import STAGE_KEY

        if self.item is None:
            return {"stage": None, "test": None}
        return {"stage": self.item.stash.get(STAGE_KEY, None), "test": self.item.nodeid}

    def _say(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is not None:
            with capman.global_and_fixture_disabled():
                reporter.write_line(line, yellow=True, bold=True)
        else:
            reporter.write_line(line, yellow=True, bold=True)

    def pytest_cutover_event(self, config: pytest.Config, event: str, details: dict[str, Any]) -> None:
        from pytest_cutover.plugin import SESSION_KEY

        session = config.stash.get(SESSION_KEY, None)
        cutover = session.cutover_config if session is not None else None
        if cutover is None or not cutover.notify:
            return
        context = session.context
        facts = message_facts(event, details, run=context.run, lead=cutover.run.lead,
                              window_start=cutover.run.maintenance_start, window_end=cutover.run.maintenance_end,
                              report=str(context.run_dir / "report.json"))
        where = self._where()
        required_failures = []
        for name, channel in cutover.notify.items():
            if event not in channel.events:
                continue
            delivery = self._send(name, channel, facts)
            context.ledger.append({
                "kind": "notification", **context.stamp(), **where,
                "event": event, "channel": name, "channel_kind": channel.kind, "required": channel.required,
                "ok": delivery.ok, "status": delivery.status, "detail": delivery.detail, "attempts": delivery.attempts,
            })
            if delivery.ok:
                self.delivered += 1
                continue
            line = redact(f"cutover notification {event} via {name} ({channel.kind}) failed: {delivery.detail}"
                          + (f" [stage {where['stage']}]" if where["stage"] else ""))
            if channel.required:
                required_failures.append(line)
            else:
                self.failures.append(line)
                self._say(f"WARNING {line} (not required: the run goes on)")
        if required_failures:
            raise NotifyFailed("; ".join(required_failures),
                               hint="the channel is marked required = true in [notify.NAME]: fix the receiver "
                                    "and re-run the stage, or set required = false")

    @staticmethod
    def _send(name: str, channel: NotifyChannel, facts: dict[str, Any]) -> Delivery:
        try:
            message = render_message(facts, channel.template, channel=name)
        except ConfigError as exc:
            return Delivery(False, None, str(exc), attempts=0)
        return deliver(channel, message, facts)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.failures:
            return
        terminalreporter.section("cutover notifications", yellow=True)
        terminalreporter.write_line(f"{self.delivered} delivered, {len(self.failures)} failed (not required):")
        for line in self.failures:
            terminalreporter.write_line(redact(line), yellow=True)


def register(config: pytest.Config) -> NotifyPlugin:
    """Register the notification hooks once for this pytest process (idempotent)."""
    existing = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if existing is not None:
        return existing
    plugin = NotifyPlugin(config)
    config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin


def pytest_configure(config: pytest.Config) -> None:
    """``-p pytest_cutover.notify.plugin`` registers the plugin."""
    register(config)
