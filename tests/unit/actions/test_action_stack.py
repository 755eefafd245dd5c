"""The actions against the real embedded rehearsal stack: TLS app, PgBouncer poolers, PostgreSQL 18.

Slow (a stack of its own, ~10 s to build) and destructive (it switches and rolls back the app).
"""

from __future__ import annotations

import httpx
import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.env_switch import switch_database_url
from pytest_cutover.actions.health import http_client
from pytest_cutover.actions.maintenance import Maintenance, restarter
from pytest_cutover.actions.pg import table_counts, tenant_count
from pytest_cutover.actions.rollback import STEPS, failed_step, run_rollback
from pytest_cutover.config import load_config
from pytest_cutover.context import RunContext


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.destructive
def test_switch_then_rollback_on_the_embedded_stack(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pytest_cutover.rehearsal.stack import EmbeddedStack, services_available

    missing = services_available()
    if missing:
        pytest.skip(missing)
    with EmbeddedStack(None, size="small") as stack:
        def ctx() -> RunContext:
            config = load_config(stack.config_path, env=stack.environ())
            return RunContext(run="stack-actions", reports_dir=tmp_path / "reports", config=config,
                              suite_dir=tmp_path, git_rev="test")

        cfg = ctx().config
        assert cfg is not None and stack.env_file is not None
        original_env = stack.env_file.read_bytes()
        target_before = table_counts(cfg.target.database_url, cfg.schema_.parity_tables)
        old_count = tenant_count(cfg.source.database_url, "threads", "org_id", "org_0001")

        def threads() -> httpx.Response:
            with http_client(cfg) as client:
                return client.get(f"{cfg.app.api_base}/api/threads", headers={
                    "x-org-id": "org_0001", "Authorization": f"Bearer {cfg.app.test_token.get()}"})

        # the session-pooler-url fault: the configured app URL is the session pooler, and the switch refuses it
        stack.set_app_database(pooler="session")
        with pytest.raises(ActionError, match=r"it is target\.session_pooler_url"):
            switch_database_url(ctx())
        assert stack.env_file.read_bytes() == original_env
        stack.set_app_database(pooler="transaction")

        Maintenance(ctx()).enable()
        switch_database_url(ctx())
        restarted = restarter(ctx()).restart(expect="up", expect_database="target")
        assert restarted.after["health"] == "maintenance", restarted.detail  # the restart kept maintenance on
        assert restarted.after["database"] != "source", restarted.detail
        Maintenance(ctx()).disable()
        assert threads().json()["count"] == old_count  # served through the transaction pooler now

        steps = run_rollback(ctx(), org="org_0001")

        assert failed_step(steps) is None, steps
        assert [s.step for s in steps] == list(STEPS)
        assert "the app has used source since the start" in steps[2].detail, steps[2].detail
        assert stack.env_file.read_bytes() == original_env
        assert threads().json()["count"] == old_count
        assert table_counts(cfg.target.database_url, cfg.schema_.parity_tables) == target_before
        ledger = ctx().ledger.path.read_text()
        for secret in stack.environ().values():
            from urllib.parse import urlsplit

            password = urlsplit(secret).password if "://" in secret else secret
            assert not password or password not in ledger
