"""Day 7 of the rehearsal: the pre-sync, run while the app is live, before any stage of the night.

``cutover rehearse`` calls :func:`run_presync` once the stack is up and its ``before`` faults are planted,
exactly as an operator runs ``cutover migrate vectors --presync`` and ``cutover migrate blobs --presync``
(same run id) the day before: the same library calls, the same ``migration`` ledger records (``mode =
"presync"``).  The sync stage then finds the pre-sync and runs a delta final sync.  Faults planted
``after-presync`` (points changed in Qdrant since) are planted right after it, by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_presync"]


def run_presync(config_path: Path, run: str, reports_dir: Path, say: Callable[[str], None]) -> list[Any]:
    """Pre-sync the vectors (and the BLOBs when Storage is configured) into the stack's target; returns the
    outcomes.  A pre-sync that finds problems (a planted bad point) is recorded as such, not raised: the
    precutover stage reads it, and the sync stage's delta is the gate for the data."""
    from pytest_cutover.context import context_from_options
    from pytest_cutover.migrate import api

    ctx = context_from_options(config_path, run, reports_dir)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("vectors", lambda: api.vectors(ctx.config, ctx.run, mode="presync", parity=False))]
    if ctx.config.target.storage_url:
        steps.append(("blobs", lambda: api.blobs(ctx.config, run_id=ctx.run, mode="presync")))
    outcomes = []
    for step, call in steps:
        outcome = call()
        api.record_migration(ctx, outcome, {"mode": "presync", "by": "cutover rehearse"})
        f = outcome.figures
        say(f"  pre-sync {step}: {'ok' if outcome.ok else 'with findings'}, {f.get('items')} items in "
            f"{f.get('total_s', 0):.1f}s ({f.get('index_s') or 0:.1f}s index)")
        outcomes.append(outcome)
    return outcomes
