"""Row-level security in depth, through the transaction pooler, after the switch.

Every probe runs as the app role through ``target.app_database_url`` with the app's own mechanism
(``set_config(<org setting>, A, true)`` in a transaction) and has a negative control: the same probe as
a BYPASSRLS role (``target.database_url``) must SEE org B's rows, so no test passes vacuously.  Write
probes run in transactions that are rolled back.  A leak also records the runbook's rollback trigger
"RLS data leakage detected" in the run ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.checks import CheckResult
from pytest_cutover.config import CutoverConfig

pytestmark = pytest.mark.rls


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tenant tables come from the config (sorted): the same collection on every xdist worker."""
    if "tenant_table" in metafunc.fixturenames:
        from pytest_cutover.checks.rls_audit import configured_tables
        from pytest_cutover.session_keys import get_session

        try:
            config = get_session(metafunc.config).cutover_config
        except (KeyError, AttributeError):
            config = None
        metafunc.parametrize("tenant_table", configured_tables(config))


@pytest.fixture
def verify(request: pytest.FixtureRequest, cutover_context: Any, record_figure: Callable[[str, Any], None]
           ) -> Callable[[CheckResult, str], None]:
    """``verify(check, prefix)``: record figures; on a leak, record the rollback trigger; fail with the problems.

    The trigger is appended from whichever process ran the test (also an xdist worker): the ledger's append
    is flock-serialised, and a leak must turn the run into ROLLBACK even when the stage ran in parallel.
    """

    def check_it(check: CheckResult, prefix: str) -> None:
        for name, value in check.figures.items():
            record_figure(f"{prefix}{name}", value)
        leaks = [p for p in check.problems if "LEAK" in p]
        if leaks:
            from pytest_cutover.monitor.records import record_trigger
            from pytest_cutover.monitor.triggers import RLS_LEAK, Trigger

            record_trigger(cutover_context.ledger, Trigger(RLS_LEAK, True, "; ".join(leaks)), stage="rls",
                           stamp=cutover_context.stamp(), test=request.node.nodeid)
        ok, message = check.ok, check.message
        assert ok, message

    return check_it


def _probe(cutover_config: CutoverConfig, needs: Any, table: str, probe: str) -> CheckResult:
    from pytest_cutover.checks import isolation
    from pytest_cutover.checks.rls_audit import qualify

    needs("target.app_database_url", "target.database_url")
    try:
        return isolation.probe_table(cutover_config, qualify(table), probe)
    except isolation.IsolationError as exc:
        if "has no tenant column" in exc.message:
            pytest.skip(f"{table} is not a tenant table: {exc.message}")
        if "has no rows" in exc.message:
            pytest.skip(f"nothing to probe: {exc.message}")
        raise


@pytest.mark.runbook("No RLS data leaks")
def test_cross_tenant_read_denied(cutover_config: CutoverConfig, needs: Any, tenant_table: str,
                                  verify: Any) -> None:
    """With org A's context the app role reads none of org B's rows (and nothing outside A); the BYPASSRLS
    control reads them.
    """
    verify(_probe(cutover_config, needs, tenant_table, "read"), f"rls.{tenant_table}.read.")


@pytest.mark.runbook("No RLS data leaks")
def test_cross_tenant_insert_denied(cutover_config: CutoverConfig, needs: Any, tenant_table: str,
                                    verify: Any) -> None:
    """Inserting a copy of one of org B's rows with org A's context is refused with SQLSTATE 42501 by a
    row-level security policy; with B's own context (and as the BYPASSRLS control) it is not refused by RLS.
    """
    verify(_probe(cutover_config, needs, tenant_table, "insert"), f"rls.{tenant_table}.insert.")


@pytest.mark.runbook("No RLS data leaks")
def test_cross_tenant_update_denied(cutover_config: CutoverConfig, needs: Any, tenant_table: str,
                                    verify: Any) -> None:
    """An UPDATE aimed at org B's rows affects 0 rows with org A's context (the control's affects them), org
    B's rows are unchanged afterwards (checksum), and A cannot move its own row into B.
    """
    verify(_probe(cutover_config, needs, tenant_table, "update"), f"rls.{tenant_table}.update.")


@pytest.mark.runbook("No RLS data leaks")
def test_cross_tenant_delete_denied(cutover_config: CutoverConfig, needs: Any, tenant_table: str,
                                    verify: Any) -> None:
    """A DELETE aimed at org B's rows affects 0 rows with org A's context (the control's reaches them) and
    org B's rows are unchanged afterwards.
    """
    verify(_probe(cutover_config, needs, tenant_table, "delete"), f"rls.{tenant_table}.delete.")


@pytest.mark.runbook("No RLS data leaks")
def test_missing_context_sees_nothing(cutover_config: CutoverConfig, needs: Any, tenant_table: str,
                                      verify: Any) -> None:
    """A transaction that never sets the tenant sees no rows at all (not every row); the control sees them."""
    verify(_probe(cutover_config, needs, tenant_table, "no-context"), f"rls.{tenant_table}.no_context.")


@pytest.mark.runbook("No RLS data leaks")
def test_private_fragments_invisible_to_other_users(cutover_config: CutoverConfig, needs: Any,
                                                    verify: Any) -> None:
    """Inside one org, another user's private-tier fragments are invisible; their owner (through the app
    role) and the BYPASSRLS control see them.
    """
    from pytest_cutover.checks import isolation

    needs("target.app_database_url", "target.database_url", "schema.tier_column")
    verify(isolation.check_private_tier(cutover_config), "rls.private_tier.")


@pytest.mark.runbook("RLS data leakage detected")
def test_session_set_leakage_detected(cutover_config: CutoverConfig, needs: Any, verify: Any) -> None:
    """Through the transaction pooler no pooled backend carries a tenant left by an earlier client, and the
    app's ``set_config(..., true)`` never reaches the next transaction on the same backend; the control
    shows that a session-level SET does travel across clients there, so the probe can see a leak.
    """
    from pytest_cutover.checks import isolation

    needs("target.app_database_url")
    verify(isolation.check_session_leakage(cutover_config), "rls.session.")


@pytest.mark.runbook("No RLS data leaks")
def test_storage_objects_isolated_by_org(cutover_config: CutoverConfig, needs: Any, verify: Any) -> None:
    """With org A's user JWT, org B's objects in ``target.bucket`` can be neither listed nor downloaded; B's
    own JWT and the service key (the controls) can.
    """
    from pytest_cutover.checks import isolation

    needs("target.storage_url", "target.storage_key", "target.jwt_secret", "target.database_url")
    verify(isolation.check_storage_isolation(cutover_config), "rls.storage.")


@pytest.mark.runbook("No RLS data leaks")
def test_exposed_surface_reads_no_other_tenant(cutover_config: CutoverConfig, needs: Any,
                                               verify: Any) -> None:
    """Every relation holding tenant rows that the app role, ``anon`` or ``authenticated`` can SELECT (views
    included, checks/surface.py) is read as that role with org A's context or JWT claims: none of org B's
    rows, and no tenant row at all for ``anon``; the BYPASSRLS control sees them.  Every function they may
    EXECUTE outside the managed schemas is called the same way, in a rolled-back transaction, with org B's key
    in its tenant-key arguments: no row of org B, no tenant row for ``anon``, no result that depends on org B's
    data; the functions it cannot call without input are listed with the reason.
    """
    from pytest_cutover.checks import surface

    needs("target.app_database_url", "target.database_url")
    verify(surface.probe_surface(cutover_config), "rls.surface.")
