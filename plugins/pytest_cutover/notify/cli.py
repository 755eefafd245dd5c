"""``cutover notify EVENT``: send a cutover moment's notification by hand (or test the channels).

Uses the same channels, templates and ledger records as the suite's fixtures.  Exit codes:
0 every selected channel took the message, 1 at least one delivery failed (each is printed,
redacted, and recorded in the ledger), 2 configuration error (no config, no channel, an
unknown event or channel name: raised as :class:`~pytest_cutover.errors.ConfigError`).
"""

from __future__ import annotations

from pathlib import Path

import click

from pytest_cutover.cli_options import run_options

__all__ = ["notify"]

EXIT_OK, EXIT_FAILED = 0, 1


def _details(pairs: tuple[str, ...]) -> dict[str, str]:
    from pytest_cutover.errors import ConfigError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--detail {pair!r} is not KEY=VALUE", hint="for example --detail evidence='error 7%'")
        out[key] = value
    return out


@click.command("notify")
@click.argument("event")
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="Send through this [notify.NAME] channel only (repeatable), whatever events it subscribes to.")
@click.option("--detail", "details", multiple=True, metavar="KEY=VALUE",
              help="A fact for the message, e.g. --detail triggers=error-spike --detail evidence='...' (repeatable).")
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def notify(event: str, channels: tuple[str, ...], details: tuple[str, ...], config_path: Path | None,
           run: str | None, reports_dir: Path | None, as_json: bool) -> int:
    """Send EVENT (maintenance-enabled, maintenance-disabled or rollback) to its channels."""
    from pytest_cutover.cli import echo_json
    from pytest_cutover.context import context_from_options
    from pytest_cutover.errors import ConfigError
    from pytest_cutover.notify.dispatch import NOTIFY_EVENTS, failure_line
    from pytest_cutover.notify.dispatch import notify as send
    from pytest_cutover.redact import redact, redact_obj

    if event not in NOTIFY_EVENTS:
        raise ConfigError(f"unknown notification event {event}", hint="known events: " + ", ".join(NOTIFY_EVENTS))
    facts = redact_obj(_details(details))
    if "triggers" in facts:
        facts["triggers"] = [t for t in facts["triggers"].split(",") if t]
    ctx = context_from_options(config_path, run, reports_dir)
    if ctx.config is None or not ctx.config.notify:
        raise ConfigError("no notify channels configured", hint="add a [notify.NAME] section to cutover.toml")
    sent = send(ctx, event, facts, only=channels or None)
    if not sent:
        raise ConfigError(f"no notify channel subscribes to {event}",
                          hint="add it to a channel's events, or pick one with --channel NAME")
    if as_json:
        echo_json([{"event": s.event, "channel": s.name, "kind": s.channel.kind, "ok": s.delivery.ok,
                    "status": s.delivery.status, "attempts": s.delivery.attempts, "detail": s.delivery.detail}
                   for s in sent])
    else:
        for s in sent:
            click.echo(redact(f"{s.name} ({s.channel.kind}): delivered, {s.delivery.detail}") if s.delivery.ok
                       else failure_line(s), err=not s.delivery.ok)
    return EXIT_OK if all(s.delivery.ok for s in sent) else EXIT_FAILED
