"""Runbook Day 7: the pre-sync ran, passed, and is fresh enough for the night's delta final sync.

The pre-sync (``cutover migrate vectors --presync``, and ``blobs --presync`` when Storage is configured) loads
everything while the app is live, so that the sync stage inside the window sends only what changed since.  It
leaves ``migration`` records with ``mode = "presync"`` in the run's ledger; this probe reads them.

Missing or stale is a *failure* only when ``migrate.presync_required`` says the night depends on it (its window
was planned on a delta); otherwise the final sync copies everything, as the runbook allows, and the probe
passes with a note saying so (:attr:`PresyncState.note`).  A pre-sync whose last attempt failed counts as missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pytest_cutover.checks.base import CheckResult, result

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["PresyncState", "check_presync", "presync_steps"]


def presync_steps(config: CutoverConfig) -> tuple[str, ...]:
    """The steps that have a pre-sync: the vectors always, the BLOBs when Storage is configured."""
    return ("vectors", "blobs") if config.target.storage_url else ("vectors",)


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _finished_at(record: Mapping[str, Any]) -> float | None:
    """When a pre-sync finished: its figures' ``at``, else the record's ``end`` or ``ts``."""
    for text in ((record.get("figures") or {}).get("at"), record.get("end"), record.get("ts")):
        if text and (at := _epoch(text)) is not None:
            return at
    return None


@dataclass(frozen=True)
class PresyncState:
    """What :func:`check_presync` found: the result, and a note for the report when it passes on a gap."""

    check: CheckResult
    note: str | None = None


def check_presync(config: CutoverConfig, records: Iterable[Mapping[str, Any]], run: str,
                  now: float | None = None) -> PresyncState:
    """The latest pre-sync per step in ``records`` (the run's ledger): present, passed, younger than
    ``migrate.presync_max_age_h``."""
    mig = config.migrate
    limit, now = mig.presync_max_age_h, time.time() if now is None else now
    latest: dict[str, Mapping[str, Any]] = {}
    for record in records:
        if record.get("kind") == "migration" and record.get("mode") == "presync":
            latest[str(record.get("step"))] = record
    gaps, figures, seen = [], {}, []
    for step in presync_steps(config):
        record = latest.get(step)
        at = _finished_at(record) if record else None
        if record is None or not record.get("ok") or at is None:
            why = "none recorded" if record is None else ("its last attempt failed" if not record.get("ok")
                                                         else "it has no finish time")
            gaps.append(f"no passing pre-sync of the {step} in run {run} ({why}): run `cutover migrate {step} "
                        f"--presync` with this run id while the app is live")
            figures[f"presync_{step}_age_h"] = None
            continue
        age_h = (now - at) / 3600.0
        figures[f"presync_{step}_age_h"] = round(age_h, 3)
        items = (record.get("figures") or {}).get("items")
        seen.append(f"{step}: {items} items, {age_h:.1f} h ago")
        if age_h > limit:
            gaps.append(f"the pre-sync of the {step} is {age_h:.1f} h old, over migrate.presync_max_age_h = "
                        f"{limit:g}: run `cutover migrate {step} --presync` again")
    evidence = "; ".join(seen) or "no pre-sync recorded"
    figures["presync_required"] = mig.presync_required
    if mig.presync_required:
        return PresyncState(result("presync", gaps, evidence, figures))
    note = None
    if gaps:
        note = ("pre-sync (not required: migrate.presync_required = false): " + "; ".join(gaps) +
                ". The final sync will copy what has no pre-sync inside the window.")
    return PresyncState(result("presync", [], evidence + (f" ({len(gaps)} gap(s) noted)" if gaps else ""), figures),
                        note)
