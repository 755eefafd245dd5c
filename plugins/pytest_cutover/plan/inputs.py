"""What a plan is made from, gathered: the budget from the config, the counts (live or recorded), and the
measured figures of this run and of the other runs in the reports folder."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.errors import CutoverError
from pytest_cutover.ledger import LEDGER_NAME, Ledger, check_run_id, effective_stage_records
from pytest_cutover.plan.estimate import Budget, Counts
from pytest_cutover.plan.figures import RunFigures, run_figures
from pytest_cutover.week1.history import parse_utc

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["OTHER_RUNS_READ", "Pools", "budget_from_config", "live_counts", "night_start", "read_pools",
           "recorded_counts"]

#: How many other runs of the reports folder (newest ledgers first) a plan reads figures from.
OTHER_RUNS_READ = 20


def budget_from_config(config: CutoverConfig | None, environment: str | None = None) -> Budget:
    """The window, margin, monitor window and notification worst cases the config declares; ``environment``
    is its target database endpoint as recorded configs name it (``config.config_hosts``), which the
    caller passes so that this core module does not import the report back."""
    if config is None:
        return Budget()
    run = config.run
    worst: dict[str, float] = {}
    for channel in config.notify.values():
        for event in channel.events:
            worst[event] = worst.get(event, 0.0) + channel.timeout_s * channel.retries
    return Budget(window_start=parse_utc(run.window_start), window_minutes=run.window_minutes,
                  margin=run.window_margin, change_fraction=run.window_change_fraction,
                  monitor_window_s=config.thresholds.monitor_window_s, notify_worst_s=worst,
                  environment=environment)


def live_counts(config: CutoverConfig) -> Counts:
    """Points in the Qdrant collection and BLOB rows/bytes on the old database, counted now (read-only, with
    the config's connect timeout) by the same helpers as the precutover counts."""
    from pytest_cutover.checks.counts import qdrant_info, source_counts

    info = qdrant_info(config)
    found = source_counts(config)
    return Counts(points=info.points, blob_rows=found.attachments_with_blob, blob_bytes=found.blob_bytes,
                  fragments=found.fragments, source=f"counted live ({info.via}; source.database_url)")


def recorded_counts(records: Sequence[Mapping[str, Any]]) -> Counts:
    """The counts the precutover stage recorded (qdrant_points, attachment_blobs...), ``None`` where absent."""
    rec = effective_stage_records([dict(r) for r in records]).get("precutover")
    figures = (rec or {}).get("figures") or {}

    def num(name: str) -> int | None:
        value = figures.get(name)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    return Counts(points=num("qdrant_points"), blob_rows=num("attachment_blobs"),
                  blob_bytes=num("attachment_blob_bytes"), fragments=num("memory_fragments"),
                  source=f"recorded by the precutover stage at {rec.get('end')}" if rec else "not recorded")


def night_start(records: Sequence[Mapping[str, Any]]) -> str | None:
    """When the night began: the first record of the sync stage (its maintenance-on, or its stage record)."""
    stamps = [r.get("start") if r.get("kind") == "stage" else r.get("ts") for r in records
              if (r.get("kind") == "stage" and r.get("stage") != "precutover")
              or (r.get("kind") == "action" and r.get("action") == "maintenance-on")]
    moments = [m for m in (parse_utc(s) for s in stamps) if m is not None]
    return min(moments).isoformat().replace("+00:00", "Z") if moments else None


@dataclass
class Pools:
    """The measured figures of this run and the other runs read, and the ledgers that could not be read."""

    figures: list[RunFigures]
    skipped: list[str] = field(default_factory=list)


def read_pools(reports_dir: Path, run: str, *, others: int = OTHER_RUNS_READ) -> Pools:
    """This run's figures first, then those of up to ``others`` other runs, newest ledger first.  Another
    run's unreadable ledger is skipped and named; this run's stops the plan (it is the night's record)."""
    found: list[tuple[int, str]] = []
    try:
        folders = list(Path(reports_dir).iterdir())
    except OSError:
        folders = []
    for folder in folders:
        try:
            found.append((os.stat(folder / LEDGER_NAME).st_mtime_ns, check_run_id(folder.name)))
        except (OSError, CutoverError):
            continue
    pools = Pools([])
    own = Ledger.for_run(reports_dir, run)
    if own.path.exists():
        pools.figures.append(run_figures(run, own.records()))
    for _, name in sorted(found, reverse=True)[: others + 1]:
        if name == run or len(pools.figures) > others:
            continue
        try:
            pools.figures.append(run_figures(name, Ledger.for_run(reports_dir, name).records()))
        except CutoverError as exc:
            pools.skipped.append(f"{name}: {exc}")
    return pools
