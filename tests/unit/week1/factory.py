"""Synthetic Week-1 ledgers: the stage records of a passed night, then monitor passes, written with Ledger.append.

Times are explicit (``start``/``end``/``at`` fields), so a week is judged without waiting for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_cutover.ledger import Ledger
from pytest_cutover.monitor.records import MONITOR_WINDOW
from pytest_cutover.week1.checks import REACHABILITY

SWITCH = datetime(2026, 11, 26, 9, 35, tzinfo=UTC)
BLOBS_COMPLETE = {"rows": 40, "migrated": 40, "already_done": 0, "rejected": 0, "rejected_by_reason": {},
                  "verified": 40, "verify_failed": 0, "rows_without_data": 0, "bytes": 4630342}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def night(ledger: Ledger, switch: datetime = SWITCH, blobs: dict[str, Any] | None = None) -> None:
    """precutover, sync (with blob figures), switch ending at ``switch``, smoke and rls: all passed."""
    spans = {"precutover": (-95, -90), "sync": (-30, -5), "switch": (-5, 0), "smoke": (0, 8), "rls": (8, 10)}
    for stage, (a, b) in spans.items():
        figures: dict[str, Any] = {}
        if stage == "sync":
            figures["blobs"] = dict(BLOBS_COMPLETE if blobs is None else blobs)
        if stage == "precutover":
            figures.update(memory_fragments=120, qdrant_points=120)
        ledger.append({"kind": "stage", "run": "week", "stage": stage, "verdict": "passed",
                       "start": iso(switch + timedelta(minutes=a)), "end": iso(switch + timedelta(minutes=b)),
                       "counts": {"passed": 1}, "tests": [], "figures": figures})


def monitor_pass(ledger: Ledger, start: datetime, *, minutes: float = 30.0, window: int = 1,
                 requests: int = 540, failures: int = 0, log_requests: int = 2000, log_errors: int = 0,
                 search_ms: Iterable[float] = (12.0, 15.0, 40.0), triggers: Iterable[str] = (),
                 ok: bool = True) -> None:
    """One ``monitor-window`` record as the sampler writes it."""
    fired = [{"name": t, "evidence": f"{t} evidence"} for t in triggers]
    ledger.append({"kind": MONITOR_WINDOW, "run": "week", "stage": "monitor", "window": window,
                   "window_s": minutes * 60, "interval_s": 10.0, "start": iso(start),
                   "end": iso(start + timedelta(minutes=minutes)), "duration_s": minutes * 60,
                   "samples": int(minutes * 6), "max_gap_s": 10.0, "max_gap_start": None, "max_gap_end": None,
                   "probe_requests": requests, "probe_failures": failures, "log_requests": log_requests,
                   "log_request_errors": log_errors, "search_ms": list(search_ms), "triggers": fired,
                   "failed_criteria": [], "ok": ok and not fired, "cut_short": False, "complete": True})


def watch(ledger: Ledger, start: datetime, end: datetime, *, every: timedelta = timedelta(minutes=30),
          minutes: float = 29.9, skip: tuple[datetime, datetime] | None = None) -> int:
    """Back-to-back passes from ``start`` to ``end`` (a cron every 30 minutes); returns the count written."""
    n, at = 0, start
    while at < end:
        if skip is None or not (skip[0] <= at < skip[1]):
            n += 1
            monitor_pass(ledger, at, minutes=minutes, window=n)
        at += every
    return n


def clean_week(path: Path, switch: datetime = SWITCH, *, days: int = 7, reachable_at: datetime | None = None) -> Ledger:
    """A clean week: the night, 24 h of back-to-back 30-minute passes, then one pass every 6 hours."""
    ledger = Ledger(path)
    night(ledger, switch)
    first = switch + timedelta(minutes=10)
    ledger.append({"kind": "stage", "run": "week", "stage": "monitor", "verdict": "passed", "start": iso(first),
                   "end": iso(first + timedelta(minutes=30)), "counts": {"passed": 13}, "tests": [], "figures": {}})
    watch(ledger, first, switch + timedelta(hours=24, minutes=30))
    watch(ledger, switch + timedelta(hours=25), switch + timedelta(days=days), every=timedelta(hours=6))
    if reachable_at is not None:
        reachable(ledger, reachable_at)
    return ledger


def reachable(ledger: Ledger, at: datetime, *, old_ok: bool = True, qdrant_ok: bool = True) -> None:
    """A ``week1-reachability`` record as the live check writes it."""
    ledger.append({"kind": REACHABILITY, "run": "week", "at": iso(at), "ok": old_ok and qdrant_ok,
                   "old_database": {"ok": old_ok, "evidence": "old database: reachable, 120 rows in memory_fragments"
                                    if old_ok else "old database (source.database_url) not reachable: refused",
                                    "count": 120 if old_ok else None},
                   "qdrant": {"ok": qdrant_ok, "evidence": "qdrant: reachable, 120 points in dac_memory",
                              "count": 120}})
