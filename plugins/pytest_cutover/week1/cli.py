"""``cutover decommission --decided-by NAME``: record who decided to decommission the old infrastructure.

Decommissioning is never automatic: this command changes nothing but the ledger.  It
checks the old database and Qdrant live (unless ``--no-probe``), judges "decommission-ready"
from the ledger, and appends a ``decommission`` record naming the person and the time.
It refuses (exit 1) unless the run is decommission-ready; ``--force REASON`` records the
decision anyway, with the reason, and the report shows it.  Exit 2: usage or config error.
"""

from __future__ import annotations

from pathlib import Path

import click

from pytest_cutover.cli_options import run_options

__all__ = ["decommission"]

EXIT_OK, EXIT_FAILED = 0, 1


def _non_empty(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("needs a non-empty value", ctx=ctx, param=param)
    return value.strip() if value is not None else None


@click.command("decommission")
@run_options
@click.option("--decided-by", "decided_by", required=True, metavar="NAME", callback=_non_empty,
              help="Who decided (recorded in the ledger and the report).")
@click.option("--force", "force", default=None, metavar="REASON", callback=_non_empty,
              help="Record the decision even though the run is not decommission-ready; the reason is recorded.")
@click.option("--no-probe", "no_probe", is_flag=True,
              help="Do not check the old database and Qdrant now; use the latest recorded check.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def decommission(config_path: Path | None, run: str | None, reports_dir: Path | None, decided_by: str,
                 force: str | None, no_probe: bool, as_json: bool) -> int:
    """Record who decided to decommission the old database and Qdrant (refused unless decommission-ready)."""
    from datetime import UTC, datetime

    from pytest_cutover.cli import echo_json
    from pytest_cutover.context import context_from_options
    from pytest_cutover.ledger import iso_utc
    from pytest_cutover.redact import redact
    from pytest_cutover.stages import PASSED
    from pytest_cutover.week1.checks import DECOMMISSION, decommission_ready, week1_settings
    from pytest_cutover.week1.reachability import check_reachability, record_reachability

    ctx = context_from_options(config_path, run, reports_dir)
    lines = []
    if not no_probe:
        live = check_reachability(ctx.config, ctx.ledger.records())
        record_reachability(ctx.ledger, live, ctx.stamp())
        lines += [f"live check: {live.old_database.evidence}", f"live check: {live.qdrant.evidence}"]
    verdict = decommission_ready(ctx.ledger.records(), week1_settings(ctx.config), datetime.now(UTC))
    lines.append(f"decommission-ready: {verdict.verdict.upper()}: {verdict.evidence}")
    recorded = None
    if verdict.verdict == PASSED or force:
        recorded = ctx.ledger.append({"kind": DECOMMISSION, **ctx.stamp(), "decided_by": decided_by, "at": iso_utc(),
                                      "ready": verdict.verdict, "forced": force, "evidence": verdict.evidence})
        how = f"forced: {force}" if verdict.verdict != PASSED else "decommission-ready"
        lines.append(f"recorded: {decided_by} decided to decommission the old infrastructure of run {ctx.run} "
                     f"({how}); nothing was changed: decommission it by hand")
    else:
        lines.append("refused: the run is not decommission-ready; nothing recorded "
                     "(--force REASON records the decision anyway)")
    if as_json:
        echo_json({"run": ctx.run, "ready": verdict.as_dict(), "recorded": recorded is not None,
                   "decided_by": decided_by, "forced": force})
    else:
        for line in lines:
            click.echo(redact(line))
    return EXIT_OK if recorded is not None else EXIT_FAILED
