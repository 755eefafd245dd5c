"""``cutover action NAME``: the same action objects the fixtures use, from a terminal.

Exit codes: 0 the action worked (and was verified), 1 it failed (the one-line
reason is printed, redacted, and the ledger has the record), 2 configuration
error (raised as :class:`~pytest_cutover.errors.ConfigError` for ``cli.main``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from pytest_cutover.cli_options import run_options

__all__ = ["action"]

EXIT_OK, EXIT_FAILED = 0, 1


def _context(config_path: Path | None, run: str | None, reports_dir: Path | None) -> Any:
    from pytest_cutover.context import context_from_options
    from pytest_cutover.errors import ConfigError

    ctx = context_from_options(config_path, run, reports_dir)
    if ctx.config is None:
        raise ConfigError("no config found: no ./cutover.toml and no [tool.cutover] in ./pyproject.toml",
                          hint="pass --config PATH")
    return ctx


def _run(func: Callable[[], Any], as_json: bool, show: Callable[[Any], str]) -> int:
    """Run one action; print its outcome; map an :class:`ActionError` to exit 1."""
    from pytest_cutover.actions.base import ActionError
    from pytest_cutover.cli import echo_json
    from pytest_cutover.redact import redact

    try:
        outcome = func()
    except ActionError as exc:
        if as_json:
            echo_json({"ok": False, "step": exc.step, "error": exc.message, "hint": exc.hint})
        else:
            click.echo(f"failed: {redact(exc)}", err=True)
        return EXIT_FAILED
    if as_json:
        echo_json(outcome.as_dict() if hasattr(outcome, "as_dict") else outcome)
    else:
        click.echo(redact(show(outcome)))
    return EXIT_OK


def _show_result(result: Any) -> str:
    return f"{result.action}: ok in {result.duration_s:.1f} s: {result.detail}"


@click.group()
def action() -> None:
    """Change the world during a cutover: maintenance, DATABASE_URL switch, restart, rollback."""


@action.command("maintenance")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def maintenance(state: str, config_path: Path | None, run: str | None, reports_dir: Path | None,
                as_json: bool) -> int:
    """Maintenance mode on/off by [app] maintenance (endpoint, env or file), verified by /health."""
    from pytest_cutover.actions.maintenance import Maintenance

    ctx = _context(config_path, run, reports_dir)
    m = Maintenance(ctx)
    if state == "status":
        return _run(m.status, as_json, lambda s: f"maintenance ({s.method}): flag {s.flag}, /health {s.health.state}"
                                                 f" ({s.health.evidence()})")
    return _run(m.enable if state == "on" else m.disable, as_json, _show_result)


@action.command("env-switch")
@run_options
@click.option("--url-env", metavar="VAR", default=None,
              help="Take the new DATABASE_URL from this environment variable (default: [target] app_database_url); "
                   "never pass a secret on the command line.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def env_switch(config_path: Path | None, run: str | None, reports_dir: Path | None, url_env: str | None,
               as_json: bool) -> int:
    """Point the app's DATABASE_URL at the transaction pooler (only that line; backup kept for rollback)."""
    from pytest_cutover.actions.env_switch import switch_database_url
    from pytest_cutover.errors import ConfigError
    from pytest_cutover.redact import Secret

    ctx = _context(config_path, run, reports_dir)
    new_url = None
    if url_env:
        if not os.environ.get(url_env):
            raise ConfigError(f"environment variable {url_env} is not set (needed by --url-env)",
                              hint=f"export {url_env}=postgresql+asyncpg://...:6543/...")
        new_url = Secret(os.environ[url_env])
    return _run(lambda: switch_database_url(ctx, new_url), as_json, _show_result)


@action.command("env-restore")
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def env_restore(config_path: Path | None, run: str | None, reports_dir: Path | None, as_json: bool) -> int:
    """Put the DATABASE_URL from before the switch back (from reports/.secrets/<run>/env-backup.json)."""
    from pytest_cutover.actions.env_switch import restore_database_url

    ctx = _context(config_path, run, reports_dir)
    return _run(lambda: restore_database_url(ctx), as_json, _show_result)


@action.command("restart")
@run_options
@click.option("--expect", type=click.Choice(["healthy", "maintenance", "up"]), default="healthy", show_default=True,
              help="The /health state to wait for after the start ('up' accepts healthy or maintenance).")
@click.option("--keep-maintenance/--no-keep-maintenance", default=True, show_default=True,
              help="An app in maintenance before the restart must be in maintenance after it (set again if lost).")
@click.option("--expect-database", type=click.Choice(["source", "target"]), default=None,
              help="Fail when the evidence says the restarted app uses the other database (an .env edit that did "
                   "not take effect).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def restart(config_path: Path | None, run: str | None, reports_dir: Path | None, expect: str,
            keep_maintenance: bool, expect_database: str | None, as_json: bool) -> int:
    """Stop the app, wait for its connections to drain, start it, wait for /health."""
    from pytest_cutover.actions.maintenance import restarter

    ctx = _context(config_path, run, reports_dir)
    app = restarter(ctx)
    return _run(lambda: app.restart(expect, keep_maintenance=keep_maintenance,
                                    expect_database=expect_database), as_json, _show_result)


@action.command("rollback")
@run_options
@click.option("--org", default=None, metavar="ORG",
              help="Org whose thread count proves the old system serves (default: the old DB's largest).")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why you roll back, for the incident alert (the run's fired triggers are sent with it).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def rollback(config_path: Path | None, run: str | None, reports_dir: Path | None, org: str | None,
             reason: str | None, as_json: bool) -> int:
    """The runbook's rollback: alert the incident channel, maintenance on, old DATABASE_URL back, restart,
    verify, maintenance off."""
    from pytest_cutover.actions.rollback import alert_rollback, failed_step, run_rollback
    from pytest_cutover.cli import echo_json
    from pytest_cutover.notify.dispatch import failure_line
    from pytest_cutover.redact import redact

    ctx = _context(config_path, run, reports_dir)
    sent = alert_rollback(ctx, reason=reason)  # first: the team hears of it while the steps run
    steps = run_rollback(ctx, org=org)
    failed = failed_step(steps)
    if as_json:
        echo_json({"ok": failed is None, "failed_step": failed.step if failed else None,
                   "steps": [s.as_dict() for s in steps],
                   "notifications": [{"event": n.event, "channel": n.name, "ok": n.delivery.ok,
                                      "status": n.delivery.status, "detail": n.delivery.detail} for n in sent]})
    else:
        if not sent:
            click.echo("no [notify] channel subscribes to rollback: alert the incident channel by hand", err=True)
        for n in sent:
            click.echo(redact(f"alerted {n.name} ({n.channel.kind}): {n.delivery.detail}") if n.delivery.ok
                       else f"WARNING {failure_line(n)} (the rollback went on)", err=not n.delivery.ok)
        for s in steps:
            click.echo(redact(f"{'ok    ' if s.ok else 'FAILED'} {s.step} ({s.duration_s:.1f} s): {s.detail}"))
        click.echo(f"rollback failed at step '{failed.step}'; maintenance left on" if failed else "rollback complete")
    return EXIT_OK if failed is None else EXIT_FAILED
