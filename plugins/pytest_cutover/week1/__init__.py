"""Runbook "Post-Cutover (Week 1)": the rolling monitor window and the Week-1 checks, judged from the ledger.

Pure parts (no I/O, ``now`` is a parameter): :mod:`.history` (monitor passes, incidents, the
rolling window) and :mod:`.checks` (the five items' verdicts).  I/O: :mod:`.reachability`
(the old database and Qdrant, live) and :mod:`.cli` (``cutover decommission``).  The checks run
as ``pytest -m week1`` (pytest_cutover/suite/test_week1.py) and as ``cutover status --week1``; they are
not a seventh stage and never gate one.
"""

from __future__ import annotations

from pytest_cutover.week1.checks import (
    CHECKS,
    PENDING,
    CheckVerdict,
    Week1Settings,
    evaluate_week1,
    week1_section,
    week1_settings,
)
from pytest_cutover.week1.history import RollingWindow, rolling_window

__all__ = [
    "CHECKS",
    "PENDING",
    "CheckVerdict",
    "RollingWindow",
    "Week1Settings",
    "evaluate_week1",
    "rolling_window",
    "week1_section",
    "week1_settings",
]
