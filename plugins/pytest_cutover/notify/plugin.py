"""Answer ``pytest_cutover_event``: deliver to every subscribed channel and record each delivery.

Each delivery appends a ledger record of kind ``notification`` ``{event, channel, ok, status,
detail, ...}`` (the report lists them, and a failed one as an issue).  A failed delivery is
non-fatal by default: the suite runs with ``filterwarnings = error``, so it is NOT a Python
warning (that would fail the test); it is printed at once through the terminal reporter (with
capture suspended, as live logging does) and repeated in a "cutover notifications" summary
section.  A channel marked ``required = true`` raises :class:`NotifyFailed` after every channel
was tried, so the fixture that announced the moment errors and its stage fails -- except for
``rollback``: the fixture announces it right before it rolls back, and a pager being down must
never hold up a rollback, so that failure is printed as an ERROR line and listed in the report.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.errors import CutoverError
from pytest_cutover.notify.dispatch import failure_line, notify
from pytest_cutover.redact import redact
from pytest_cutover.util.pluginreg import register_once

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
        from pytest_cutover.session_keys import SESSION_KEY, STAGE_KEY

        session = config.stash.get(SESSION_KEY, None)
        if session is None or session.cutover_config is None or not session.cutover_config.notify:
            return
        item = self.item
        sent = notify(session.context, event, details, config=session.cutover_config,
                      stage=item.stash.get(STAGE_KEY, None) if item is not None else None,
                      test=item.nodeid if item is not None else None, invocation=session.invocation)
        required_failures = []
        for one in sent:
            if one.delivery.ok:
                self.delivered += 1
            elif one.channel.required and event != "rollback":
                required_failures.append(failure_line(one))
            elif one.channel.required:  # raising here would stop the fixture before it rolls back
                self.failures.append(failure_line(one))
                self._say(f"ERROR {failure_line(one)} (required, but a rollback is never held up by a notification)")
            else:
                self.failures.append(failure_line(one))
                self._say(f"WARNING {failure_line(one)} (not required: the run goes on)")
        if required_failures:
            raise NotifyFailed("; ".join(required_failures),
                               hint="the channel is marked required = true in [notify.NAME]: fix the receiver "
                                    "and re-run the stage, or set required = false")

    def _this_invocation(self) -> tuple[int, list[str]]:
        """Delivered count and the failures that did not fail a stage, for this invocation, from the ledger (so the
        controller also sees what its xdist workers sent); this process's own tally if unreadable."""
        from pytest_cutover.session_keys import SESSION_KEY

        session = self.config.stash.get(SESSION_KEY, None)
        if session is None or session.cutover_config is None or not session.cutover_config.notify:
            return self.delivered, self.failures
        try:
            records = [r for r in session.context.ledger.records()
                       if r.get("kind") == "notification" and r.get("invocation") == session.invocation]
        except CutoverError:
            return self.delivered, self.failures
        # Required failures of other events failed their stage (shown there); rollback's are listed here.
        lines = [redact(f"cutover notification {r.get('event')} via {r.get('channel')} ({r.get('channel_kind')}) "
                        f"failed: {r.get('detail')}" + (f" [stage {r['stage']}]" if r.get("stage") else ""))
                 for r in records if not r.get("ok") and (not r.get("required") or r.get("event") == "rollback")]
        return sum(1 for r in records if r.get("ok")), lines

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput"):
            return
        delivered, failures = self._this_invocation()
        if not failures:
            return
        terminalreporter.section("cutover notifications", yellow=True)
        terminalreporter.write_line(f"{delivered} delivered, {len(failures)} failed without failing a stage:")
        for line in failures:
            terminalreporter.write_line(line, yellow=True)


def register(config: pytest.Config) -> NotifyPlugin:
    """Register the notification hooks once for this pytest process (idempotent)."""
    return register_once(config, PLUGIN_NAME, NotifyPlugin)


@pytest.hookimpl(trylast=True)  # after plugin.py's: the summary section then comes before the exit status line
def pytest_configure(config: pytest.Config) -> None:
    """Register the hook object: this module is loaded by ``pytest_plugins`` in :mod:`pytest_cutover.plugin`
    (or with ``-p pytest_cutover.notify.plugin``)."""
    register(config)
