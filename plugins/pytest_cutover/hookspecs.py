"""Extension points of pytest-cutover, added with ``pytest_addhooks``.

The stage fixtures announce the moments of the cutover through :func:`pytest_cutover_event`;
notification channels, dashboards and the rehearsal's fault planter implement it.  The suite
never special-cases the rehearsal: it only announces what it is doing.
"""

from __future__ import annotations

from typing import Any

import pytest

#: Moments the fixtures announce, in cutover order.
EVENTS = (
    "maintenance-enabled",    # sync: maintenance is on and /health confirms it
    "vectors-copied",         # sync: every vector is written, before bit-for-bit verification
    "blobs-copied",           # sync: every BLOB is uploaded, before it is verified
    "switched",               # switch: DATABASE_URL now points at the transaction pooler
    "restarted",              # switch: the app is back and healthy on the new database
    "monitor-started",        # monitor: the watch window began
    "maintenance-disabled",   # monitor: maintenance is off, the cutover is live
    "rollback",               # a rollback trigger fired (details carry the trigger and evidence)
)


@pytest.hookspec
def pytest_cutover_event(config: pytest.Config, event: str, details: dict[str, Any]) -> None:
    """A cutover moment happened (one of :data:`EVENTS`); ``details`` are redacted facts about it."""
