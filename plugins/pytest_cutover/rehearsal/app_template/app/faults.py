"""Runtime faults the rehearsal plants in FAULTS_FILE, re-read on every request.

The file is a JSON object; a missing file means no fault.  Known keys (fault names of the rehearsal
catalog): ``error-spike`` (share of /api requests answered 500), ``slow-search`` (ms added to each
search), ``db-conn-failures`` (database calls fail), ``cross-org-leak`` (the threads API loses its
tenant), ``maintenance-ignored`` (health never reports maintenance), ``app-fails-start`` (startup
raises).  A production app would not have this module; it is how the rehearsal proves each gate
catches its fault.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Faults", "load_faults"]

_log = logging.getLogger("app.faults")


@dataclass(frozen=True)
class Faults:
    """The runtime faults in effect for one request."""

    error_spike: float = 0.0
    slow_search_ms: float = 0.0
    db_conn_failures: bool = False
    cross_org_leak: bool = False
    maintenance_ignored: bool = False
    app_fails_start: bool = False

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Faults:
        return cls(
            error_spike=min(max(float(data.get("error-spike") or 0.0), 0.0), 1.0),
            slow_search_ms=max(float(data.get("slow-search") or 0.0), 0.0),
            db_conn_failures=bool(data.get("db-conn-failures")),
            cross_org_leak=bool(data.get("cross-org-leak")),
            maintenance_ignored=bool(data.get("maintenance-ignored")),
            app_fails_start=bool(data.get("app-fails-start")),
        )


def load_faults(path: Path | None) -> Faults:
    """The faults in ``path`` now (no file, or no path: none; an unreadable file is logged and ignored)."""
    if path is None:
        return Faults()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Faults()
    except (OSError, ValueError) as exc:
        _log.warning("faults file %s ignored: %s", path, exc)
        return Faults()
    if not isinstance(data, dict):
        _log.warning("faults file %s ignored: expected a JSON object", path)
        return Faults()
    try:
        return Faults.from_mapping(data)
    except (TypeError, ValueError) as exc:
        _log.warning("faults file %s ignored: %s", path, exc)
        return Faults()
