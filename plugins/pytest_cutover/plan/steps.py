"""The steps of the night, in runbook order, with the durations the runbook itself states.

One catalog for the plan, ``cutover status`` and the report, so the three always list the same steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["STEPS", "STEP_BY_KEY", "Step"]


@dataclass(frozen=True)
class Step:
    """One step of the maintenance window.

    ``runbook_s`` is the duration the runbook states for it (cutover-checklist.md, "Duration: ..."), used
    when no pass on the same systems measured the step; ``like`` names a step whose figures stand in for
    this one's when it was never measured (turning maintenance off costs what turning it on cost).
    """

    key: str
    title: str
    stage: str
    runbook_s: float | None = None
    like: str | None = None


STEPS: tuple[Step, ...] = (
    Step("maintenance-on", "Step 1: enable maintenance mode", "sync", 5 * 60),
    Step("notify-start", "Step 1: tell users (maintenance-enabled)", "sync"),
    Step("final-sync", "Step 2: final data sync", "sync"),
    Step("env-switch", "Step 3: switch DATABASE_URL", "switch", 5 * 60),
    Step("restart", "Step 4: restart backend services", "switch", 10 * 60),
    Step("smoke", "Step 5: smoke tests", "smoke", 10 * 60),
    Step("rls", "RLS isolation in depth", "rls"),
    Step("monitor", "Step 6: monitor logs", "monitor"),
    Step("maintenance-off", "Step 7: disable maintenance mode", "monitor", like="maintenance-on"),
    Step("notify-end", "Step 7: tell users (maintenance-disabled)", "monitor", like="notify-start"),
)
STEP_BY_KEY: Mapping[str, Step] = {s.key: s for s in STEPS}
