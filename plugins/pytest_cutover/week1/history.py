"""The run's monitoring history after the switch, read from ledger records: pure, no I/O, no clock.

Every ``pytest -m monitor`` pass appends a ``monitor-window`` record (see
:mod:`pytest_cutover.monitor.records`); cron or a loop repeating the pass in the same
run builds up the rolling window that ``cutover status`` shows and the Week-1 checks
judge.  Incidents are the ``trigger`` records any stage appended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pytest_cutover.monitor.records import MONITOR_WINDOW
from pytest_cutover.monitor.stats import percentile, ratio
from pytest_cutover.stages import PASSED

__all__ = [
    "Incident",
    "MonitorPass",
    "RollingWindow",
    "covered_hours",
    "fmt_utc",
    "incidents",
    "monitor_passes",
    "parse_utc",
    "rolling_window",
    "switch_moment",
    "watched_stage_spans",
]


def parse_utc(value: Any) -> datetime | None:
    """An ISO-8601 timestamp (``...Z`` or with an offset) as an aware UTC datetime; ``None`` if absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def fmt_utc(moment: datetime | None) -> str:
    """``2026-11-26T09:45:00Z`` (seconds), or ``-``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"


@dataclass(frozen=True)
class MonitorPass:
    """One monitor pass as its ``monitor-window`` record describes it."""

    window: int | None
    start: datetime
    end: datetime
    samples: int
    interval_s: float | None
    window_s: float | None
    max_gap_s: float
    max_gap_start: datetime | None
    max_gap_end: datetime | None
    probe_requests: int
    probe_failures: int
    log_requests: int
    log_request_errors: int
    search_ms: tuple[float, ...]
    triggers: tuple[str, ...]
    failed_criteria: tuple[str, ...]
    ok: bool
    cut_short: bool

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def error_rate(self) -> float | None:
        return ratio(self.probe_failures, self.probe_requests)

    def label(self) -> str:
        return f"window {self.window} ({fmt_utc(self.start)} to {fmt_utc(self.end)})"


@dataclass(frozen=True)
class Incident:
    """A rollback trigger some stage recorded."""

    name: str
    stage: str | None
    evidence: str
    at: str | None

    def label(self) -> str:
        where = f" ({self.stage}{', ' + self.at if self.at else ''})" if self.stage or self.at else ""
        return f"{self.name}{where}: {self.evidence}"


def monitor_passes(records: Iterable[Mapping[str, Any]]) -> list[MonitorPass]:
    """Every pass that sampled at least once, ordered by its first sample."""
    out = []
    for rec in records:
        if rec.get("kind") != MONITOR_WINDOW:
            continue
        start, end = parse_utc(rec.get("start")), parse_utc(rec.get("end"))
        if start is None or end is None:
            continue
        out.append(MonitorPass(
            window=rec.get("window"), start=start, end=end, samples=int(rec.get("samples") or 0),
            interval_s=rec.get("interval_s"), window_s=rec.get("window_s"),
            max_gap_s=float(rec.get("max_gap_s") or 0.0), max_gap_start=parse_utc(rec.get("max_gap_start")),
            max_gap_end=parse_utc(rec.get("max_gap_end")), probe_requests=int(rec.get("probe_requests") or 0),
            probe_failures=int(rec.get("probe_failures") or 0), log_requests=int(rec.get("log_requests") or 0),
            log_request_errors=int(rec.get("log_request_errors") or 0),
            search_ms=tuple(float(v) for v in rec.get("search_ms") or ()),
            triggers=tuple(str(t.get("name")) for t in rec.get("triggers") or ()),
            failed_criteria=tuple(rec.get("failed_criteria") or ()), ok=bool(rec.get("ok")),
            cut_short=bool(rec.get("cut_short")),
        ))
    return sorted(out, key=lambda p: p.start)


def incidents(records: Iterable[Mapping[str, Any]]) -> list[Incident]:
    """The run's rollback triggers (kind ``trigger``), in ledger order."""
    return [Incident(str(r.get("name")), r.get("stage"), str(r.get("evidence") or ""), r.get("ts"))
            for r in records if r.get("kind") == "trigger"]


