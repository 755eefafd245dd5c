"""The ``cutover`` command: a thin shell over the library the plugin uses.

Exit codes: 0 ok, 1 checks failed, 2 usage or configuration error.  Commands that
live in other packages (``rehearse``, ``migrate``, ``report``...) are imported on
first use, so ``cutover --help`` stays fast and a missing part says so clearly.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from pytest_cutover.errors import CutoverError, NotAvailableError
from pytest_cutover.redact import redact

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "cli", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# name -> (module, attribute, one-line help).  Each module exposes a click command.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("pytest_cutover.init", "init", "Start an operator directory: a commented cutover.toml, a .gitignore."),
    "status": ("pytest_cutover.status", "status", "Show the stages of a run from its ledger."),
    "config": ("pytest_cutover.cli_config", "config", "Validate and print the cutover config (redacted)."),
    "rehearse": ("pytest_cutover.rehearsal.cli", "rehearse",
                 "Build the embedded stack and run every stage against it."),
    "migrate": ("pytest_cutover.migrate.cli", "migrate", "Move vectors and BLOBs; check relational parity."),
    "plan": ("pytest_cutover.plan.cli", "plan", "Budget the night: each step's estimated time against the window."),
    "action": ("pytest_cutover.actions.cli", "action", "Run one cutover action (maintenance, switch, rollback)."),
    "report": ("pytest_cutover.report.cli", "report", "Build, sign and verify the sign-off report."),
    "keygen": ("pytest_cutover.report.cli", "keygen", "Make an Ed25519 key pair for signing reports."),
    "notify": ("pytest_cutover.notify.cli", "notify", "Send a cutover notification (or test the channels)."),
    "decommission": ("pytest_cutover.week1.cli", "decommission",
                     "Record who decided to decommission the old infrastructure (refused unless ready)."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when they are invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return None
        module_name, attr, help_text = LAZY_COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith(module_name.rsplit(".", 1)[0]):
                raise
            return _not_available(cmd_name, help_text)
        return getattr(module, attr)


def _not_available(name: str, help_text: str) -> click.Command:
    @click.command(name=name, help=f"{help_text} (not yet available in this version)",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def command() -> None:
        raise NotAvailableError(f"cutover {name} is not yet available in this version of pytest-cutover",
                                hint="see the README for what is implemented")

    return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """pytest-cutover: run a database cutover as gated stages and sign it off."""
    ctx.ensure_object(dict)["debug"] = debug


def echo_json(data: Any) -> None:
    """Print ``data`` as redacted, indented JSON (for ``--json``)."""
    click.echo(redact(json.dumps(data, indent=2, sort_keys=True, default=str)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="cutover", standalone_mode=False,
                      obj={"argv": list(argv if argv is not None else sys.argv[1:])})  # records carry it
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_FAILED
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except CutoverError as exc:
        if debug:
            raise
        click.echo(f"error: {redact(exc)}", err=True)
        return EXIT_USAGE
    return rv if isinstance(rv, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
