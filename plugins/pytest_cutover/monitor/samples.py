"""One monitor sample, and the series of them in ``reports/<run>/monitor.jsonl``.

The series is what the report charts and what triggers and criteria read, so a
sample carries every figure the runbook's step 6 watches: probe outcomes and
latencies, log lines by level and category, the app's RSS, and the connection
counts on the target and the pooler.

File layout (append-only JSON lines, one ``kind`` per record):

- ``window``: a monitoring window begins (``window`` number, ``window_s``, ``interval_s``);
- ``sample``: one :class:`Sample` of that window;
- ``trigger``: a rollback trigger fired (recorded once per name and window);
- ``end``: a session of the window ended (``cut_short``, ``complete``, ``reason``).

A window may span several sessions (Ctrl-C, then resume in the same run): its
elapsed time is the monitoring time accumulated over its sessions, so a 30-minute
window interrupted at minute 10 watches 20 more minutes when resumed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_cutover.jsonl import append_record, read_records
from pytest_cutover.ledger import run_dir
from pytest_cutover.monitor.errors import SeriesError
from pytest_cutover.redact import redact_obj

__all__ = [
    "CATEGORIES",
    "DB_CONNECTION",
    "LEVELS",
    "RLS_CONTEXT",
    "SERIES_NAME",
    "STORAGE_ACCESS",
    "VECTOR_SEARCH_TIMEOUT",
    "LogCounts",
    "MonitorSeries",
    "ProbeResult",
    "Sample",
    "SeriesState",
]

SERIES_NAME = "monitor.jsonl"

# The runbook's step 6 "what to look for", as category names.
DB_CONNECTION = "database-connection"
RLS_CONTEXT = "rls-context"
VECTOR_SEARCH_TIMEOUT = "vector-search-timeout"
STORAGE_ACCESS = "storage-access"
CATEGORIES: tuple[str, ...] = (DB_CONNECTION, RLS_CONTEXT, VECTOR_SEARCH_TIMEOUT, STORAGE_ACCESS)
LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class ProbeResult:
    """One synthetic request: did it work, how long it took, and did it leak another org's rows."""

    name: str
    kind: str
    ok: bool
    latency_ms: float | None
    status: int | None = None
    org: str | None = None
    error: str | None = None
    timed_out: bool = False
    leak: bool = False
    leaked_orgs: tuple[str, ...] = ()
    rows: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        return cls(**{**data, "leaked_orgs": tuple(data.get("leaked_orgs") or ())})


@dataclass(frozen=True)
class LogCounts:
    """The app's log lines seen during one interval, counted by level and runbook category."""

    lines: int = 0
    levels: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    request_errors: int = 0
    evidence: tuple[str, ...] = ()
    source_error: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogCounts:
        return cls(**{**data, "evidence": tuple(data.get("evidence") or ())})


@dataclass(frozen=True)
class Sample:
    """Everything measured at one tick of the monitor."""

    seq: int
    ts: float
    elapsed_s: float
    probes: tuple[ProbeResult, ...] = ()
    logs: LogCounts = field(default_factory=LogCounts)
    rss_bytes: int | None = None
    db_connections: int | None = None
    db_errors: int = 0
    pooler_connections: int | None = None
    pooler_waiting: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        fields["probes"] = tuple(ProbeResult.from_dict(p) for p in data.get("probes") or ())
        fields["logs"] = LogCounts.from_dict(data.get("logs") or {})
        fields["notes"] = tuple(data.get("notes") or ())
        return cls(**fields)


@dataclass
class SeriesState:
    """The latest window of a series, as a resuming sampler needs it."""

    window: int | None = None
    window_s: float | None = None
    interval_s: float | None = None
    samples: list[Sample] = field(default_factory=list)
    triggers: dict[str, str] = field(default_factory=dict)
    sessions: int = 0
    last_end: dict[str, Any] | None = None

    @property
    def elapsed_s(self) -> float:
        return self.samples[-1].elapsed_s if self.samples else 0.0

    @property
    def complete(self) -> bool:
        """The window ran to its end (not cut short) in some session."""
        return bool(self.last_end and self.last_end.get("complete"))


class MonitorSeries:
    """The append-only time series of one run's monitor."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def for_run(cls, reports_dir: str | os.PathLike[str], run: str) -> MonitorSeries:
        return cls(run_dir(reports_dir, run) / SERIES_NAME)

    def _append(self, record: dict[str, Any]) -> None:
        append_record(self.path, redact_obj(record), error=SeriesError)

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order; a bad line raises :class:`SeriesError` naming it."""
        records = read_records(self.path, error=SeriesError)
        for number, record in enumerate(records, start=1):
            if "kind" not in record or "window" not in record:
                raise SeriesError(f"{self.path} record {number} has no 'kind' or 'window'",
                                  hint="monitor.jsonl is written by the monitor only")
        return records

    def state(self) -> SeriesState:
        """The latest window: its samples, fired triggers and how its last session ended."""
        state = SeriesState()
        for record in self.records():
            kind = record["kind"]
            if kind == "window":
                state = SeriesState(window=record["window"], window_s=record.get("window_s"),
                                    interval_s=record.get("interval_s"))
                continue
            if record["window"] != state.window:
                raise SeriesError(f"{self.path}: a {kind!r} record of window {record['window']} "
                                  f"follows window {state.window}", hint="monitor.jsonl is append-only")
            if kind == "session":
                state.sessions += 1
            elif kind == "sample":
                state.samples.append(Sample.from_dict(record))
            elif kind == "trigger":
                state.triggers.setdefault(record["name"], record.get("evidence", ""))
            elif kind == "end":
                state.last_end = record
        return state

    def samples(self) -> list[Sample]:
        """The samples of the latest window (what the report charts)."""
        return self.state().samples

    def start_window(self, window_s: float, interval_s: float) -> int:
        """Begin a new window (a fresh watch in the same run); returns its number."""
        current = self.state().window or 0
        window = current + 1
        self._append({"kind": "window", "window": window, "window_s": window_s, "interval_s": interval_s})
        return window

    def start_session(self, window: int, *, resumed_at_s: float) -> None:
        self._append({"kind": "session", "window": window, "resumed_at_s": resumed_at_s})

    def append_sample(self, window: int, sample: Sample) -> None:
        self._append({"kind": "sample", "window": window, **sample.to_dict()})

    def append_trigger(self, window: int, name: str, evidence: str) -> None:
        self._append({"kind": "trigger", "window": window, "name": name, "evidence": evidence})

    def append_end(self, window: int, *, cut_short: bool, complete: bool, reason: str, elapsed_s: float) -> None:
        self._append({"kind": "end", "window": window, "cut_short": cut_short, "complete": complete,
                      "reason": reason, "elapsed_s": elapsed_s})
