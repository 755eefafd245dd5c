"""The monitor's own errors: CutoverError subclasses that also narrow a builtin."""

from __future__ import annotations

from pytest_cutover.errors import CutoverError

__all__ = ["MonitorError", "SeriesError"]


class MonitorError(CutoverError, RuntimeError):
    """A monitor source (log command, probe target, database) cannot be used."""


class SeriesError(CutoverError, ValueError):
    """``monitor.jsonl`` cannot be read or written."""
