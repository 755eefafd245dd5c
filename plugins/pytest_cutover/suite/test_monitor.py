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


@pytest.mark.runbook("Logs monitored for 30 minutes")
def test_logs_monitored_for_the_window(window: Any, record_figure: Any) -> None:
    record_figure("monitor", window.figures)
    assert not window.cut_short, f"the window was cut short after {window.elapsed_s:.0f}s ({window.stopped_by})"
    fired = "; ".join(f"{t.name}: {t.evidence}" for t in window.fired)
    assert window.complete, f"the window was stopped early by {window.stopped_by}" + (f" ({fired})" if fired else "")


def _case(name: str, runbook: str) -> Any:
    """One parametrised case: the id is the trigger's or criterion's name, the runbook line its marker."""
    return pytest.param(name, id=name, marks=pytest.mark.runbook(runbook))


@pytest.mark.parametrize("name", [
    _case("error-rate", "Error rate > 5%"),
    _case("rls-leak", "RLS data leakage detected"),
    _case("database-connection-failures", "Database connection failures"),
    _case("critical-feature-broken", "Critical feature broken"),
    _case("vector-search-broken", "Vector search completely broken"),
])
def test_no_trigger(window: Any, pytestconfig: pytest.Config, name: str) -> None:
    """A rollback trigger was evaluated over the window and did not fire."""
    trigger = next((t for t in window.triggers if t.name == name), None)
    assert trigger is not None, f"trigger {name} was not evaluated"
    done = (" (rolled back: see the report's rollback steps)" if pytestconfig.getoption("cutover_auto_rollback")
            else "; roll back with `cutover action rollback` or re-run with --cutover-auto-rollback")
    assert not trigger.fired, f"rollback trigger {name} fired: {trigger.evidence}{done}"


@pytest.mark.parametrize("name", [
    _case("error-rate", "Error rate < 1%"),
    _case("no-rls-leaks", "No RLS data leaks"),
    _case("vector-search-p95", "Vector search latency < 100ms"),
    _case("storage-operations", "Storage operations succeeding"),
    _case("database-stable", "Database stable"),
    _case("memory-slope", "Memory usage growth"),
])
def test_success_criterion(window: Any, name: str) -> None:
    """A success criterion was evaluated over the window and holds."""
    criterion = next((c for c in window.criteria if c.name == name), None)
    assert criterion is not None, f"success criterion {name} was not evaluated"
    assert criterion.ok, criterion.message


@pytest.mark.runbook("Maintenance mode disabled")
def test_maintenance_mode_disabled(ctx: RunContext, request: pytest.FixtureRequest, needs: Any,
                                   announce_event: Any) -> None:
    needs("app.maintenance", "app.health_url")
    if request.session.testsfailed:
        pytest.fail("maintenance stays ON: a check failed in this run (Only if all smoke tests passed!)")
    from pytest_cutover.actions.health import HEALTHY
    from pytest_cutover.actions.maintenance import disable_maintenance, maintenance_status

    off_since = _maintenance_off_since(ctx)
    if off_since is not None:
        # A later monitor pass (the Week-1 watch): the window was already closed and users were told once.
        status = maintenance_status(ctx)
        assert status.health.state == HEALTHY, (
            f"maintenance was turned off at {off_since}, but /health now says {status.health.evidence()}: "
            "the app is not serving users")
        return
    result = disable_maintenance(ctx)
    assert result.ok, result.detail
    announce_event("maintenance-disabled", detail=result.detail)


def _maintenance_off_since(ctx: RunContext) -> str | None:
    """When this run last turned maintenance off, if nothing turned it on again since (else None)."""
    last = None
    for record in ctx.ledger.records():
        if record.get("kind") == "action" and record.get("ok") and record.get("action") in (
                "maintenance-on", "maintenance-off"):
            last = record
    return last["ts"] if last is not None and last["action"] == "maintenance-off" else None
