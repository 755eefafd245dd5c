"""Rollback: every runbook step in order, recorded, verified against the old database; a failure stops it."""

from __future__ import annotations

import httpx
import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.env_switch import switch_database_url
from pytest_cutover.actions.health import http_client
from pytest_cutover.actions.pg import ConnectionCount, table_counts
from pytest_cutover.actions.restart import Restarter
from pytest_cutover.actions.rollback import STEPS, failed_step, run_rollback

from .action_helpers import API_TOKEN, EmbeddedPg, FakeBackend

BROKEN_POOLER = "postgresql+asyncpg://app_user:Pooler-Pw-77@127.0.0.1:6543/target_db"


def _threads(backend: FakeBackend, org: str) -> httpx.Response:
    with http_client(backend.config()) as client:
        return client.get(f"https://127.0.0.1:{backend.port}/api/threads",
                          headers={"x-org-id": org, "Authorization": f"Bearer {API_TOKEN}"})


@pytest.mark.integration
def test_rollback_runs_every_step_in_order_and_the_old_system_serves(backend: FakeBackend,
                                                                      embedded_pg: EmbeddedPg) -> None:
    backend.env.update(DATABASE_URL=embedded_pg.url("old_app", "app_user", "postgresql+asyncpg"))
    backend.sections["source"]["database_url"] = embedded_pg.url("old_app")
    backend.sections["target"].update(database_url=embedded_pg.url("target_db"), app_database_url=BROKEN_POOLER)
    backend.write()
    original_env = backend.env_file.read_bytes()
    backend.start()
    assert _threads(backend, "org_0001").json()["count"] == 3

    # The switch happened and the app now points at a pooler that does not answer: serving is broken.
    ctx = backend.ctx()
    switch_database_url(ctx)
    Restarter(ctx).restart()
    assert _threads(backend, "org_0001").status_code == 500
    target_before = table_counts(embedded_pg.url("target_db"), ["threads"])

    steps = run_rollback(ctx)

    assert [s.step for s in steps] == list(STEPS) and failed_step(steps) is None, steps
    assert backend.env_file.read_bytes() == original_env
    assert backend.health() == "healthy"
    assert _threads(backend, "org_0001").json()["count"] == 3
    details = {s.step: s.detail for s in steps}
    assert "answers with 3 threads rows for org_0001" in details["verify-old-database"]
    assert "threads 5" in details["keep-target-data"] and "nothing dropped or truncated" in details["keep-target-data"]
    assert "3 of 3 requests served 3 threads, equal to the old database's 3" in details["verify-serving"]
    assert table_counts(embedded_pg.url("target_db"), ["threads"]) == target_before == {"threads": 5}

    records = ctx.ledger.records()
    assert [(r["step"], r["ok"]) for r in records if r["kind"] == "rollback"] == [(s, True) for s in STEPS]
    summary = [r for r in records if r["kind"] == "action" and r["action"] == "rollback"]
    assert len(summary) == 1 and summary[0]["ok"] is True and summary[0]["after"]["health"] == "healthy"
    assert "Pooler-Pw-77" not in ctx.ledger.path.read_text()


def test_a_failing_restore_step_stops_the_rollback_and_leaves_maintenance_on(backend: FakeBackend) -> None:
    backend.start()
    ctx = backend.ctx()  # no switch in this run: there is no env backup to restore from

    steps = run_rollback(ctx, counter=lambda: ConnectionCount(0, "none"))

    assert [(s.step, s.ok) for s in steps] == [("maintenance-on", True), ("restore-database-url", False)]
    failed = failed_step(steps)
    assert failed is not None and "no env backup at" in failed.detail
    assert failed.detail.endswith("rollback stopped here, maintenance left on")
    assert backend.health() == "maintenance"
    records = ctx.ledger.records()
    assert [(r["step"], r["ok"]) for r in records if r["kind"] == "rollback"] == [
        ("maintenance-on", True), ("restore-database-url", False)]
    (summary,) = [r for r in records if r["kind"] == "action" and r["action"] == "rollback"]
    assert summary["ok"] is False and summary["detail"].startswith("rollback failed at step 'restore-database-url'")


@pytest.mark.integration
def test_rollback_recovers_an_app_that_cannot_start_after_the_switch(backend: FakeBackend,
                                                                     embedded_pg: EmbeddedPg) -> None:
    """The app-fails-start case with the env maintenance method: the app is down, so maintenance is only set in
    the .env (no restart on the broken configuration) and takes effect at the rollback's own restart."""
    backend.env.update(DATABASE_URL=embedded_pg.url("old_app", "app_user", "postgresql+asyncpg"),
                       FAIL_START_IF_URL_CONTAINS=":6543/")
    backend.sections["source"]["database_url"] = embedded_pg.url("old_app")
    backend.sections["target"].update(database_url=embedded_pg.url("target_db"), app_database_url=BROKEN_POOLER)
    backend.sections["app"]["maintenance"] = "env"
    backend.sections["thresholds"]["health_timeout_s"] = 3.0
    backend.write()
    backend.start()
    ctx = backend.ctx()
    switch_database_url(ctx)
    with pytest.raises(ActionError) as info:
        Restarter(ctx).restart()
    assert info.value.step == "health" and backend.health() == "unreachable"

    steps = run_rollback(ctx)

    assert [s.step for s in steps] == list(STEPS) and failed_step(steps) is None, steps
    first = steps[0].detail
    assert "set MAINTENANCE_MODE=true" in first
    assert "takes effect at the restart step (the app now: unreachable" in first
    assert 'health: HTTP 503 {"status":"maintenance"}' in steps[2].detail, steps[2].detail
    assert "MAINTENANCE_MODE=false" in backend.env_file.read_text()
    assert backend.health() == "healthy" and _threads(backend, "org_0001").json()["count"] == 3


@pytest.mark.integration
def test_a_failed_serving_check_turns_maintenance_back_on(backend: FakeBackend, embedded_pg: EmbeddedPg) -> None:
    """verify-serving runs after maintenance-off: when it fails, users must be locked out again."""
    backend.env.update(DATABASE_URL=embedded_pg.url("old_app", "app_user", "postgresql+asyncpg"), THREADS_EXTRA="2")
    backend.sections["source"]["database_url"] = embedded_pg.url("old_app")
    backend.sections["target"].update(database_url=embedded_pg.url("target_db"), app_database_url=BROKEN_POOLER)
    backend.write()
    backend.start()
    ctx = backend.ctx()
    switch_database_url(ctx)

    steps = run_rollback(ctx, org="org_0001")

    failed = failed_step(steps)
    assert failed is not None and failed.step == "verify-serving" and [s.step for s in steps] == list(STEPS)
    assert "the app serves 5 threads for org_0001 (request 1 of 3) but the old database has 3" in failed.detail
    assert "maintenance turned back on; rollback stopped here, maintenance left on" in failed.detail
    assert backend.health() == "maintenance"
