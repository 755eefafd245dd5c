"""``cutover report`` (rebuild, ``sign``, ``verify``) and ``cutover keygen``.

Exit codes: ``cutover report`` 0 when the run's status is SUCCESS, 1 otherwise (the report is
written either way); ``sign`` 0 when signed; ``verify`` 0 only when the signature and every
listed artefact match; 2 for usage or configuration errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pytest_cutover.cli_options import run_options

if TYPE_CHECKING:
    from pytest_cutover.context import RunContext

__all__ = ["DEFAULT_KEY", "keygen", "report"]

DEFAULT_KEY = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "pytest-cutover" / "signing.key"


def _report_path(config_path: Path | None, run: str | None, reports_dir: Path | None, path: Path | None) -> Path:
    if path is not None:
        return path
    from pytest_cutover.context import context_from_options
    from pytest_cutover.report.writer import REPORT_JSON

    return context_from_options(config_path, run, reports_dir).run_dir / REPORT_JSON


def _with_the_runs_config(run_ctx: RunContext) -> RunContext:
    """Without ``--config``, rebuild with the config the report was last built with, if it still exists.

    The lead, waivers, time zone and hosts come from the config, so a rebuild from another
    folder must not silently drop them.
    """
    import json

    from pytest_cutover.config import load_config
    from pytest_cutover.context import RunContext
    from pytest_cutover.report.writer import REPORT_JSON

    previous = run_ctx.run_dir / REPORT_JSON
    try:
        path = json.loads(previous.read_text("utf-8"))["environment"]["config_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return run_ctx
    if not path or not Path(path).is_file() or (run_ctx.config and run_ctx.config.path == path):
        return run_ctx
    click.echo(f"using the run's config {path} (pass --config to choose another)")
    return RunContext(run=run_ctx.run, reports_dir=run_ctx.reports_dir, config=load_config(path),
                      suite_dir=run_ctx.suite_dir)


def _append_acks(run_ctx: RunContext, names: tuple[str, ...]) -> None:
    """One ledger record ``{"kind": "ack", "who", "at"}`` per name: who acknowledged the report, and when."""
    from pytest_cutover.ledger import iso_utc

    for name in names:
        if not name.strip():
            raise click.UsageError("--ack needs a name (who acknowledges the report)")
    for name in names:
        run_ctx.ledger.append({"kind": "ack", **run_ctx.stamp(), "who": name.strip(), "at": iso_utc()})


_ACK_HELP = "Record that NAME acknowledged this report (repeatable); shown in the sign-off block."


@click.group(invoke_without_command=True)
@run_options
@click.option("--notes", default=None, help="Post-cutover notes: appended to the run's ledger, shown in the report.")
@click.option("--ack", "acks", multiple=True, metavar="NAME", help=_ACK_HELP)
@click.option("--no-allure", is_flag=True, help="Do not run `npx allure generate`.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def report(ctx: click.Context, config_path: Path | None, run: str | None, reports_dir: Path | None,
           notes: str | None, acks: tuple[str, ...], no_allure: bool, as_json: bool) -> int | None:
    """Rebuild reports/<run>/report.json and report.html from the run's ledger (exit 0 only on SUCCESS)."""
    if ctx.invoked_subcommand is not None:
        if acks:
            raise click.UsageError(f"--ack goes after the subcommand: cutover report {ctx.invoked_subcommand} "
                                   "--ack NAME")
        return None
    from pytest_cutover.cli import echo_json
    from pytest_cutover.context import context_from_options
    from pytest_cutover.report.writer import write_report_files
    from pytest_cutover.stages import SUCCESS

    run_ctx = context_from_options(config_path, run, reports_dir)
    if config_path is None:
        run_ctx = _with_the_runs_config(run_ctx)
    if not run_ctx.ledger.path.exists():
        click.echo(f"no ledger for run {run_ctx.run} at {run_ctx.ledger.path}: the report lists every stage as not-run",
                   err=True)
    if notes:
        run_ctx.ledger.append({"kind": "note", **run_ctx.stamp(), "text": notes})
    _append_acks(run_ctx, acks)
    result = write_report_files(run_ctx, generate_allure=not no_allure)
    data = result.report
    if as_json:
        echo_json(data)
    else:
        click.echo(f"{data['status']}: {data['status_reason']}")
        click.echo(f"report: {result.path}{'' if result.changed else ' (unchanged)'}")
        for message in result.messages:
            click.echo(message)
        for issue in data["issues"]:
            click.echo(f"  issue: {issue}")
    return 0 if data["status"] == SUCCESS else 1


