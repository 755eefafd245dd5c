"""Ledger records of a night as the suite writes them (shapes and figures from a real rehearsal's ledger)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stage(name: str, start: float, end: float, verdict: str = "passed", **figures: Any) -> dict[str, Any]:
    return {"kind": "stage", "stage": name, "verdict": verdict, "start": at(start), "end": at(end), "ts": at(end),
            "figures": figures}


def action(name: str, end: float, duration: float) -> dict[str, Any]:
    return {"kind": "action", "action": name, "ok": True, "duration_s": duration, "ts": at(end)}


def told(event: str, when: float) -> dict[str, Any]:
    return {"kind": "notification", "event": event, "channel": "users", "ok": True, "ts": at(when)}


VECTORS = {"points": 1000, "migrated": 1000, "rejected": 0, "missing": 0, "duration_s": 2.0, "hnsw_build_s": 1.0,
           "verify_s": 0.5, "total_s": 4.5, "points_per_s": 500.0}
BLOBS = {"rows": 40, "migrated": 40, "bytes": 4_000_000, "duration_s": 0.6, "verify_s": 0.2}


def night(environment: str = "postgresql://127.0.0.1:5432/postgres", *, monitor: bool = True) -> list[dict[str, Any]]:
    """A complete, passing night: sync 10 s (maintenance 0.1 s, notification at +0.3 s), switch, smoke, rls,
    monitor with an 8 s window."""
    records = [
        {"kind": "config", "config_hash": "sha256:x", "settings": {}, "hosts": {"target.database_url": environment},
         "ts": at(-60)},
        stage("precutover", -50, -40, qdrant_points=1000, attachment_blobs=40, attachment_blob_bytes=4_000_000,
              memory_fragments=1100),
        action("maintenance-on", 0.2, 0.1),
        told("maintenance-enabled", 0.5),
        stage("sync", 0.0, 10.0, vectors=VECTORS, blobs=BLOBS),
        action("env-switch", 10.2, 0.05),
        action("restart", 12.2, 1.8),
        stage("switch", 10.0, 12.5, restart_s=1.8),
        stage("smoke", 12.5, 13.5),
        stage("rls", 13.5, 16.0),
    ]
    if monitor:
        records += [
            {"kind": "monitor-window", "window": 1, "ok": True, "samples": 9, "start": at(16.5), "end": at(24.5),
             "window_s": 8.0, "ts": at(24.6)},
            action("maintenance-off", 24.8, 0.1),
            told("maintenance-disabled", 25.0),
            stage("monitor", 16.0, 25.2),
        ]
    return records
