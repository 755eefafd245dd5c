"""Ledger records the monitor (and any other stage) writes: ``trigger`` and ``monitor``.

"Any stage may raise a trigger, not only the monitor": the rls stage that finds a
cross-tenant read calls :func:`record_trigger` with ``stage="rls"``; the report
turns every ``trigger`` record into the run's ROLLBACK status and lists its
evidence.  The builders are pure; :func:`record_trigger` appends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_cutover.monitor.criteria import Criterion
from pytest_cutover.monitor.triggers import RLS_LEAK, Trigger

if TYPE_CHECKING:
    from pytest_cutover.ledger import Ledger

__all__ = ["criterion_record", "prior_leaks_from_ledger", "record_trigger", "trigger_record"]


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
