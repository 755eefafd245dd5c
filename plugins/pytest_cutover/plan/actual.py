"""What each step of the night really took, read from a run's ledger records (pure: records in, times out).

A finished stage's steps are read from the records written between its stage record's ``start`` and
``end``: actions carry their end (``ts``) and ``duration_s``, notifications their time, monitor passes
their window.  A stage that is under way has no stage record yet (it is written when the stage ends): its
steps are read from the records written since the last stage record, and the step that started last is
``running``.  A step nothing recorded is ``pending``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pytest_cutover.ledger import effective_stage_records
from pytest_cutover.plan.steps import STEPS
from pytest_cutover.stages import PASSED, STAGES
from pytest_cutover.week1.history import parse_utc

__all__ = ["DONE", "PENDING", "RUNNING", "SKIPPED", "Actual", "step_actuals"]

DONE, RUNNING, PENDING, SKIPPED = "done", "running", "pending", "skipped"


@dataclass(frozen=True)
class Actual:
    """One step as it happened: ``state`` is done, running, pending or skipped (nothing to do)."""

    key: str
    state: str
    start: datetime | None = None
    end: datetime | None = None
    verdict: str | None = None  # the verdict of the stage the step belongs to, once it ended
    note: str = ""

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, (self.end - self.start).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.key, "state": self.state, "start": _iso(self.start), "end": _iso(self.end),
                "seconds": None if self.seconds is None else round(self.seconds, 3), "verdict": self.verdict,
                "note": self.note}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _action(window: Sequence[Mapping[str, Any]], name: str) -> tuple[datetime, datetime] | None:
    """The first action ``name`` in ``window``: (start, end) from its ``ts`` and ``duration_s``."""
    for rec in window:
        if rec.get("kind") == "action" and rec.get("action") == name:
            end = parse_utc(rec.get("ts"))
            if end is None:
                continue
            return end - timedelta(seconds=float(rec.get("duration_s") or 0.0)), end
    return None


def _told(window: Sequence[Mapping[str, Any]], event: str, after: datetime) -> datetime | None:
    """When the last delivery of ``event`` after ``after`` was recorded (``None``: no delivery)."""
    times = [t for rec in window if rec.get("kind") == "notification" and rec.get("event") == event
             for t in [parse_utc(rec.get("ts"))] if t is not None and t >= after]
    return max(times, default=None)


def _windows(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[Mapping[str, Any]]], str | None,
                                                              dict[str, dict[str, Any]]]:
    """The records of each finished stage (by time), the stage under way (if any) with the records since the
    last stage record, and the effective stage records."""
    effective = effective_stage_records([dict(r) for r in records])
    windows: dict[str, list[Mapping[str, Any]]] = {}
    for stage, rec in effective.items():
        start, end = parse_utc(rec.get("start")), parse_utc(rec.get("end"))
        if start is None or end is None:
            continue
        windows[stage] = [r for r in records if r.get("kind") != "stage"
                          and (t := parse_utc(r.get("ts"))) is not None and start <= t <= end]
    last = max((i for i, r in enumerate(records) if r.get("kind") == "stage"), default=-1)
    since = [r for r in records[last + 1:] if r.get("kind") not in ("stage", "config", "ack", "note")]
    running = None
    if since:
        # The stage under way is the first one without an effective passing record.
        running = next((s for s in STAGES if effective.get(s, {}).get("verdict") != PASSED), None)
        if running is not None and running not in effective:
            windows[running] = since
        else:
            running = None
    return windows, running, effective


def _sync_actuals(window: list[Mapping[str, Any]], start: datetime | None, end: datetime | None,
                  verdict: str | None) -> dict[str, Actual]:
    """The sync stage's steps: maintenance on, users told, the final sync."""
    out: dict[str, Actual] = {}
    on = _action(window, "maintenance-on")
    out["maintenance-on"] = (Actual("maintenance-on", DONE, *on, verdict) if on
                             else Actual("maintenance-on", DONE if end else PENDING, start, start, verdict,
                                         "no maintenance-on action recorded" if end else ""))
    told_from = on[1] if on else start
    told = _told(window, "maintenance-enabled", told_from) if told_from else None
    if told is not None:
        out["notify-start"] = Actual("notify-start", DONE, told_from, told, verdict)
    else:
        out["notify-start"] = Actual("notify-start", SKIPPED if (on or end) else PENDING, told_from,
                                     told_from, verdict, "no maintenance-enabled delivery recorded")
    sync_from = told or told_from
    if end is not None:
        out["final-sync"] = Actual("final-sync", DONE, sync_from or start, end, verdict)
    elif sync_from is not None:
        out["final-sync"] = Actual("final-sync", RUNNING, sync_from, None)
    else:
        out["final-sync"] = Actual("final-sync", PENDING)
    return out


def step_actuals(records: Sequence[Mapping[str, Any]]) -> dict[str, Actual]:
    """Each step of :data:`~pytest_cutover.plan.steps.STEPS` as the records say it happened."""
    windows, running, effective = _windows(records)
    out: dict[str, Actual] = {}

    def stage_bounds(stage: str) -> tuple[datetime | None, datetime | None, str | None]:
        rec = effective.get(stage)
        if rec is None or stage == running:
            return None, None, None
        return parse_utc(rec.get("start")), parse_utc(rec.get("end")), rec.get("verdict")

    for stage in STAGES[1:]:
        window = windows.get(stage)
        start, end, verdict = stage_bounds(stage)
        under_way = stage == running
        keys = [s.key for s in STEPS if s.stage == stage]
        if window is None and not under_way:
            for key in keys:
                out[key] = Actual(key, PENDING)
            continue
        window = window or []
        if stage == "sync":
            out.update(_sync_actuals(window, start, end, verdict))
        elif stage == "switch":
            for key, name in (("env-switch", "env-switch"), ("restart", "restart")):
                found = _action(window, name)
                if found:
                    out[key] = Actual(key, DONE, *found, verdict)
                else:
                    out[key] = Actual(key, PENDING if not end else DONE, None, None, verdict,
                                      f"no {name} action recorded" if end else "")
        elif stage in ("smoke", "rls"):
            out[stage] = Actual(stage, DONE if end else RUNNING, start, end, verdict)
        elif stage == "monitor":
            passes = [r for r in window if r.get("kind") == "monitor-window"]
            off = _action(window, "maintenance-off")
            watch_end = max((t for r in passes if (t := parse_utc(r.get("end"))) is not None), default=None)
            if watch_end is not None:
                out["monitor"] = Actual("monitor", DONE, start or watch_end, watch_end, verdict)
            else:
                out["monitor"] = Actual("monitor", RUNNING if under_way else DONE, start, end, verdict)
            out["maintenance-off"] = (Actual("maintenance-off", DONE, *off, verdict) if off
                                      else Actual("maintenance-off", PENDING, note="no maintenance-off action "
                                                                                   "recorded"))
            told = _told(window, "maintenance-disabled", off[1]) if off else None
            out["notify-end"] = (Actual("notify-end", DONE, off[1], told, verdict) if off and told
                                 else Actual("notify-end", SKIPPED if off else PENDING, note=(
                                     "no maintenance-disabled delivery recorded" if off else "")))
    return out
