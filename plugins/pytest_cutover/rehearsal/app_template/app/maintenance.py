"""Maintenance state, from the three methods the runbook offers (STEP 1).

* ``env``: ``MAINTENANCE_MODE=true`` in the .env, read at start (so: edit the .env, then restart).
* ``endpoint``: ``POST /admin/maintenance/enable|disable``; kept in memory, so a restart clears it.
* ``file``: the app is in maintenance while ``MAINTENANCE_FILE`` exists (survives restarts).

``disable`` clears the first two; the file method is controlled only by the file.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["Maintenance"]


class Maintenance:
    """Whether the app is in maintenance now."""

    def __init__(self, *, from_env: bool, flag_file: Path | None) -> None:
        self._on = from_env
        self.flag_file = flag_file

    @property
    def active(self) -> bool:
        return self._on or (self.flag_file is not None and self.flag_file.exists())

    def enable(self) -> None:
        self._on = True

    def disable(self) -> None:
        self._on = False
