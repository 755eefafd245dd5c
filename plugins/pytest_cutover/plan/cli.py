"""``cutover plan``: the night as a budget, a read-only dry run against the real config.

It counts what the night will move (points in the Qdrant collection, BLOB rows and bytes on the old
database: the precutover count helpers, with the config's connect timeout), reads the figures earlier
passes measured (this run's ledger first: the Day-7 pre-sync; then the other runs in the reports folder:
rehearsals), and prints each runbook step with what it will do and its estimated time, laid out from
``[run] window_start``.  Exit 0 when the plan fits ``[run] window_minutes``; 1 when it does not, or when a
step cannot be estimated (the missing figure is named, with how to get it); 2 on a configuration error or
an unreachable host (``--recorded-counts`` plans from the counts the run's precutover stage recorded, without
connecting).  Nothing on either side is changed; the plan is appended to the run's ledger (unless
``--no-record``) so that the report compares the night against the plan made before it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pytest_cutover.cli_options import run_options

if TYPE_CHECKING:
    from pytest_cutover.plan.estimate import NightPlan

__all__ = ["plan", "plan_lines"]


def _clock(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S") if moment is not None else "  ?     "


def plan_lines(night: NightPlan, skipped: list[str] | None = None) -> list[str]:
    """The plan as plain lines: the window, the counts, one block per step, the verdict."""
    from pytest_cutover.plan.estimate import duration_text

    b, c = night.budget, night.counts
    window = (f"window {b.window_start.isoformat().replace('+00:00', 'Z') if b.window_start else '(no window_start)'}"
              f", {f'{b.window_minutes:g} min' if b.window_minutes is not None else '(no window_minutes)'}")
    lines = [f"cutover plan for run {night.run}: {window}, margin {b.margin:.0%}",
             f"counts: {c.points if c.points is not None else '?'} points, "
             f"{c.blob_rows if c.blob_rows is not None else '?'} BLOBs"
             f"{f' ({c.blob_bytes} bytes)' if c.blob_bytes is not None else ''} - {c.source}"]
    for n, step in enumerate(night.steps, 1):
        planned = duration_text(step.planned_s) if step.planned_s is not None else "cannot estimate"
        lines.append(f"{n:>2}. {_clock(step.start)} -> {_clock(step.end)}  {step.title:<42} {planned:>15}")
        lines.append(f"      does: {step.what}")
        for part in step.parts:
            lines.append(f"      {part.name}: {duration_text(part.seconds) if part.seconds is not None else '?'}"
                         f" - {part.basis or part.missing}")
        if step.basis and not step.parts:
            lines.append(f"      estimate: {step.basis}")
        if step.missing and not step.parts:
            lines.append(f"      missing: {step.missing}")
    if night.total_s is not None and b.window_minutes is not None:
        spare = -(night.over_s or 0.0)
        lines.append(f"total {duration_text(night.total_s)} of {b.window_minutes:g} min: "
                     + (f"fits, {duration_text(spare)} to spare" if night.fits else
                        f"DOES NOT FIT, {duration_text(night.over_s)} over"))
    elif night.total_s is not None:
        lines.append(f"total {duration_text(night.total_s)}")
    lines += [f"warning: {p}" for p in night.problems]
    lines += [f"note: figures of run {s} not read" for s in skipped or []]
    return lines


@click.command()
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Append the plan to the run's ledger (the report compares the night against it).")
@click.option("--recorded-counts", is_flag=True,
              help="Use the counts this run's precutover stage recorded instead of counting live (no connection).")
def plan(config_path: Path | None, run: str | None, reports_dir: Path | None, as_json: bool, record: bool,
         recorded_counts: bool) -> int:
    """Estimate each step of the night from counts and measured figures, against [run] window_minutes.

    Read-only against the systems.  Exit 0 when the plan fits, 1 when it does not or a step cannot be
    estimated, 2 on a configuration error or an unreachable host.
    """
    from pytest_cutover.cli import EXIT_FAILED, EXIT_OK, echo_json
    from pytest_cutover.config import config_hosts
    from pytest_cutover.context import context_from_options
    from pytest_cutover.errors import ConfigError
    from pytest_cutover.plan.estimate import make_plan
    from pytest_cutover.plan.inputs import budget_from_config, live_counts, read_pools
    from pytest_cutover.plan.inputs import recorded_counts as recorded
    from pytest_cutover.redact import redact
    from pytest_cutover.week1.history import parse_utc

    ctx = context_from_options(config_path, run, reports_dir)
    if ctx.config is None:
        raise ConfigError("no config found: no ./cutover.toml and no [tool.cutover] in ./pyproject.toml",
                          hint="pass --config PATH")
    if ctx.config.run.window_start and parse_utc(ctx.config.run.window_start) is None:
        raise ConfigError(f"{ctx.config.path}: [run] window_start {ctx.config.run.window_start!r} is not an ISO 8601 "
                          "time", hint='write it like window_start = "2026-11-26T08:00:00Z"')
    counts = recorded(ctx.ledger.records() if ctx.ledger.path.exists() else []) if recorded_counts else \
        live_counts(ctx.config)
    pools = read_pools(ctx.reports_dir, ctx.run)
    environment = config_hosts(ctx.config).get("target.database_url")
    night = make_plan(ctx.run, counts, budget_from_config(ctx.config, environment), pools.figures)
    data = night.as_dict()
    if record:
        ctx.ledger.append({"kind": "plan", **data, **ctx.stamp()})
    if as_json:
        echo_json({**data, "ledger": str(ctx.ledger.path) if record else None, "skipped": pools.skipped})
    else:
        for line in plan_lines(night, pools.skipped):
            click.echo(redact(line))
    return EXIT_OK if night.fits else EXIT_FAILED
