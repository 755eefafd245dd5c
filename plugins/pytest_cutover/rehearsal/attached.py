"""Plant a kept-up rehearsal stack's runtime faults from a suite run in another process.

The fault matrix keeps one stack up and runs the suite against it in a subprocess per fault.  The
``during-monitor`` faults must still be planted partway through the monitor window by the suite's
own event hook (:class:`~pytest_cutover.rehearsal.hooks.RehearsalHooks`), exactly as in
``cutover rehearse``.  They only write the app's FAULTS_FILE, so this stand-in for the stack needs
nothing but that path.  Loaded with ``-p pytest_cutover.rehearsal.attached``; it does nothing unless
the parent set :data:`ENV_FAULTS`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import faults as catalog
from pytest_cutover.rehearsal.errors import RehearsalError

__all__ = ["ENV_FAULTS", "ENV_FAULTS_FILE", "ENV_MONITOR_WINDOW", "RuntimeFaultTarget", "attached_environ"]

ENV_FAULTS = "CUTOVER_REHEARSAL_FAULTS"
ENV_FAULTS_FILE = "CUTOVER_REHEARSAL_FAULTS_FILE"
ENV_MONITOR_WINDOW = "CUTOVER_REHEARSAL_MONITOR_WINDOW"


@dataclass
class RuntimeFaultTarget:
    """The part of a stack that runtime faults touch: the app's FAULTS_FILE."""

    faults_file: Path
    faults: list[str]
    planted: dict[str, str] = field(default_factory=dict)

    def plant(self, name: str) -> str:
        fault = catalog.get_fault(name)
        if fault.when != catalog.DURING_MONITOR:
            raise RehearsalError(f"fault {name} is planted {fault.when}, not during the monitor window",
                                 hint="plant it on the stack object itself (EmbeddedStack.plant)")
        evidence = catalog.plant(self, name)
        self.planted[name] = evidence
        return evidence


def attached_environ(faults_file: Path, names: list[str], monitor_window_s: float) -> dict[str, str]:
    """The environment that makes this plugin plant ``names`` (``during-monitor`` faults) in the child."""
    for fault in catalog.validate_faults(names):
        if fault.when != catalog.DURING_MONITOR:
            raise RehearsalError(f"fault {fault.name} cannot be planted from the suite's process ({fault.when})",
                                 hint="only during-monitor faults are planted by the attached plugin")
    return {ENV_FAULTS: ",".join(names), ENV_FAULTS_FILE: str(faults_file), ENV_MONITOR_WINDOW: str(monitor_window_s)}


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def pytest_configure(config: pytest.Config) -> None:
    names = [n for n in os.environ.get(ENV_FAULTS, "").split(",") if n]
    if not names:
        return
    from pytest_cutover.rehearsal.hooks import RehearsalHooks

    target = RuntimeFaultTarget(Path(os.environ[ENV_FAULTS_FILE]), [f.name for f in catalog.validate_faults(names)])
    window = float(os.environ.get(ENV_MONITOR_WINDOW, "8"))
    config.pluginmanager.register(RehearsalHooks(target, _say, window), "cutover-rehearsal-attached")
