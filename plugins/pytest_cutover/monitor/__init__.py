"""The monitor stage's library: sample the app for a window, decide rollback triggers, judge success.

Pure parts (no I/O): :mod:`.triggers`, :mod:`.criteria`, :mod:`.stats`,
:mod:`.figures`, :mod:`.classify`, :mod:`.settings`.  I/O parts: :mod:`.probes`
(HTTP), :mod:`.logs` (file / command), :mod:`.system` (RSS, pg_stat_activity,
SHOW POOLS), :mod:`.tenancy` (target look-ups), :mod:`.samples` (the series
file), :mod:`.sampler` (the loop) and :mod:`.runner` (wiring from a run context).

Typical use in the monitor stage (one sampler run per session, then one test per criterion)::

    from pytest_cutover.monitor.records import prior_leaks_from_ledger
    from pytest_cutover.monitor.runner import run_monitor

    result = run_monitor(ctx, prior_leaks=prior_leaks_from_ledger(ctx.ledger))  # window from [thresholds]
    result.fired        # [Trigger(name, fired, evidence, figure)]: each also a ledger "trigger" record
    result.criteria     # [Criterion(name, ok, figure, message, measured)] in CRITERIA order
    result.figures      # for report.json figures.monitor (error_rate, search_p95_ms, ...)
    result.cut_short    # Ctrl-C; run again in the same run to resume the window

Any other stage raises a trigger with ``records.record_trigger(ctx.ledger, Trigger(...), stage="rls")``.
"""

from __future__ import annotations

from pytest_cutover.monitor.criteria import CRITERIA, Criterion, evaluate_criteria
from pytest_cutover.monitor.samples import (
    CATEGORIES,
    DB_CONNECTION,
    RLS_CONTEXT,
    SERIES_NAME,
    STORAGE_ACCESS,
    VECTOR_SEARCH_TIMEOUT,
    LogCounts,
    MonitorSeries,
    ProbeResult,
    Sample,
)
from pytest_cutover.monitor.settings import MonitorSettings, settings_from_config
from pytest_cutover.monitor.triggers import TRIGGERS, Trigger, evaluate_triggers

__all__ = [
    "CATEGORIES",
    "CRITERIA",
    "DB_CONNECTION",
    "RLS_CONTEXT",
    "SERIES_NAME",
    "STORAGE_ACCESS",
    "TRIGGERS",
    "VECTOR_SEARCH_TIMEOUT",
    "Criterion",
    "LogCounts",
    "MonitorSeries",
    "MonitorSettings",
    "ProbeResult",
    "Sample",
    "Trigger",
    "evaluate_criteria",
    "evaluate_triggers",
    "settings_from_config",
]