def switch_moment(records: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When the switch last passed (the end of the latest passed ``switch`` stage record): Week 1 starts there."""
    for rec in reversed(records):
        if rec.get("kind") == "stage" and rec.get("stage") == "switch" and rec.get("verdict") == PASSED:
            return parse_utc(rec.get("end")) or parse_utc(rec.get("ts"))
    return None


def watched_stage_spans(records: Iterable[Mapping[str, Any]], after: datetime) -> list[tuple[datetime, datetime]]:
    """Spans of the smoke and rls stages that ran after the switch: they probe the live app too.

    Counting them bridges the runbook's 10 to 15 minutes of smoke tests between the restart and
    the first monitor sample.
    """
    spans = []
    for rec in records:
        if rec.get("kind") == "stage" and rec.get("stage") in ("smoke", "rls"):
            start, end = parse_utc(rec.get("start")), parse_utc(rec.get("end"))
            if start and end and end >= after:
                spans.append((start, end))
    return spans


@dataclass(frozen=True)
class RollingWindow:
    """Every monitor pass of the run added up: what ``cutover status`` shows."""

    passes: int
    passes_failed: tuple[str, ...]
    first: datetime | None
    last: datetime | None
    hours_monitored: float
    samples: int
    probe_requests: int
    probe_failures: int
    log_requests: int
    log_request_errors: int
    search_n: int
    search_p95_ms: float | None
    incidents: tuple[Incident, ...] = field(default_factory=tuple)

    @property
    def error_rate(self) -> float | None:
        return ratio(self.probe_failures, self.probe_requests)

    @property
    def log_error_rate(self) -> float | None:
        return ratio(self.log_request_errors, self.log_requests)

    def as_dict(self) -> dict[str, Any]:
        return {
            "passes": self.passes, "passes_failed": list(self.passes_failed),
            "first": fmt_utc(self.first) if self.first else None, "last": fmt_utc(self.last) if self.last else None,
            "hours_monitored": round(self.hours_monitored, 3), "samples": self.samples,
            "probe_requests": self.probe_requests, "probe_failures": self.probe_failures,
            "error_rate": _round(self.error_rate), "log_requests": self.log_requests,
            "log_request_errors": self.log_request_errors, "log_error_rate": _round(self.log_error_rate),
            "search_n": self.search_n, "search_p95_ms": self.search_p95_ms,
            "incidents": [{"name": i.name, "stage": i.stage, "evidence": i.evidence, "at": i.at}
                          for i in self.incidents],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def covered_hours(spans: Iterable[tuple[datetime, datetime]]) -> float:
    """Length of the union of ``spans``, in hours (overlapping passes count once)."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is not None and start < reach:
            start = reach
        if end > start:
            total += (end - start).total_seconds()
        reach = end if reach is None else max(reach, end)
    return total / 3600


def rolling_window(records: Sequence[Mapping[str, Any]], until: datetime | None = None) -> RollingWindow:
    """The rolling window over every monitor pass of the run (not only the last one), as of ``until``."""
    passes = [p for p in monitor_passes(records) if until is None or p.start <= until]
    found = [i for i in incidents(records) if until is None or (parse_utc(i.at) or until) <= until]
    latencies = [v for p in passes for v in p.search_ms]
    return RollingWindow(
        passes=len(passes), passes_failed=tuple(p.label() for p in passes if not p.ok),
        first=passes[0].start if passes else None, last=max((p.end for p in passes), default=None),
        hours_monitored=covered_hours((p.start, p.end) for p in passes),
        samples=sum(p.samples for p in passes),
        probe_requests=sum(p.probe_requests for p in passes), probe_failures=sum(p.probe_failures for p in passes),
        log_requests=sum(p.log_requests for p in passes),
        log_request_errors=sum(p.log_request_errors for p in passes),
        search_n=len(latencies), search_p95_ms=percentile(latencies, 95),
        incidents=tuple(found),
    )
