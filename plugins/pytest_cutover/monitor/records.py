"""Ledger records the monitor (and any other stage) writes: ``trigger``, ``monitor`` and ``monitor-window``.

"Any stage may raise a trigger, not only the monitor": the rls stage that finds a
cross-tenant read calls :func:`record_trigger` with ``stage="rls"``; the report
turns every ``trigger`` record into the run's ROLLBACK status and lists its
evidence.  The builders are pure; :func:`record_trigger` appends.

``monitor-window`` is one record per monitor *pass* (one ``pytest -m monitor``, however often
cron or a loop repeats it in the same run): when this pass sampled (first and last sample), its
longest gap between samples, its own request and error counts and search latencies, the triggers it
fired and whether it passed.  The Week-1 checks and ``cutover status`` add these up into the rolling
window; the ``monitor`` record stays the summary of the whole (possibly resumed) window.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_cutover.monitor.criteria import Criterion, search_latencies
from pytest_cutover.monitor.samples import Sample
from pytest_cutover.monitor.stats import percentile, ratio
from pytest_cutover.monitor.triggers import RLS_LEAK, Trigger

if TYPE_CHECKING:
    from pytest_cutover.ledger import Ledger

__all__ = ["MONITOR_WINDOW", "criterion_record", "prior_leaks_from_ledger", "record_trigger", "trigger_record",
           "window_pass_record"]

MONITOR_WINDOW = "monitor-window"


def trigger_record(trigger: Trigger, *, stage: str, **extra: Any) -> dict[str, Any]:
    """``{"kind": "trigger", "name", "evidence", "stage", "figure", ...extra}``."""
    return {**extra, "kind": "trigger", "name": trigger.name, "evidence": trigger.evidence, "stage": stage,
            "figure": trigger.figure}


def record_trigger(ledger: Ledger, trigger: Trigger, *, stage: str, stamp: Mapping[str, Any] | None = None,
                   **extra: Any) -> dict[str, Any]:
    """Append a fired trigger to the run's ledger (redacted by the ledger); returns the stored record."""
    if not trigger.fired:
        raise ValueError(f"trigger {trigger.name} did not fire; only fired triggers are recorded")
    return ledger.append(trigger_record(trigger, stage=stage, **{**dict(stamp or {}), **extra}))


def criterion_record(criterion: Criterion) -> dict[str, Any]:
    """A success criterion as the ``monitor`` record lists it."""
    return {"name": criterion.name, "ok": criterion.ok, "figure": criterion.figure, "message": criterion.message,
            "measured": criterion.measured}


def prior_leaks_from_ledger(ledger: Ledger, *, exclude_stage: str = "monitor") -> list[str]:
    """Evidence of RLS leaks that other stages (the rls stage) recorded as ``trigger`` records."""
    return [f"{r.get('stage')}: {r.get('evidence', '')}" for r in ledger.records()
            if r.get("kind") == "trigger" and r.get("name") == RLS_LEAK and r.get("stage") != exclude_stage]


def _iso(ts: float) -> str:
    from pytest_cutover.ledger import iso_utc

    return iso_utc(ts)


def window_pass_record(samples: Sequence[Sample], *, window: int, window_s: float, interval_s: float,
                       triggers: Sequence[Trigger], criteria: Sequence[Criterion], cut_short: bool, complete: bool,
                       stage: str = "monitor") -> dict[str, Any]:
    """The ``monitor-window`` record of one pass from the samples *this pass* took (pure).

    ``triggers`` and ``criteria`` are judged over the whole window (a resumed window includes the
    samples of its earlier passes); counts, latencies and times are this pass's own.
    A pass passes when no trigger fired in its window and no criterion failed (an unmeasured
    criterion of a pass that was cut short is not a failure: the window resumes later).
    """
    probes = [p for s in samples for p in s.probes]
    failed = sum(not p.ok for p in probes)
    requests = sum(s.logs.requests for s in samples)
    request_errors = sum(s.logs.request_errors for s in samples)
    latencies = [round(v, 1) for v in search_latencies(samples)]
    gap, gap_at = 0.0, None
    for before, after in itertools.pairwise(samples):
        if after.ts - before.ts > gap:
            gap, gap_at = after.ts - before.ts, (before.ts, after.ts)
    failed_criteria = [c.name for c in criteria if not c.ok and (c.measured or complete)]
    fired = [{"name": t.name, "evidence": t.evidence} for t in triggers if t.fired]
    return {
        "kind": MONITOR_WINDOW, "stage": stage, "window": window, "window_s": window_s, "interval_s": interval_s,
        "start": _iso(samples[0].ts) if samples else None, "end": _iso(samples[-1].ts) if samples else None,
        "duration_s": round(samples[-1].ts - samples[0].ts, 3) if samples else 0.0,
        "samples": len(samples), "max_gap_s": round(gap, 3),
        "max_gap_start": _iso(gap_at[0]) if gap_at else None, "max_gap_end": _iso(gap_at[1]) if gap_at else None,
        "probe_requests": len(probes), "probe_failures": failed, "error_rate": _round(ratio(failed, len(probes))),
        "log_requests": requests, "log_request_errors": request_errors,
        "log_error_rate": _round(ratio(request_errors, requests)),
        "search_p95_ms": percentile(latencies, 95), "search_ms": latencies,
        "triggers": fired, "failed_criteria": failed_criteria, "cut_short": cut_short, "complete": complete,
        "ok": not fired and not failed_criteria,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
