"""Actions that change the world during a cutover: maintenance, DATABASE_URL switch, restart, rollback.

Each is a plain library call taking a :class:`~pytest_cutover.context.RunContext`,
recorded in the run ledger (``kind: "action"``; the rollback adds ``kind:
"rollback"`` per step), bounded by a deadline, and raising
:class:`~pytest_cutover.actions.base.ActionError` with a hint when it fails.
Fixtures and ``cutover action NAME`` both use them.  Submodules are imported on
use, so importing this package stays cheap.
"""

from __future__ import annotations

from pytest_cutover.actions.base import ActionError, ActionResult

__all__ = ["ActionError", "ActionResult"]