@report.command("sign")
@run_options
@click.option("--key", "key_path", type=click.Path(path_type=Path), default=None,
              help=f"Ed25519 private key (default: {DEFAULT_KEY}).")
@click.option("--signer", default=None, help="Who signs (default: [run] lead).")
@click.option("--ack", "acks", multiple=True, metavar="NAME",
              help=_ACK_HELP + " The report is rebuilt with the acks before it is signed.")
@click.argument("path", type=click.Path(path_type=Path), required=False)
def sign(config_path: Path | None, run: str | None, reports_dir: Path | None, key_path: Path | None,
         signer: str | None, acks: tuple[str, ...], path: Path | None) -> int:
    """Sign report.json (PATH, default reports/<run>/report.json) and write report.json.sig."""
    from pytest_cutover.report.sign import sign_report

    target = _report_path(config_path, run, reports_dir, path)
    if not target.is_file():
        raise click.UsageError(f"no report at {target}: build it with `cutover report --run RUN` first")
    if acks:
        _ack_and_rebuild(target, config_path, acks)
    sig = sign_report(target, key_path or DEFAULT_KEY, signer=signer)
    click.echo(f"signed {target} with key {sig['public_key_fingerprint']}")
    click.echo(f"signature: {target.with_name(target.name + '.sig')}")
    return 0


def _ack_and_rebuild(target: Path, config_path: Path | None, acks: tuple[str, ...]) -> None:
    """Append the acks to the ledger beside ``target`` and rebuild the report, so the signature covers them."""
    import json

    from pytest_cutover.config import load_config
    from pytest_cutover.context import RunContext
    from pytest_cutover.ledger import LEDGER_NAME
    from pytest_cutover.report.writer import write_report_files

    folder = target.resolve().parent
    if not (folder / LEDGER_NAME).is_file():
        raise click.UsageError(f"no {LEDGER_NAME} beside {target}: --ack records into the run's ledger and rebuilds "
                               "the report from it; sign the report in its run folder")
    try:
        run = json.loads(target.read_text("utf-8"))["run"]
    except (OSError, ValueError, KeyError, TypeError):
        run = folder.name
    run_ctx = RunContext(run=run, reports_dir=folder.parent, config=load_config(config_path), suite_dir=Path.cwd())
    if run_ctx.run_dir.resolve() != folder:
        raise click.UsageError(f"{target} says run {run} but lives in {folder}: rebuild it with `cutover report` first")
    if config_path is None:
        run_ctx = _with_the_runs_config(run_ctx)
    _append_acks(run_ctx, acks)
    result = write_report_files(run_ctx, generate_allure=False)
    click.echo(f"acknowledged by {', '.join(a.strip() for a in acks)}; report rebuilt: {result.path}")


@report.command("verify")
@click.option("--pubkey", type=click.Path(path_type=Path, exists=True), default=None,
              help="The lead's public key: also check that it made the signature.")
@click.argument("path", type=click.Path(path_type=Path))
def verify(pubkey: Path | None, path: Path) -> int:
    """Check report.json's signature and the sha256 of every artefact it lists (exit 0 only if all match)."""
    from pytest_cutover.report.sign import verify_report

    if path.is_dir():
        path = path / "report.json"
    result = verify_report(path, pubkey=pubkey)
    if result.ok:
        click.echo(f"OK: {path} signed by {result.fingerprint}; {len(result.checked)} file(s) match: "
                   + ", ".join(result.checked))
        if pubkey is None:
            click.echo("note: compare that fingerprint with the lead's published one, or pass --pubkey")
        return 0
    click.echo(f"FAILED: {path}", err=True)
    for problem in result.problems:
        click.echo(f"  {problem}", err=True)
    return 1


@click.command()
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help=f"Where the private key goes (default: {DEFAULT_KEY}); the public key is written next to it "
                   "with .pub.")
@click.option("--force", is_flag=True, help="Replace an existing key.")
def keygen(out: Path | None, force: bool) -> int:
    """Make an Ed25519 key pair for signing reports (private key mode 0600)."""
    from pytest_cutover.report.sign import keygen as make_key

    private, public, fp = make_key(out or DEFAULT_KEY, force=force)
    click.echo(f"private key: {private} (mode 0600; keep it off shared disks)")
    click.echo(f"public key:  {public}")
    click.echo(f"fingerprint: {fp}")
    return 0
