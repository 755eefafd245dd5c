"""EmbeddedStack: starts and stops cleanly (no leftover process, ports free), writes a loadable config,
and the RLS faults it plants really open cross-tenant reads through the transaction pooler."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import time
import tomllib
from pathlib import Path

import asyncpg
import psutil
import pytest

from pytest_cutover.config import load_config
from pytest_cutover.redact import registered_secrets
from pytest_cutover.rehearsal.pgbouncer import client_ssl_context
from pytest_cutover.rehearsal.procs import port_is_free
from pytest_cutover.rehearsal.seed import SeedSize
from pytest_cutover.rehearsal.stack import EmbeddedStack, read_env_file, services_available

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Enough rows for two tenants, small enough that a start takes a few seconds.
TINY = SeedSize(orgs=2, users_per_org=2, threads_per_user=2, messages_per_thread=2, fragments_per_org=30,
                attachments_per_org=2, attachment_bytes=2048, max_blob_bytes=16 * 1024, topics_per_org=2,
                subtopics_per_topic=2)
SERVICES_MISSING = services_available()


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def test_stack_starts_and_stops_cleanly_three_times(scratch: Path) -> None:
    """Three full cycles; after each: no child process, no recorded pid alive, every port free."""
    with_services = SERVICES_MISSING is None
    startups = []
    # Other fixtures of this package (the bare server, its poolers) may run: only new children count.
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    for cycle in range(3):
        stack = EmbeddedStack(scratch / f"stack{cycle}", size=TINY, services=with_services)
        started = time.monotonic()
        with stack:
            startups.append(time.monotonic() - started)
            pids = stack.pids()
            ports = stack.ports
            expected = {"postgres", "pgbouncer-transaction", "pgbouncer-session", "pgbouncer-old"}
            if with_services:
                expected |= {"storage", "app"}
            assert expected <= set(pids), pids
            assert all(psutil.pid_exists(pid) for pid in pids.values())
            assert not any(port_is_free(port) for port in ports), "a part is not listening on its port"
        assert [p for p in psutil.Process().children(recursive=True) if p.pid not in before] == []
        assert not [pid for pid in pids.values() if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        assert all(port_is_free(port) for port in ports)
        assert not (scratch / f"stack{cycle}").exists(), "keep=False must remove the stack folder"
    print(f"\nstack start-up seconds (tiny seed, services={with_services}): "
          + ", ".join(f"{s:.2f}" for s in startups))
    if not with_services:
        pytest.skip(f"database/pooler part passed 3 cycles; app and storage not exercised: {SERVICES_MISSING}")


def test_failed_start_stops_what_was_started_and_names_the_part(scratch: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pytest_cutover.rehearsal import pgbouncer
    from pytest_cutover.rehearsal.errors import RehearsalError

    monkeypatch.setenv("PGBOUNCER_BIN", "/bin/false")
    monkeypatch.setattr(pgbouncer, "PGBOUNCER_BIN", "/bin/false")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    stack = EmbeddedStack(scratch / "broken", size=TINY, services=False)
    with pytest.raises(RehearsalError, match=r"pgbouncer transaction \(transaction, port \d+\) exited with code 1"):
        stack.start()
    assert [p for p in psutil.Process().children(recursive=True) if p.pid not in before] == []
    assert not (scratch / "broken").exists()


def test_unknown_fault_fails_before_anything_starts(tmp_path: Path) -> None:
    from pytest_cutover.rehearsal.errors import RehearsalError

    with pytest.raises(RehearsalError, match=r"unknown fault 'rls-off'.*known faults: rls-disabled"):
        EmbeddedStack(tmp_path / "x", faults=["rls-off"])
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------- one shared stack
@pytest.fixture
def stack(shared_stack: EmbeddedStack) -> EmbeddedStack:
    return shared_stack


def test_config_loads_with_the_stack_env_and_keeps_secrets_out(stack: EmbeddedStack, tmp_path: Path) -> None:
    text = stack.config_path.read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    assert raw["target"]["app_database_url"] == "${SUPABASE_POOLER_URL}"
    assert raw["source"]["database_url"] == "${OLD_DATABASE_URL}"
    for secret in registered_secrets():
        assert secret not in text
    assert stat.S_IMODE(stack.stack_env_path.stat().st_mode) == 0o600
    cfg = load_config(stack.config_path, env=read_env_file(stack.stack_env_path))
    assert cfg.target.app_database_url.get().startswith("postgresql+asyncpg://app_user:")
    assert cfg.target.database_url.get().startswith("postgresql://postgres:")
    assert cfg.target.ca_file == stack.urls.ca_file
    assert Path(cfg.backup.path).stat().st_size > 0
    out = stack.write_stack_env(tmp_path / "reports" / "run" / "stack.env")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    served = read_env_file(out)
    assert {"API_URL", "DATABASE_URL", "POOLER_URL", "SESSION_POOLER_URL", "OLD_DATABASE_URL", "ADMIN_TOKEN",
            "TEST_TOKEN", "CA_FILE"} <= set(served)
    # the config and stack.env are a usable pair: every ${VAR} of cutover.toml is in it
    assert load_config(stack.config_path, env=served).target.app_database_url.get() == \
        cfg.target.app_database_url.get()


def test_psql_reaches_the_transaction_pooler_with_the_stack_env(stack: EmbeddedStack, tmp_path: Path,
                                                                system_psql: str) -> None:
    env = read_env_file(stack.write_stack_env(tmp_path / "stack.env"))
    done = subprocess.run([system_psql, env["POOLER_URL"], "-Atc", "select current_user"], capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "app_user"


async def _cross_tenant_rows(dsn: str, ca_file: str) -> tuple[int, int]:
    """(own-org rows, other-org rows) of ``threads`` with the app's own tenant mechanism, through the pooler."""
    conn = await asyncpg.connect(dsn, ssl=client_ssl_context(ca_file), statement_cache_size=0, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('app.current_org_id', $1, true)", "org_0001")
            own = await conn.fetchval("select count(*) from threads where org_id = 'org_0001'")
            other = await conn.fetchval("select count(*) from threads where org_id <> 'org_0001'")
        return int(own), int(other)
    finally:
        await conn.close()


def _configured_app_url(stack: EmbeddedStack) -> str:
    cfg = load_config(stack.config_path, env=read_env_file(stack.stack_env_path))
    return _asyncpg_dsn(cfg.target.app_database_url.get())


_UNDO = {
    "rls-disabled": "alter table public.threads enable row level security;",
    # Back to the owner of every other table; the ownership change folded app_user's grants into ownership.
    "rls-not-forced": "alter table public.threads owner to postgres;"
                      " alter table public.threads force row level security;"
                      " grant select, insert, update, delete on public.threads to app_user;",
    "policy-using-true": "drop policy threads_read_all on public.threads;",
}


def test_cross_tenant_read_through_transaction_pooler_is_denied_on_the_clean_stack(stack: EmbeddedStack) -> None:
    own, other = asyncio.run(_cross_tenant_rows(_configured_app_url(stack), stack.urls.ca_file))
    assert own > 0, "the control failed: the app role sees none of its own org's threads"
    assert other == 0


@pytest.mark.parametrize("fault", ["rls-disabled", "rls-not-forced", "policy-using-true", "app-role-bypassrls"])
def test_each_rls_fault_opens_cross_tenant_reads(stack: EmbeddedStack, fault: str) -> None:
    evidence = stack.plant(fault)
    try:
        url = _configured_app_url(stack)
        assert ":6543" not in url  # the rehearsal's transaction pooler is on a free port
        assert url == _asyncpg_dsn(stack.app_database_url().get())
        own, other = asyncio.run(_cross_tenant_rows(url, stack.urls.ca_file))
        assert own > 0
        assert other > 0, f"{fault} planted ({evidence}) but other orgs' threads are still hidden"
    finally:
        if fault == "app-role-bypassrls":
            stack.set_app_database(user="app_user")
        else:
            stack.target_sql(_UNDO[fault])
        stack.planted.pop(fault, None)
    own, other = asyncio.run(_cross_tenant_rows(_configured_app_url(stack), stack.urls.ca_file))
    assert (own > 0, other) == (True, 0), "undoing the fault did not restore isolation"


def test_app_role_fault_logs_in_as_postgres_through_the_pooler(stack: EmbeddedStack) -> None:
    stack.plant("app-role-bypassrls")
    try:
        async def who() -> tuple[str, bool]:
            conn = await asyncpg.connect(_configured_app_url(stack), ssl=client_ssl_context(stack.urls.ca_file),
                                         statement_cache_size=0, timeout=10)
            try:
                row = await conn.fetchrow("select current_user as u, rolbypassrls as b from pg_roles "
                                          "where rolname = current_user")
                return row["u"], row["b"]
            finally:
                await conn.close()

        assert asyncio.run(who()) == ("postgres", True)
    finally:
        stack.set_app_database(user="app_user")
        stack.planted.pop("app-role-bypassrls", None)


@pytest.mark.skipif(SERVICES_MISSING is not None, reason=f"app and storage not available: {SERVICES_MISSING}")
def test_app_answers_and_restart_command_replaces_the_process(stack: EmbeddedStack) -> None:
    import ssl

    import httpx

    ctx = ssl.create_default_context(cafile=stack.urls.ca_file)
    assert httpx.get(stack.urls.api_url + "/health", verify=ctx, timeout=10).status_code == 200
    before = stack.pids()["app"]
    cfg = tomllib.loads(stack.config_path.read_text(encoding="utf-8"))
    done = subprocess.run(cfg["app"]["restart_command"], shell=True, capture_output=True, text=True, timeout=120,
                          check=False, env={**os.environ})
    assert done.returncode == 0, done.stderr
    after = stack.pids()["app"]
    assert after != before
    assert not psutil.pid_exists(before) or psutil.Process(before).status() == psutil.STATUS_ZOMBIE
    assert httpx.get(stack.urls.api_url + "/health", verify=ctx, timeout=10).status_code == 200
