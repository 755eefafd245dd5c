"""The runbook's "Post-Cutover (Week 1)" items, judged from the run's ledger: pure functions.

Each check takes the ledger records, the :class:`Week1Settings` and ``now`` (a parameter,
so a test judges a synthetic week without waiting for it) and returns a
:class:`CheckVerdict`: ``passed``, ``failed`` (it cannot become true any more, or it is
false now), or ``pending`` (not decidable yet: the 24 hours or the 7 days have not
passed, a pass may still be running, or a step has not been done yet).  The evidence
names what was measured: the gap with its start, end and length, the trigger, the rate
with its counts.

Week 1 starts when the switch stage last passed.  Monitoring is the union of the
``monitor-window`` passes (plus the smoke and rls stages, which probe the live app
between the restart and the first monitor sample).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pytest_cutover.config import CutoverConfig, config_setting, resolve_settings
from pytest_cutover.monitor.records import MONITOR_WINDOW
from pytest_cutover.stages import FAILED, PASSED
from pytest_cutover.week1.history import (
    MonitorPass,
    fmt_utc,
    incidents,
    monitor_passes,
    parse_utc,
    rolling_window,
    switch_moment,
    watched_stage_spans,
)

__all__ = [
    "BLOB_MIGRATION",
    "CHECKS",
    "DECOMMISSION",
    "DECOMMISSION_READY",
    "ERROR_RATE",
    "MONITORING_24H",
    "NO_CRITICAL_ISSUES",
    "PENDING",
    "REACHABILITY",
    "TITLES",
    "CheckVerdict",
    "Week1Settings",
    "blob_migration_run",
    "decommission_ready",
    "error_rates_below",
    "evaluate_week1",
    "monitoring_coverage",
    "no_critical_issues",
    "week1_section",
    "week1_settings",
]

PENDING = "pending"
MONITORING_24H = "monitoring-24h"
NO_CRITICAL_ISSUES = "no-critical-issues"
ERROR_RATE = "error-rate"
BLOB_MIGRATION = "blob-migration"
DECOMMISSION_READY = "decommission-ready"
CHECKS: tuple[str, ...] = (MONITORING_24H, NO_CRITICAL_ISSUES, ERROR_RATE, BLOB_MIGRATION, DECOMMISSION_READY)
# The runbook's words ("Post-Cutover (Week 1)").
TITLES: Mapping[str, str] = {
    MONITORING_24H: "Monitoring continued for 24 hours",
    NO_CRITICAL_ISSUES: "No critical issues found",
    ERROR_RATE: "Error rates < 1%",
    BLOB_MIGRATION: "BLOB migration script run",
    DECOMMISSION_READY: "Old infrastructure decommission-ready (after 7 days stable)",
}
# Ledger record kinds written by the Week-1 part.
REACHABILITY = "week1-reachability"
DECOMMISSION = "decommission"


@dataclass(frozen=True)
class Week1Settings:
    """``[week1]`` resolved: coverage hours, longest allowed gap, error-rate limit, days before decommission.

    The defaults are the config model's (:func:`~pytest_cutover.config.config_setting`)."""

    coverage_hours: float = config_setting("week1.coverage_hours")
    max_gap_minutes: float = config_setting("week1.max_gap_minutes")
    error_rate_max: float = config_setting("week1.error_rate_max", "thresholds.error_rate")
    decommission_after_days: float = config_setting("week1.decommission_after_days")


def week1_settings(config: CutoverConfig | None) -> Week1Settings:
    """Settings from ``[week1]`` (``error_rate_max`` defaults to ``[thresholds] error_rate``)."""
    return resolve_settings(Week1Settings, config)


@dataclass(frozen=True)
class CheckVerdict:
    """One Week-1 item: ``passed``, ``failed`` or ``pending``, with its evidence."""

    name: str
    verdict: str
    evidence: str
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return TITLES[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "verdict": self.verdict, "evidence": self.evidence,
                "figures": self.figures}


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.1f} min"


