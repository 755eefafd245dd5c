"""Tell every channel subscribed to a moment, and record each delivery in the run's ledger.

Pure of pytest, so the plugin (fixtures announcing moments) and command-line actions (for
example a manual rollback) notify the same way.  Delivering never raises for a receiver that
is down: the caller decides between a warning and a failure with :func:`failure_line` and
``channel.required``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_cutover.config import CutoverConfig, NotifyChannel
from pytest_cutover.context import RunContext
from pytest_cutover.errors import ConfigError
from pytest_cutover.notify.channels import Delivery, deliver
from pytest_cutover.notify.templates import message_facts, render_message
from pytest_cutover.redact import redact

__all__ = ["NOTIFY_EVENTS", "Sent", "failure_line", "notify"]

#: The moments the report contract lists under ``notifications`` (the others are not notified).
NOTIFY_EVENTS = ("maintenance-enabled", "maintenance-disabled", "rollback")


@dataclass(frozen=True)
class Sent:
    """One channel's delivery of one moment."""

    event: str
    name: str
    channel: NotifyChannel
    delivery: Delivery
    stage: str | None = None


def failure_line(sent: Sent) -> str:
    """One redacted line naming the moment, the channel and why the delivery failed."""
    where = f" [stage {sent.stage}]" if sent.stage else ""
    return redact(f"cutover notification {sent.event} via {sent.name} ({sent.channel.kind}) failed: "
                  f"{sent.delivery.detail}{where}")


def notify(context: RunContext, event: str, details: Mapping[str, Any], *, config: CutoverConfig | None = None,
           stage: str | None = None, test: str | None = None, invocation: str | None = None,
           only: Collection[str] | None = None) -> list[Sent]:
    """Deliver ``event`` to every channel of ``[notify]`` subscribed to it; one ledger record each.

    ``only`` names the channels to use whatever they subscribe to (an operator's explicit choice).
    """
    cutover = config if config is not None else context.config
    if cutover is None or not cutover.notify:
        return []
    unknown = sorted(set(only or ()) - set(cutover.notify))
    if unknown:
        raise ConfigError(f"no notify channel named {', '.join(unknown)}",
                          hint="configured channels: " + (", ".join(sorted(cutover.notify)) or "none"))
    facts = message_facts(event, details, run=context.run, lead=cutover.run.lead,
                          window_start=cutover.run.maintenance_start, window_end=cutover.run.maintenance_end,
                          report=str(context.run_dir / "report.json"))
    out = []
    for name, channel in cutover.notify.items():
        if (name not in only) if only else (event not in channel.events):
            continue
        try:
            delivery = deliver(channel, render_message(facts, channel.template, channel=name), facts)
        except ConfigError as exc:  # a template that cannot render is a failed delivery, said plainly
            delivery = Delivery(False, None, str(exc), attempts=0)
        context.ledger.append({
            "kind": "notification", **context.stamp(), "invocation": invocation, "stage": stage, "test": test,
            "event": event, "channel": name, "channel_kind": channel.kind, "required": channel.required,
            "ok": delivery.ok, "status": delivery.status, "detail": delivery.detail, "attempts": delivery.attempts,
        })
        out.append(Sent(event, name, channel, delivery, stage))
    return out
