"""The rehearsal's side of the suite's extension points: plant faults at the moment they belong to,
and show a live stage line as each stage starts and ends.

Registered by ``cutover rehearse`` only (``pytest.main(plugins=[...])``); the suite itself never
knows it runs on a rehearsal: it announces moments (``pytest_cutover_event``) and this plugin
answers some of them by changing the stack for real (``faults.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal import faults as catalog

__all__ = ["RehearsalHooks"]

#: Which announced moment plants which ``after-sync`` fault (between the copy and its verification).
_AFTER_SYNC_EVENT = {"vector-altered": "vectors-copied", "blob-corrupt": "blobs-copied"}
#: How far into the monitor window the ``during-monitor`` faults are planted.
_MONITOR_FAULT_AT = 0.3


class RehearsalHooks:
    """Plants the stack's ``after-sync`` and ``during-monitor`` faults; prints stage progress."""

    def __init__(self, stack: Any, say: Callable[[str], None], monitor_window_s: float) -> None:
        self.stack = stack
        self.say = say
        self.monitor_window_s = monitor_window_s
        self._timers: list[threading.Timer] = []

    def _plant(self, name: str) -> None:
        try:
            evidence = self.stack.plant(name)
        except Exception as exc:  # a planter failing must be visible, never silently ignored
            self.say(f"  ! fault {name} could not be planted: {redact(exc)}")
            raise
        self.say(f"  ~ fault planted: {name}: {redact(evidence)}")

    def pytest_cutover_event(self, config: pytest.Config, event: str, details: dict[str, Any]) -> None:
        self.say(f"  - {event}")
        due = [f for f in catalog.faults_due(self.stack.faults, catalog.AFTER_SYNC)
               if _AFTER_SYNC_EVENT.get(f.name) == event and f.name not in self.stack.planted]
        for fault in due:
            self._plant(fault.name)
        if event == "rollback":
            # The monitor faults model a misbehaving *new* system: going back to the old database leaves them
            # behind, so the rollback's own checks see the old system as it really is.
            names = [f.name for f in catalog.faults_due(self.stack.faults, catalog.DURING_MONITOR)]
            for timer in self._timers:
                timer.cancel()
            if names:
                catalog.clear_runtime_faults(self.stack, names)
                self.say(f"  ~ rollback: cleared the new system's faults {', '.join(names)}")
        if event == "monitor-started":
            for fault in catalog.faults_due(self.stack.faults, catalog.DURING_MONITOR):
                timer = threading.Timer(self.monitor_window_s * _MONITOR_FAULT_AT, self._plant, args=(fault.name,))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        for timer in self._timers:
            timer.cancel()