def _no_switch(name: str) -> CheckVerdict:
    return CheckVerdict(name, PENDING, "no passed switch stage in this run: Week 1 starts at the switch "
                                       "(run `pytest -m switch` first)")


def _running_grace(passes: Sequence[MonitorPass], limit: timedelta) -> timedelta:
    """How long after its last sample a pass may still be running: its window, plus the allowed gap."""
    longest = max((p.window_s or 0.0 for p in passes), default=0.0)
    return timedelta(seconds=longest) + limit


def monitoring_coverage(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> CheckVerdict:
    """"Monitoring continued for 24 hours": the hours after the switch covered, no gap over ``max_gap_minutes``."""
    switch = switch_moment(records)
    if switch is None:
        return _no_switch(MONITORING_24H)
    end = switch + timedelta(hours=settings.coverage_hours)
    limit = timedelta(minutes=settings.max_gap_minutes)
    passes = monitor_passes(records)
    spans = sorted([(p.start, p.end) for p in passes] + watched_stage_spans(records, switch))
    horizon = min(now, end)
    gaps: list[tuple[datetime, datetime]] = []
    longest = timedelta(0)
    reach = switch
    for start, stop in spans:
        if stop <= switch or start > horizon:
            continue
        if start > reach:
            longest = max(longest, start - reach)
            if start - reach > limit:
                gaps.append((reach, start))
        reach = max(reach, stop)
    for p in passes:  # a pass whose own ticks stalled longer than the limit (a hung probe)
        if p.max_gap_start and p.max_gap_end and p.max_gap_end - p.max_gap_start > limit \
                and p.max_gap_start < horizon and p.max_gap_end > switch:
            gaps.append((p.max_gap_start, p.max_gap_end))
            longest = max(longest, p.max_gap_end - p.max_gap_start)
    covered_h = max(0.0, (min(reach, end) - switch).total_seconds() / 3600)
    figures = {"switch": fmt_utc(switch), "passes": len(passes), "covered_hours": round(covered_h, 3),
               "longest_gap_min": round(longest.total_seconds() / 60, 1), "max_gap_minutes": settings.max_gap_minutes,
               "coverage_hours": settings.coverage_hours}
    trailing = horizon - reach
    if trailing > limit and now - reach > _running_grace(passes, limit):
        gaps.append((reach, horizon))  # monitoring stopped: no pass has sampled since ``reach``
    if gaps:
        gaps.sort()
        listed = "; ".join(f"from {fmt_utc(a)} to {fmt_utc(b)} ({_minutes(b - a)})" for a, b in gaps[:3])
        more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
        figures["gaps"] = [{"start": fmt_utc(a), "end": fmt_utc(b), "minutes": round((b - a).total_seconds() / 60, 1)}
                           for a, b in gaps]
        return CheckVerdict(MONITORING_24H, FAILED,
                            f"{len(gaps)} gap(s) longer than {settings.max_gap_minutes:g} min in the "
                            f"{settings.coverage_hours:g} h after the switch at {fmt_utc(switch)}: {listed}{more}",
                            figures)
    if now < end or trailing > limit:
        last = f"; last sample {fmt_utc(reach)}" if passes else "; no monitor pass recorded yet"
        return CheckVerdict(MONITORING_24H, PENDING,
                            f"{covered_h:.1f} h of {settings.coverage_hours:g} h after the switch at "
                            f"{fmt_utc(switch)} covered so far in {len(passes)} pass(es), no gap over "
                            f"{settings.max_gap_minutes:g} min{last}", figures)
    within = sum(1 for p in passes if p.start < end and p.end > switch)
    return CheckVerdict(MONITORING_24H, PASSED,
                        f"{settings.coverage_hours:g} h after the switch at {fmt_utc(switch)} covered by "
                        f"{within} monitor pass(es); longest gap {_minutes(longest)} "
                        f"(limit {settings.max_gap_minutes:g} min)", figures)


def no_critical_issues(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> CheckVerdict:
    """"No critical issues found": no rollback trigger (any stage) and no rollback step in the run."""
    found = incidents(records)
    rollbacks = [r for r in records if r.get("kind") == "rollback"]
    passes = [p for p in monitor_passes(records) if p.start <= now]
    figures = {"incidents": len(found), "rollback_steps": len(rollbacks), "passes": len(passes)}
    if found or rollbacks:
        parts = [f"trigger {i.label()}" for i in found[:3]]
        if len(found) > 3:
            parts.append(f"{len(found) - 3} more trigger(s)")
        if rollbacks:
            parts.append(f"a rollback ran ({len(rollbacks)} step(s))")
        return CheckVerdict(NO_CRITICAL_ISSUES, FAILED, f"{len(found)} critical issue(s): " + "; ".join(parts),
                            figures)
    if not passes:
        return CheckVerdict(NO_CRITICAL_ISSUES, PENDING, "no monitor pass recorded yet: nothing watched",
                            figures)
    hours = rolling_window(records, now).hours_monitored
    return CheckVerdict(NO_CRITICAL_ISSUES, PASSED, f"no rollback trigger and no rollback in {len(passes)} monitor "
                                                    f"pass(es) over {hours:.1f} h", figures)


def error_rates_below(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> CheckVerdict:
    """"Error rates < 1%": probe and logged request error rates over every pass since the switch, strictly below."""
    switch = switch_moment(records)
    if switch is None:
        return _no_switch(ERROR_RATE)
    passes = [p for p in monitor_passes(records) if p.end >= switch and p.start <= now]
    limit = settings.error_rate_max
    requests, failures = sum(p.probe_requests for p in passes), sum(p.probe_failures for p in passes)
    logged, logged_errors = sum(p.log_requests for p in passes), sum(p.log_request_errors for p in passes)
    figures: dict[str, Any] = {"passes": len(passes), "probe_requests": requests, "probe_failures": failures,
                               "log_requests": logged, "log_request_errors": logged_errors, "limit": limit}
    if not requests and not logged:
        return CheckVerdict(ERROR_RATE, PENDING, "no request measured since the switch yet: no monitor pass sampled",
                            figures)
    parts, rates = [], []
    if requests:
        rates.append(failures / requests)
        parts.append(f"probe error rate {failures / requests * 100:.2f}% ({failures} of {requests})")
    if logged:
        rates.append(logged_errors / logged)
        parts.append(f"logged request error rate {logged_errors / logged * 100:.2f}% ({logged_errors} of {logged})")
    worst = max(rates)
    figures["error_rate"] = round(worst, 6)
    over = f" over {len(passes)} pass(es) since the switch at {fmt_utc(switch)}"
    if worst < limit:
        return CheckVerdict(ERROR_RATE, PASSED, f"{'; '.join(parts)}{over}: below {limit * 100:g}%", figures)
    worst_pass = max(passes, key=lambda p: max(p.error_rate or 0.0, (p.log_request_errors / p.log_requests)
                                                if p.log_requests else 0.0))
    rate = max(worst_pass.error_rate or 0.0,
               worst_pass.log_request_errors / worst_pass.log_requests if worst_pass.log_requests else 0.0)
    return CheckVerdict(ERROR_RATE, FAILED, f"{'; '.join(parts)}{over}: not below {limit * 100:g}%; worst pass "
                                            f"{worst_pass.label()} at {rate * 100:.2f}%", figures)


def _blob_accounting(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str] | None:
    """The latest complete BLOB accounting: the sync stage's ``blobs`` figures or a ``cutover migrate blobs`` run.

    Only a full run counts (it has ``rows`` and ``verified``): a dry run stops before the
    verification, and a ``--verify-only`` run does not account for rows never uploaded.
    """
    for rec in reversed(records):
        if rec.get("kind") == "stage" and rec.get("stage") == "sync":
            figures, where = (rec.get("figures") or {}).get("blobs"), f"sync stage at {rec.get('end') or rec.get('ts')}"
        elif rec.get("kind") == "migration" and rec.get("step") == "blobs":
            figures, where = rec.get("figures"), f"`cutover migrate blobs` at {rec.get('end') or rec.get('ts')}"
        else:
            continue
        if isinstance(figures, Mapping) and "rows" in figures and "verified" in figures:
            return dict(figures), where
    return None


def blob_migration_run(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> CheckVerdict:
    """"BLOB migration script run": every attachment uploaded, read back and verified (size and sha256)."""
    found = _blob_accounting(records)
    if found is None:
        return CheckVerdict(BLOB_MIGRATION, PENDING, "no BLOB migration recorded in this run: run "
                                                     "`cutover migrate blobs` (during low traffic)")
    fig, where = found
    rows, verified = int(fig.get("rows") or 0), int(fig.get("verified") or 0)
    rejected, verify_failed = int(fig.get("rejected") or 0), int(fig.get("verify_failed") or 0)
    orphans = int(fig.get("rows_without_data") or 0)
    accounted = int(fig.get("migrated") or 0) + int(fig.get("already_done") or 0)
    figures = {"rows": rows, "migrated": fig.get("migrated"), "already_done": fig.get("already_done"),
               "verified": verified, "rejected": rejected, "verify_failed": verify_failed,
               "rows_without_data": orphans, "source": where}
    problems = []
    if rejected:
        problems.append(f"{rejected} refused {fig.get('rejected_by_reason') or ''}".rstrip())
    if verify_failed:
        problems.append(f"{verify_failed} objects differ from their rows")
    if orphans:
        problems.append(f"{orphans} rows have neither file_data nor storage_path")
    if accounted != rows:
        problems.append(f"{accounted} of {rows} rows in storage")
    if verified != rows:
        problems.append(f"{verified} of {rows} objects verified")
    if problems:
        return CheckVerdict(BLOB_MIGRATION, FAILED, f"BLOB migration incomplete ({where}): {'; '.join(problems)}; "
                                                    "re-run `cutover migrate blobs`", figures)
    return CheckVerdict(BLOB_MIGRATION, PASSED, f"{verified} of {rows} attachments in storage and verified by size "
                                                f"and sha256, 0 refused, 0 without data ({where})", figures)


def _reachability_records(records: Sequence[Mapping[str, Any]]) -> list[tuple[datetime, Mapping[str, Any]]]:
    out = []
    for rec in records:
        if rec.get("kind") == REACHABILITY:
            at = parse_utc(rec.get("at")) or parse_utc(rec.get("ts"))
            if at is not None:
                out.append((at, rec))
    return out


def _unreachable(rec: Mapping[str, Any]) -> list[str]:
    return [f"{part.replace('_', ' ')}: {(rec.get(part) or {}).get('evidence') or 'not checked'}"
            for part in ("old_database", "qdrant") if not (rec.get(part) or {}).get("ok")]


def decommission_ready(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> CheckVerdict:
    """"Old infrastructure decommission-ready": 7 days of passing monitor windows, BLOBs done, old side reachable.

    Each day since the switch has a passing pass and no pass failed; no trigger fired; the BLOB
    migration is complete; and a live check (a ``week1-reachability`` record, written by
    ``pytest -m week1`` or ``cutover decommission``) after the 7 days found the old database and
    Qdrant reachable and unchanged, as every such check since the switch did.  It never decommissions.
    """
    switch = switch_moment(records)
    if switch is None:
        return _no_switch(DECOMMISSION_READY)
    days = settings.decommission_after_days
    ready_at = switch + timedelta(days=days)
    passes = [p for p in monitor_passes(records) if p.end >= switch and p.start <= now]
    elapsed_days = max(0.0, (now - switch).total_seconds() / 86400)
    figures: dict[str, Any] = {"switch": fmt_utc(switch), "days_since_switch": round(elapsed_days, 2),
                               "days_required": days, "ready_at": fmt_utc(ready_at), "passes": len(passes)}
    failed, pending = [], []
    bad = [p for p in passes if not p.ok]
    if bad:
        why = ", ".join(bad[0].triggers + bad[0].failed_criteria) or "not ok"
        failed.append(f"{len(bad)} monitor pass(es) failed since the switch (first: {bad[0].label()}: {why})")
    found = incidents(records)
    if found:
        failed.append(f"rollback trigger {found[0].label()}")
    for k in range(math.ceil(days)):
        day_start, day_end = switch + timedelta(days=k), min(switch + timedelta(days=k + 1), ready_at)
        if day_end > now:
            break
        if not any(p.ok and p.start < day_end and p.end > day_start for p in passes):
            failed.append(f"no passing monitor window on day {k + 1} ({fmt_utc(day_start)} to {fmt_utc(day_end)})")
    blobs = blob_migration_run(records, settings, now)
    if blobs.verdict == FAILED:
        failed.append(blobs.evidence)
    elif blobs.verdict == PENDING:
        pending.append(blobs.evidence)
    checks = _reachability_records(records)
    for at, rec in checks:
        if at >= switch and _unreachable(rec):
            failed.append(f"old infrastructure not reachable for rollback at {fmt_utc(at)}: "
                          + "; ".join(_unreachable(rec)))
    if now < ready_at:
        pending.insert(0, f"day {elapsed_days:.1f} of {days:g} since the switch at {fmt_utc(switch)} "
                          f"(ready at {fmt_utc(ready_at)} at the earliest)")
    else:
        recent = [(at, rec) for at, rec in checks if at >= ready_at and not _unreachable(rec)]
        if recent:
            at, rec = recent[-1]
            figures["reachability_at"] = fmt_utc(at)
            figures["reachability"] = {p: (rec.get(p) or {}).get("evidence") for p in ("old_database", "qdrant")}
        else:
            pending.append(f"the old database and Qdrant have not been checked since {fmt_utc(ready_at)}: run "
                           "`pytest -m week1` or `cutover decommission` (both check them live)")
    if failed:
        return CheckVerdict(DECOMMISSION_READY, FAILED, "not decommission-ready: " + "; ".join(failed), figures)
    if pending:
        return CheckVerdict(DECOMMISSION_READY, PENDING, "not yet: " + "; ".join(pending), figures)
    return CheckVerdict(DECOMMISSION_READY, PASSED,
                        f"{days:g} days of passing monitor windows since the switch at {fmt_utc(switch)} "
                        f"({len(passes)} passes, none failed, no trigger); BLOBs verified; old database and Qdrant "
                        f"reachable and unchanged at {figures['reachability_at']}: safe to decommission "
                        f"(a person decides: `cutover decommission --decided-by NAME`)", figures)


_CHECK_FUNCTIONS = {
    MONITORING_24H: monitoring_coverage,
    NO_CRITICAL_ISSUES: no_critical_issues,
    ERROR_RATE: error_rates_below,
    BLOB_MIGRATION: blob_migration_run,
    DECOMMISSION_READY: decommission_ready,
}


def evaluate_week1(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime) -> list[CheckVerdict]:
    """Every Week-1 check, in the runbook's order."""
    return [_CHECK_FUNCTIONS[name](records, settings, now) for name in CHECKS]


def week1_section(records: Sequence[Mapping[str, Any]], settings: Week1Settings, now: datetime, *,
                  always: bool = False) -> dict[str, Any] | None:
    """The ``week1`` block (report, status): rolling window, verdicts, decisions.

    ``None`` when the run has no Week-1 record (no monitor pass, no live check, no decision), unless ``always``.
    """
    kinds = {r.get("kind") for r in records}
    if not always and not kinds & {MONITOR_WINDOW, REACHABILITY, DECOMMISSION}:
        return None
    switch = switch_moment(records)
    decisions = [{"decided_by": r.get("decided_by"), "at": r.get("at") or r.get("ts"), "forced": r.get("forced"),
                  "ready": r.get("ready"), "evidence": r.get("evidence")}
                 for r in records if r.get("kind") == DECOMMISSION]
    return {
        "evaluated_at": fmt_utc(now),
        "switch": fmt_utc(switch) if switch else None,
        "rolling": rolling_window(records, now).as_dict(),
        "checks": [v.as_dict() for v in evaluate_week1(records, settings, now)],
        "decommission": decisions,
    }
