"""``cutover status``: the stages of one run, read from its ledger.

Below the stages: the rolling monitor window over every monitor pass of the run (cron or a
loop repeating ``pytest -m monitor`` in Week 1): hours monitored, error rate, search p95 and
incidents.  ``--week1`` adds one verdict line per Week-1 check with its evidence.  Last, each step of
the night planned against actual (report/plan.py: the plan ``cutover plan`` recorded before the night)
and, while the final sync runs, its ETA from the migration's checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pytest_cutover.cli_options import run_options
from pytest_cutover.context import RunContext, context_from_options, given_run_id, latest_run
from pytest_cutover.redact import redact
from pytest_cutover.stages import FAILED, INTERRUPTED, NOT_RUN, PARTIAL, PASSED, STAGES

if TYPE_CHECKING:
    from datetime import datetime

    from rich.table import Table

    from pytest_cutover.config import CutoverConfig
    from pytest_cutover.plan.progress import Eta
    from pytest_cutover.report.plan import PlanVersusActual

__all__ = ["choose_run", "plan_status", "plan_table", "rolling_lines", "stage_rows", "status", "week1_lines"]


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


def _shown(folder: Path) -> str:
    """``reports/`` when the folder is under the working directory, else its absolute path."""
    try:
        return f"{folder.relative_to(Path.cwd().resolve())}/"
    except ValueError:
        return f"{folder}/"


def choose_run(ctx: RunContext, flag: str | None) -> str:
    """Point ``ctx`` at the run to show and say why: the run named by ``--run`` > ``$CUTOVER_RUN`` >
    ``[run] id``; when none is named, the run whose ledger was written last in the reports folder
    (right after a rehearsal, that rehearsal); else ``default``."""
    given = given_run_id(flag, ctx.config)
    if given is not None:
        config_file = ctx.config.path if ctx.config is not None else None
        return f"[run] id in {config_file}" if given[1] == "[run] id" and config_file else given[1]
    latest = latest_run(ctx.reports_dir)
    if latest is None:
        return f"no run in {_shown(ctx.reports_dir)} yet, none named (--run, $CUTOVER_RUN, [run] id)"
    ctx.run = latest
    return f"latest in {_shown(ctx.reports_dir)}"


_STYLE = {PASSED: "green", FAILED: "red", "blocked": "yellow", PARTIAL: "yellow", INTERRUPTED: "yellow",
          NOT_RUN: "dim"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def rolling_lines(rolling: dict[str, Any]) -> list[str]:
    """The rolling monitor window as plain lines (from :meth:`RollingWindow.as_dict`)."""
    if not rolling["passes"]:
        return ["rolling monitor window: no monitor pass recorded yet"]
    p95 = rolling["search_p95_ms"]
    lines = [
        f"rolling monitor window: {rolling['passes']} pass(es), {rolling['hours_monitored']:.2f} h monitored "
        f"({rolling['first']} to {rolling['last']}), {rolling['samples']} samples",
        f"  error rate {_pct(rolling['error_rate'])} ({rolling['probe_failures']} of {rolling['probe_requests']} "
        f"probes); logged request error rate {_pct(rolling['log_error_rate'])} ({rolling['log_request_errors']} of "
        f"{rolling['log_requests']})",
        f"  search p95 {'-' if p95 is None else f'{p95:.1f} ms'} (n={rolling['search_n']})",
    ]
    if rolling["passes_failed"]:
        lines.append(f"  failed passes: {len(rolling['passes_failed'])} (first: {rolling['passes_failed'][0]})")
    incidents = rolling["incidents"]
    lines.append("  incidents: none" if not incidents else f"  incidents: {len(incidents)}")
    lines += [f"    - {i['name']} ({i['stage']}, {i['at']}): {i['evidence']}" for i in incidents]
    return lines


def week1_lines(section: dict[str, Any]) -> list[str]:
    """One verdict line per Week-1 check, then the recorded decommission decisions."""
    lines = [f"Week 1 (evaluated at {section['evaluated_at']}; switch at {section['switch'] or 'not yet'}):"]
    for check in section["checks"]:
        lines.append(f"  {check['verdict'].upper():<7} {check['title']}: {check['evidence']}")
    for decision in section["decommission"]:
        how = f"forced: {decision['forced']}" if decision.get("forced") else f"ready: {decision.get('ready')}"
        lines.append(f"  decommission decided by {decision['decided_by']} at {decision['at']} ({how})")
    return lines


def plan_status(records: list[dict[str, Any]], config: CutoverConfig | None, run: str,
                now: datetime) -> tuple[PlanVersusActual, Eta | None]:
    """Planned against actual per step (report/plan.py) and, while the final sync runs, its ETA."""
    from pytest_cutover.plan.inputs import recorded_counts
    from pytest_cutover.plan.progress import migration_eta
    from pytest_cutover.report.plan import plan_versus_actual
    from pytest_cutover.week1.history import parse_utc

    if config is None:  # like the report: the config the run recorded (window, thresholds, channels)
        from pytest_cutover.report.effective import recorded_config

        recorded = recorded_config(records)
        config = recorded.config if recorded is not None else None
    versus = plan_versus_actual(records, config, run)
    sync = next(r for r in versus.rows if r.step == "final-sync")
    eta = None
    if sync.state == "running":
        started = parse_utc(sync.actual_start) or now
        eta = migration_eta(config, run, started, recorded_counts(records).points, now)
    return versus, eta


def plan_table(versus: PlanVersusActual) -> Table:
    """The plan-versus-actual rows as a rich table."""
    from rich.table import Table

    from pytest_cutover.plan.estimate import duration_text

    fit = "" if versus.fits is None else ("; planned to fit" if versus.fits else "; planned to OVERRUN")
    table = Table(title=f"plan versus actual ({versus.source}{fit})")
    for col in ("step", "planned", "planned (UTC)", "actual", "state", "difference"):
        table.add_column(col)
    for row in versus.rows:
        diff = "" if row.delta_s is None else f"{'+' if row.delta_s > 0 else '-'}{duration_text(row.delta_s)}"
        table.add_row(row.title, duration_text(row.planned_s) if row.planned_s is not None else "?",
                      (row.planned_start or "")[11:19], duration_text(row.actual_s) if row.actual_s is not None
                      else "", row.state, f"[red]{diff}[/]" if row.delta_s and row.delta_s > 0 else diff)
    table.add_row("total", duration_text(versus.planned_total_s) if versus.planned_total_s is not None else "?", "",
                  duration_text(versus.actual_total_s) if versus.actual_total_s is not None else "", "", "")
    return table


@click.command()
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--week1", "week1", is_flag=True, help="Also judge the Week-1 checks (one verdict line each).")
@click.option("--at", "at", default=None, metavar="TIMESTAMP",
              help="Judge the Week-1 checks as of this UTC time (ISO 8601; default: now).")
def status(config_path: Path | None, run: str | None, reports_dir: Path | None, as_json: bool, week1: bool,
           at: str | None) -> int:
    """Show each stage of a run, the rolling monitor window, and (--week1) the Week-1 verdicts.

    Exit 1 if a stage failed (or, with --week1, a Week-1 check failed).
    """
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from pytest_cutover.cli import echo_json
    from pytest_cutover.week1.checks import week1_section, week1_settings
    from pytest_cutover.week1.history import parse_utc, rolling_window

    now = datetime.now(UTC)
    if at is not None:
        parsed = parse_utc(at)
        if parsed is None:
            raise click.BadParameter(f"{at!r} is not an ISO 8601 time (e.g. 2026-12-03T10:00:00Z)",
                                     param_hint="--at")
        now = parsed
    ctx = context_from_options(config_path, run, reports_dir)
    picked = choose_run(ctx, run)
    ledger = ctx.ledger
    records = ledger.records()
    rows = stage_rows(ledger.stage_records())
    rolling = rolling_window(records, now).as_dict()
    section = None
    if week1:
        section = week1_section(records, week1_settings(ctx.config), now, always=True)
    versus, eta = plan_status(records, ctx.config, ctx.run, now)
    if as_json:
        data: dict[str, Any] = {"run": ctx.run, "run_source": picked, "ledger": str(ledger.path), "stages": rows,
                                "monitor_rolling": rolling, "plan": versus.as_dict(),
                                "eta": eta.as_dict() if eta is not None else None}
        if section is not None:
            data["week1"] = section
        echo_json(data)
    else:
        table = Table(title=f"cutover run {ctx.run}  ({ledger.path})")
        for col in ("stage", "verdict", "start (UTC)", "end (UTC)", "counts", "forced / reason"):
            table.add_column(col)
        for row in rows:
            note = f"forced: {row['forced']}" if row["forced"] else (row["reason"] or "")
            table.add_row(row["stage"], f"[{_STYLE.get(row['verdict'], '')}]{row['verdict']}[/]",
                          row["start"] or "", row["end"] or "",
                          ", ".join(f"{n} {k}" for k, n in row["counts"].items()), note)
        click.echo(f"run {ctx.run}: {picked}")
        if not ledger.path.exists():
            click.echo(f"no ledger yet for run {ctx.run} at {ledger.path}")
        Console(width=160).print(table)
        for line in rolling_lines(rolling) + (week1_lines(section) if section is not None else []):
            click.echo(redact(line))
        Console(width=160).print(plan_table(versus))
        for line in versus.problems + ([eta.line()] if eta is not None else []):
            click.echo(redact(line))
    failed_week1 = section is not None and any(c["verdict"] == FAILED for c in section["checks"])
    return 1 if any(r["verdict"] == FAILED for r in rows) or failed_week1 else 0
