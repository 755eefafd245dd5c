"""``cutover migrate vectors|blobs|parity``: thin commands over :mod:`pytest_cutover.migrate.api`.

Each command appends one ``migration`` record (kind, ok, mode, messages, figures) to the run's
ledger and exits 0 when the step passed, 1 when it found a problem, 2 on a usage or
configuration error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from pytest_cutover.cli_options import run_options
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import redact

__all__ = ["migrate"]


@click.group()
def migrate() -> None:
    """Move vectors and BLOBs to the target; check relational parity."""


def _context(config_path: Path | None, run: str | None, reports_dir: Path | None) -> Any:
    from pytest_cutover.context import context_from_options

    ctx = context_from_options(config_path, run, reports_dir)
    if ctx.config is None:
        raise ConfigError("no cutover config found", hint="pass --config PATH or create ./cutover.toml")
    return ctx


def _events_writer(path: Path | None) -> Callable[[str, dict[str, Any]], None] | None:
    """Append one JSON line per engine event to ``path``, unbuffered (a killed run leaves a true record)."""
    if path is None:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(name: str, data: dict[str, Any]) -> None:
        os.write(fd, (json.dumps({"event": name, "pid": os.getpid(), **data}, default=str) + "\n").encode())

    return write


@contextmanager
def _progress(enabled: bool, label: str):  # type: ignore[no-untyped-def]
    """A rich progress bar with points/s and ETA; yields the ``on_progress`` callback (or ``None``)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class _Rate(TextColumn):
        def render(self, task: Any) -> Any:
            from rich.text import Text

            return Text(f"{task.speed or 0:,.0f} points/s")

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), _Rate(""),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), transient=False,
                  console=Console(stderr=True)) as bar:  # stdout stays clean for --json
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _finish(ctx: Any, outcome: Any, as_json: bool, options: dict[str, Any]) -> int:
    from pytest_cutover.cli import EXIT_FAILED, EXIT_OK, echo_json
    from pytest_cutover.migrate.api import record_migration

    record_migration(ctx, outcome, options)
    if as_json:
        echo_json({"run": ctx.run, "step": outcome.kind, "ok": outcome.ok, "mode": outcome.mode,
                   "messages": outcome.messages, "figures": outcome.figures})
    else:
        for line in outcome.messages:
            click.echo(redact(f"{'ok' if outcome.ok else 'FAILED'}: {outcome.kind}: {line}"))
    return EXIT_OK if outcome.ok else EXIT_FAILED


def _mode(presync: bool, full: bool) -> str:
    if presync and full:
        raise click.UsageError("--presync and --full exclude each other")
    return "presync" if presync else ("full" if full else "auto")


_PRESYNC_HELP = ("Day 7, app live: load everything, verify, and record per key what was read, so the final sync "
                 "(same run) sends only what changed since.  Safe to run again.")
_FULL_HELP = "Ignore this run's pre-sync: copy everything (the final sync is a delta when a pre-sync exists)."


@migrate.command()
@run_options
@click.option("--presync", is_flag=True, help=_PRESYNC_HELP)
@click.option("--full", is_flag=True, help=_FULL_HELP)
@click.option("--dry-run", is_flag=True, help="Read and account for every point without writing.")
@click.option("--resume", is_flag=True, help="Continue from this run's checkpoint instead of starting over.")
@click.option("--verify-source", is_flag=True, help="Also re-read Qdrant and compare (costs about a migration).")
@click.option("--no-verify", is_flag=True, help="Skip the bit-for-bit check against the read digests.")
@click.option("--no-index", is_flag=True, help="Do not (re)build the HNSW index after loading.")
@click.option("--no-search-parity", is_flag=True, help="Skip recall@k against Qdrant's exact search.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Points per page/COPY/commit.")
@click.option("--pace", type=click.FloatRange(0), default=0.0, help="Seconds to pause between batches (throttle).")
@click.option("--events", type=click.Path(path_type=Path), default=None, help="Append JSON-lines batch events here.")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def vectors(config_path: Path | None, run: str | None, reports_dir: Path | None, presync: bool, full: bool,
            dry_run: bool, resume: bool,
            verify_source: bool, no_verify: bool, no_index: bool, no_search_parity: bool, batch_size: int | None,
            pace: float, events: Path | None, progress: bool | None, as_json: bool) -> int:
    """Qdrant -> pgvector: binary COPY + set-based UPDATE, resumable, verified bit for bit."""
    import sys

    from pytest_cutover.migrate import api

    mode = _mode(presync, full)
    ctx = _context(config_path, run, reports_dir)
    show = sys.stderr.isatty() if progress is None else progress
    with _progress(show and not as_json, "vectors") as on_progress:
        outcome = api.vectors(ctx.config, ctx.run, dry_run=dry_run, resume=resume, verify=not no_verify,
                              verify_source=verify_source, index=not no_index, parity=not no_search_parity,
                              batch_size=batch_size, pace_s=pace, mode=mode, on_progress=on_progress,
                              on_event=_events_writer(events))
    return _finish(ctx, outcome, as_json, {"dry_run": dry_run, "resume": resume, "verify_source": verify_source,
                                           "mode": mode})


@migrate.command()
@run_options
@click.option("--presync", is_flag=True, help=_PRESYNC_HELP)
@click.option("--full", is_flag=True, help=_FULL_HELP)
@click.option("--dry-run", is_flag=True, help="Check every row's bytes against its sha256 without uploading.")
@click.option("--resume", is_flag=True, help="Accepted for symmetry: rows already in storage are always skipped.")
@click.option("--verify-only", is_flag=True, help="Only read every recorded object back and check it.")
@click.option("--null-file-data", is_flag=True,
              help="Opt-in: after re-verifying each object, set file_data to NULL on verified rows only.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def blobs(config_path: Path | None, run: str | None, reports_dir: Path | None, presync: bool, full: bool,
          dry_run: bool, resume: bool, verify_only: bool, null_file_data: bool, as_json: bool) -> int:
    """attachments.file_data -> Storage under <org_id>/<thread_id>/<attachment_id>/<filename>, verified."""
    from pytest_cutover.migrate import api

    mode = _mode(presync, full)
    ctx = _context(config_path, run, reports_dir)
    outcome = api.blobs(ctx.config, dry_run=dry_run, verify_only=verify_only, null_file_data=null_file_data,
                        run_id=ctx.run, mode=mode)
    return _finish(ctx, outcome, as_json, {"dry_run": dry_run, "resume": resume, "verify_only": verify_only,
                                           "null_file_data": null_file_data, "mode": mode})


@migrate.command()
@run_options
@click.option("--table", "tables", multiple=True, help="Limit to these tables (default: schema.parity_tables).")
@click.option("--dry-run", is_flag=True, help="Accepted for symmetry: parity only reads.")
@click.option("--resume", is_flag=True, help="Accepted for symmetry: parity has no state.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def parity(config_path: Path | None, run: str | None, reports_dir: Path | None, tables: tuple[str, ...],
           dry_run: bool, resume: bool, as_json: bool) -> int:
    """Old vs target: counts and per-tenant checksums in SQL, bisected to the differing keys."""
    from pytest_cutover.migrate import api

    ctx = _context(config_path, run, reports_dir)
    outcome = api.parity(ctx.config, tables or None)
    return _finish(ctx, outcome, as_json, {"tables": list(tables)})
