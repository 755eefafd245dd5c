"""The figures a plan is made from, read from one run's ledger records (pure: records in, figures out).

Two kinds:

* a :class:`Pass` is one measured migration pass (vectors or BLOBs) with what it moved and how long each
  part took: from ``migration`` records (``cutover migrate``, the Day-7 pre-sync, a delta) and from the
  ``sync`` stage's own figures (``vectors``, ``blobs``).  Figures are read under the names the engine
  writes (``points``/``rows``, ``duration_s``, ``hnsw_build_s``, ``verify_s``, ``total_s``) and under the
  generic ones migration records carry (``items``: what the pass read, ``items_per_s``, ``read_s``/``write_s``/
  ``index_s``/``verify_s`` flat or as ``seconds: {read, write, index, verify}``, ``changed``/``added``/
  ``deleted``, ``mode``, ``at``).  The load time is the wall clock (``duration_s``) when recorded, else read +
  write;
* a :class:`Timing` is how long one step of the night took in a finished run
  (:func:`~pytest_cutover.plan.actual.step_actuals`), plus ``sync-checks``: the sync stage's time beyond
  maintenance, notifications and the two migrations (consistency queries, relational parity).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_cutover.ledger import effective_stage_records
from pytest_cutover.plan.actual import DONE, step_actuals
from pytest_cutover.stages import PASSED

__all__ = ["MODES", "Pass", "RunFigures", "Timing", "migration_pass", "run_environment", "run_figures"]

MODES = ("full", "presync", "delta")


@dataclass(frozen=True)
class Pass:
    """One measured migration pass: ``items`` read (points or BLOB rows) and the seconds of each part."""

    step: str  # vectors | blobs
    mode: str  # full | presync | delta
    items: int
    load_s: float  # read + write
    read_s: float | None = None
    write_s: float | None = None
    index_s: float | None = None
    verify_s: float | None = None
    other_s: float = 0.0  # the rest of the pass (search parity), not scaled with the data
    bytes: int | None = None
    changed: int | None = None  # delta: changed + added + deleted
    at: str | None = None
    origin: str = ""
    run: str = ""

    def describe(self) -> str:
        return f"{self.origin} of run {self.run}" + (f" at {self.at}" if self.at else "")


@dataclass(frozen=True)
class Timing:
    """How long one step took in one finished run."""

    step: str
    seconds: float
    at: str | None = None
    origin: str = ""
    run: str = ""
    items: int | None = None  # the points the run moved, for steps that scale with them (sync-checks)

    def describe(self) -> str:
        return f"{self.origin} of run {self.run}" + (f" at {self.at}" if self.at else "")


@dataclass(frozen=True)
class RunFigures:
    """Everything one run measured; ``environment`` is the target database its config named."""

    run: str
    environment: str | None
    passes: tuple[Pass, ...] = ()
    timings: tuple[Timing, ...] = ()


def _num(figures: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = figures.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def migration_pass(step: str, figures: Mapping[str, Any], *, mode: str = "full", at: str | None = None,
                   origin: str = "", run: str = "") -> Pass | None:
    """A :class:`Pass` from one step's figures, or ``None`` when they cannot give a rate (a dry run, nothing
    read, no time recorded)."""
    if figures.get("dry_run"):
        return None
    seconds = figures.get("seconds") if isinstance(figures.get("seconds"), Mapping) else {}
    items = _num(figures, "items", "points" if step == "vectors" else "rows")

    def part(name: str, *flat: str) -> float | None:
        nested = _num(seconds, name)
        return nested if nested is not None else _num(figures, *flat)

    read_s, write_s = part("read", "read_s"), part("write", "write_s")
    # The wall clock of the load when recorded: reading and writing overlap (the engine pipelines them), so
    # their busy times add up to more than the load took.
    load_s = _num(figures, "duration_s", "migrate_s", "load_s")
    if load_s is None and (read_s is not None or write_s is not None):
        load_s = (read_s or 0.0) + (write_s or 0.0)
    rate = _num(figures, "items_per_s", "points_per_s")
    if load_s is None and items and rate:
        load_s = items / rate
    if not items or items <= 0 or load_s is None:
        return None
    index_s, verify_s = part("index", "index_s", "hnsw_build_s"), part("verify", "verify_s")
    total = _num(figures, "total_s")
    other = max(0.0, total - load_s - (index_s or 0.0) - (verify_s or 0.0)) if total is not None else 0.0
    changes = [v for v in (_num(figures, "changed"), _num(figures, "added"), _num(figures, "deleted")) if v is not None]
    size = _num(figures, "bytes")
    return Pass(step=step, mode=str(figures.get("mode") or mode), items=int(items), load_s=load_s, read_s=read_s,
                write_s=write_s, index_s=index_s, verify_s=verify_s, other_s=other,
                bytes=int(size) if size is not None else None, changed=int(sum(changes)) if changes else None,
                at=str(figures.get("at") or at or "") or None, origin=origin, run=run)


def run_environment(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The target database endpoint (``scheme://host:port/path``) the run's latest config record named."""
    for rec in reversed(records):
        if rec.get("kind") == "config":
            return (rec.get("hosts") or {}).get("target.database_url")
    return None


def run_figures(run: str, records: Sequence[Mapping[str, Any]]) -> RunFigures:
    """The passes and step timings one run's ledger holds."""
    passes: list[Pass] = []
    for rec in records:
        if rec.get("kind") == "migration" and rec.get("ok") and rec.get("step") in ("vectors", "blobs"):
            mode = str(rec.get("mode") or "full")
            found = migration_pass(rec["step"], rec.get("figures") or {}, mode=mode, at=rec.get("end") or rec.get("ts"),
                                   origin=f"cutover migrate {rec['step']} ({mode})", run=run)
            if found is not None:
                passes.append(found)
    effective = effective_stage_records([dict(r) for r in records])
    sync = effective.get("sync")
    timings: list[Timing] = []
    if sync is not None and sync.get("verdict") == PASSED:
        figures = sync.get("figures") or {}
        for step in ("vectors", "blobs"):
            if isinstance(figures.get(step), Mapping):
                found = migration_pass(step, figures[step], at=sync.get("end"), origin="the sync stage", run=run)
                if found is not None:
                    passes.append(found)
    actuals = step_actuals(records)
    for key, actual in actuals.items():
        if actual.state == DONE and actual.verdict == PASSED and actual.seconds is not None:
            timings.append(Timing(key, actual.seconds, at=actual.as_dict()["end"],
                                  origin=f"the {key} step", run=run))
    final = actuals.get("final-sync")
    if sync is not None and final is not None and final.seconds is not None and final.verdict == PASSED:
        mine = [p for p in passes if p.origin == "the sync stage"]
        moved = sum(p.load_s + (p.index_s or 0) + (p.verify_s or 0) + p.other_s for p in mine)
        points = next((p.items for p in mine if p.step == "vectors"), None)
        timings.append(Timing("sync-checks", max(0.0, final.seconds - moved), at=sync.get("end"),
                              origin="the sync stage's checks", run=run, items=points))
    return RunFigures(run, run_environment(records), tuple(passes), tuple(timings))
