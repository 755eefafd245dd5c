"""``cutover status``: the stages of one run, read from its ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pytest_cutover.cli_options import run_options
from pytest_cutover.context import context_from_options
from pytest_cutover.stages import FAILED, NOT_RUN, PASSED, STAGES

__all__ = ["stage_rows", "status"]


def stage_rows(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage, in order, from the effective ledger records (``not-run`` when absent)."""
    rows = []
    for stage in STAGES:
        rec = records.get(stage)
        if rec is None:
            rows.append({"stage": stage, "verdict": NOT_RUN, "start": None, "end": None, "forced": None,
                         "reason": None, "counts": {}})
            continue
        rows.append({"stage": stage, "verdict": rec.get("verdict"), "start": rec.get("start"),
                     "end": rec.get("end"), "forced": rec.get("forced"), "reason": rec.get("reason"),
                     "counts": {k: v for k, v in (rec.get("counts") or {}).items() if v}})
    return rows


_STYLE = {PASSED: "green", FAILED: "red", "blocked": "yellow", NOT_RUN: "dim"}


@click.command()
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(config_path: Path | None, run: str | None, reports_dir: Path | None, as_json: bool) -> int:
    """Show each stage of a run: verdict, times, forced overrides.  Exit 1 if a stage failed."""
    from rich.console import Console
    from rich.table import Table

    from pytest_cutover.cli import echo_json

    ctx = context_from_options(config_path, run, reports_dir)
    ledger = ctx.ledger
    rows = stage_rows(ledger.stage_records())
    if as_json:
        echo_json({"run": ctx.run, "ledger": str(ledger.path), "stages": rows})
    else:
        table = Table(title=f"cutover run {ctx.run}  ({ledger.path})")
        for col in ("stage", "verdict", "start (UTC)", "end (UTC)", "counts", "forced / reason"):
            table.add_column(col)
        for row in rows:
            note = f"forced: {row['forced']}" if row["forced"] else (row["reason"] or "")
            table.add_row(row["stage"], f"[{_STYLE.get(row['verdict'], '')}]{row['verdict']}[/]",
                          row["start"] or "", row["end"] or "",
                          ", ".join(f"{n} {k}" for k, n in row["counts"].items()), note)
        if not ledger.path.exists():
            click.echo(f"no ledger yet for run {ctx.run} at {ledger.path}")
        Console(width=160).print(table)
    return 1 if any(r["verdict"] == FAILED for r in rows) else 0
