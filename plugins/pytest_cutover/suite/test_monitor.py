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


def test_logs_monitored_for_the_window(window: Any, record_figure: Any) -> None:
    """Logs monitored for 30 minutes"""
    record_figure("monitor", window.figures)
    assert not window.cut_short, f"the window was cut short after {window.elapsed_s:.0f}s ({window.stopped_by})"
    fired = "; ".join(f"{t.name}: {t.evidence}" for t in window.fired)
    assert window.complete, f"the window was stopped early by {window.stopped_by}" + (f" ({fired})" if fired else "")


def _no_trigger(window: Any, name: str, auto_rollback: bool) -> None:
    trigger = next((t for t in window.triggers if t.name == name), None)
    assert trigger is not None, f"trigger {name} was not evaluated"
    done = (" (rolled back: see the report's rollback steps)" if auto_rollback
            else "; roll back with `cutover action rollback` or re-run with --cutover-auto-rollback")
    assert not trigger.fired, f"rollback trigger {name} fired: {trigger.evidence}{done}"


def _criterion_holds(window: Any, name: str) -> None:
    criterion = next((c for c in window.criteria if c.name == name), None)
    assert criterion is not None, f"success criterion {name} was not evaluated"
    assert criterion.ok, criterion.message


def test_no_trigger_error_rate(window: Any, pytestconfig: pytest.Config) -> None:
    """Error rate > 5%"""
    _no_trigger(window, "error-rate", pytestconfig.getoption("cutover_auto_rollback"))


def test_no_trigger_rls_leak(window: Any, pytestconfig: pytest.Config) -> None:
    """RLS data leakage detected"""
    _no_trigger(window, "rls-leak", pytestconfig.getoption("cutover_auto_rollback"))


def test_no_trigger_database_connection_failures(window: Any, pytestconfig: pytest.Config) -> None:
    """Database connection failures"""
    _no_trigger(window, "database-connection-failures", pytestconfig.getoption("cutover_auto_rollback"))


def test_no_trigger_critical_feature_broken(window: Any, pytestconfig: pytest.Config) -> None:
    """Critical feature broken"""
    _no_trigger(window, "critical-feature-broken", pytestconfig.getoption("cutover_auto_rollback"))


def test_no_trigger_vector_search_broken(window: Any, pytestconfig: pytest.Config) -> None:
    """Vector search completely broken"""
    _no_trigger(window, "vector-search-broken", pytestconfig.getoption("cutover_auto_rollback"))


def test_error_rate_below_one_percent(window: Any) -> None:
    """Error rate < 1%"""
    _criterion_holds(window, "error-rate")


def test_no_rls_leaks(window: Any) -> None:
    """No RLS data leaks"""
    _criterion_holds(window, "no-rls-leaks")


def test_vector_search_latency(window: Any) -> None:
    """Vector search latency < 100ms"""
    _criterion_holds(window, "vector-search-p95")


def test_storage_operations_succeeding(window: Any) -> None:
    """Storage operations succeeding"""
    _criterion_holds(window, "storage-operations")


def test_database_stable(window: Any) -> None:
    """Database stable"""
    _criterion_holds(window, "database-stable")


def test_memory_usage_not_growing(window: Any) -> None:
    """Memory usage growth"""
    _criterion_holds(window, "memory-slope")


def test_maintenance_mode_disabled(ctx: RunContext, request: pytest.FixtureRequest, needs: Any,
                                   announce_event: Any) -> None:
    """Maintenance mode disabled"""
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
