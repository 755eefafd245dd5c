"""STEP 6 and STEP 7: watch the window, decide the rollback triggers, check the success criteria,
then disable maintenance mode — only if everything before passed.

The window is ``[thresholds] monitor_window_s`` (30 minutes by default; seconds in a rehearsal).
With ``--cutover-auto-rollback`` a fired trigger runs the runbook's rollback before the stage fails.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.context import RunContext

pytestmark = pytest.mark.monitor

TRIGGERS = ("error-rate", "rls-leak", "database-connection-failures", "critical-feature-broken",
            "vector-search-broken")
CRITERIA = ("error-rate", "no-rls-leaks", "vector-search-p95", "storage-operations", "database-stable",
            "memory-slope")


@pytest.fixture(scope="module")
def window(ctx: RunContext, needs: Any, announce_event: Any, pytestconfig: pytest.Config) -> Any:
    """Run the monitor window; on a fired trigger with --cutover-auto-rollback, roll back for real."""
    needs("app.api_base")
    from pytest_cutover.monitor.runner import run_monitor

    announce_event("monitor-started", window_s=ctx.config.thresholds.monitor_window_s if ctx.config else None)
    result = run_monitor(ctx)
    fired = result.fired
    if fired:
        evidence = "; ".join(f"{t.name}: {t.evidence}" for t in fired)
        announce_event("rollback", triggers=[t.name for t in fired], evidence=evidence)
        if pytestconfig.getoption("cutover_auto_rollback"):
            from pytest_cutover.actions.rollback import run_rollback

            run_rollback(ctx)
    return result


def test_logs_monitored_for_the_window(window: Any, record_figure: Any) -> None:
    """Logs monitored for 30 minutes"""
    record_figure("monitor", window.figures)
    assert not window.cut_short, f"the window was cut short after {window.elapsed_s:.0f}s ({window.stopped_by})"
    assert window.complete, f"the window did not complete: {window.stopped_by}"


@pytest.mark.parametrize("name", TRIGGERS)
def test_no_rollback_trigger(window: Any, name: str, pytestconfig: pytest.Config) -> None:
    """Triggers for rollback"""
    trigger = next((t for t in window.triggers if t.name == name), None)
    assert trigger is not None, f"trigger {name} was not evaluated"
    done = " (rolled back: see the report's rollback steps)" if pytestconfig.getoption("cutover_auto_rollback") \
        else "; roll back with `cutover action rollback` or re-run with --cutover-auto-rollback"
    assert not trigger.fired, f"rollback trigger {name} fired: {trigger.evidence}{done}"


@pytest.mark.parametrize("name", CRITERIA)
def test_success_criterion(window: Any, name: str) -> None:
    """Success Criteria"""
    criterion = next((c for c in window.criteria if c.name == name), None)
    assert criterion is not None, f"success criterion {name} was not evaluated"
    assert criterion.ok, criterion.message


def test_maintenance_mode_disabled(ctx: RunContext, request: pytest.FixtureRequest, needs: Any,
                                   announce_event: Any) -> None:
    """Maintenance mode disabled"""
    needs("app.maintenance", "app.health_url")
    if request.session.testsfailed:
        pytest.fail("maintenance stays ON: a check failed in this run (Only if all smoke tests passed!)")
    from pytest_cutover.actions.maintenance import disable_maintenance

    result = disable_maintenance(ctx)
    assert result.ok, result.detail
    announce_event("maintenance-disabled", detail=result.detail)
