"""STEP 3 and STEP 4: switch DATABASE_URL to the transaction pooler, restart the backend.

The fixture edits only the ``DATABASE_URL`` line of the app's ``.env`` (atomically, with a backup of the
previous value for rollback), stops the app, waits for its connections to drain, starts it and waits
until ``/health`` answers healthy.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig
from pytest_cutover.context import RunContext

pytestmark = pytest.mark.switch


@pytest.fixture(scope="module")
def switched(ctx: RunContext, needs: Any, announce_event: Any) -> Any:
    """``DATABASE_URL`` in the app's ``.env`` now points at ``target.app_database_url``."""
    needs("app.env_file", "target.app_database_url")
    from pytest_cutover.actions.env_switch import switch_database_url

    result = switch_database_url(ctx)
    announce_event("switched", detail=result.detail)
    return result


@pytest.fixture(scope="module")
def restarted(ctx: RunContext, switched: Any, needs: Any, announce_event: Any) -> Any:
    """Stop, drain, start, healthy: the app now runs on the new database."""
    needs("app.health_url")
    from pytest_cutover.actions.health import HEALTHY
    from pytest_cutover.actions.maintenance import restart_app

    # The new instance must be on the target: an .env edit the app ignores (its process environment wins)
    # would otherwise pass every check here and only show as wrong data later.
    result = restart_app(ctx, expect=HEALTHY, expect_database="target")
    announce_event("restarted", detail=result.detail)
    return result


@pytest.mark.runbook("Update Environment Variables: DATABASE_URL=postgresql+asyncpg://...:6543/postgres")
def test_update_environment_variables(switched: Any) -> None:
    assert switched.ok, switched.detail


@pytest.mark.runbook("Use port **6543** (transaction pooler), NOT 5432 (session pooler)")
def test_new_connection_string_points_at_the_transaction_pooler(ctx: RunContext, cutover_config: CutoverConfig,
                                                                 switched: Any) -> None:
    from pytest_cutover.actions.env_switch import check_transaction_pooler, current_database_url

    url = current_database_url(ctx)
    assert url is not None, "the app's .env has no DATABASE_URL line after the switch"
    check_transaction_pooler(url, cutover_config)


@pytest.mark.runbook("Verify New Connection String: SELECT COUNT(*) as table_count FROM information_schema.tables")
def test_verify_new_connection_string(sql: Any, switched: Any) -> None:
    (row,) = sql("target.app_database_url",
                 "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public'")
    assert row["n"] > 0, "the transaction pooler answers but the public schema has no tables visible to the app role"


@pytest.mark.runbook('Restart Backend Services: Check service is running - Should return: {"status": "healthy"}')
def test_services_restarted(restarted: Any, record_figure: Any) -> None:
    record_figure("restart_s", restarted.duration_s)
    assert restarted.ok, restarted.detail
