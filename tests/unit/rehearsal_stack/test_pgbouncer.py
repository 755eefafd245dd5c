"""PgBouncer as the rehearsal's 6543/5432 poolers: pooling semantics and TLS, measured for real."""

from __future__ import annotations

import asyncio
import ssl

import asyncpg
import pytest

from pytest_cutover.rehearsal.pgbouncer import PgBouncer, client_ssl_context
from pytest_cutover.util import certs

pytestmark = [pytest.mark.integration]

SETTING = "app.current_org_id"


async def _connect(pooler: PgBouncer, ca, user: str = "app_user") -> asyncpg.Connection:  # type: ignore[no-untyped-def]
    return await asyncpg.connect(pooler.dsn(user).get(), ssl=client_ssl_context(ca.cert_path),
                                 statement_cache_size=0, timeout=10)


async def _read_setting(conn: asyncpg.Connection) -> str | None:
    async with conn.transaction():
        return await conn.fetchval("SELECT nullif(current_setting($1, true), '')", SETTING)


def test_transaction_pooler_leaks_session_set_to_another_client(poolers) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[str | None, str | None]:
        a = await _connect(poolers.transaction, poolers.ca)
        b = await _connect(poolers.transaction, poolers.ca)
        try:
            await a.execute("SET app.current_org_id = 'org_0001'")  # session-level: stays on the server connection
            leaked = await _read_setting(b)
            await a.execute("RESET app.current_org_id")
            after_reset = await _read_setting(b)
            return leaked, after_reset
        finally:
            await a.close()
            await b.close()

    leaked, after_reset = asyncio.run(scenario())
    assert leaked == "org_0001", "client B did not see client A's session SET through the transaction pooler"
    assert after_reset is None


@pytest.mark.parametrize("statement", [
    "SET LOCAL app.current_org_id = 'org_0002'",
    "SELECT set_config('app.current_org_id', 'org_0002', true)",
])
def test_transaction_pooler_does_not_leak_transaction_local_settings(poolers, statement: str) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[str | None, str | None]:
        a = await _connect(poolers.transaction, poolers.ca)
        b = await _connect(poolers.transaction, poolers.ca)
        try:
            async with a.transaction():
                await a.execute(statement)
                inside = await a.fetchval("SELECT nullif(current_setting($1, true), '')", SETTING)
            return inside, await _read_setting(b)
        finally:
            await a.close()
            await b.close()

    inside, seen_by_b = asyncio.run(scenario())
    assert inside == "org_0002"
    assert seen_by_b is None


def test_session_pooler_keeps_session_set_for_its_own_client_only(poolers) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[str | None, str | None]:
        a = await _connect(poolers.session, poolers.ca)
        b = await _connect(poolers.session, poolers.ca)
        try:
            await a.execute("SET app.current_org_id = 'org_0003'")
            return await _read_setting(a), await _read_setting(b)
        finally:
            await a.close()
            await b.close()

    own, other = asyncio.run(scenario())
    assert own == "org_0003"
    assert other is None


def test_tls_handshake_verifies_against_the_ca_and_reads_expiry(poolers) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[str, bytes]:
        conn = await _connect(poolers.transaction, poolers.ca)
        try:
            sslobj = conn._transport.get_extra_info("ssl_object")  # asyncpg keeps the TLS transport here
            return sslobj.version(), sslobj.getpeercert(True)
        finally:
            await conn.close()

    version, der = asyncio.run(scenario())
    assert version in ("TLSv1.2", "TLSv1.3")
    not_after = certs.cert_not_after(der)
    assert abs((not_after - poolers.cert.not_after).total_seconds()) < 1
    assert 29 < certs.days_left(not_after) <= 30


def test_pooler_refuses_plaintext_and_untrusted_tls(poolers) -> None:  # type: ignore[no-untyped-def]
    async def plaintext() -> None:
        await asyncpg.connect(poolers.transaction.dsn("app_user").get(), ssl=False, timeout=10)

    async def untrusted() -> None:
        await asyncpg.connect(poolers.transaction.dsn("app_user").get(), ssl=ssl.create_default_context(), timeout=10)

    with pytest.raises(asyncpg.PostgresError, match="SSL required"):
        asyncio.run(plaintext())
    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(untrusted())


def test_wrong_password_is_refused(poolers) -> None:  # type: ignore[no-untyped-def]
    port = poolers.transaction.port

    async def wrong() -> None:
        await asyncpg.connect(host="127.0.0.1", port=port, user="app_user", password="not-the-password",
                              database="postgres", ssl=client_ssl_context(poolers.ca.cert_path), timeout=10)

    # PgBouncer 1.18 answers a bad SCRAM proof with a protocol error, not 28P01 like PostgreSQL.
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.ProtocolViolationError), match=r"(?i)authentication"):
        asyncio.run(wrong())


def test_transaction_pooler_runs_as_unprivileged_user(poolers) -> None:  # type: ignore[no-untyped-def]
    import os

    import psutil

    proc = psutil.Process(poolers.transaction.process.pid)
    if os.geteuid() == 0:
        assert proc.username() != "root"
    assert proc.is_running()


def test_stats_user_reads_the_console_over_tls(bare_postgres, rehearsal_ca, scratch, system_psql) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from pytest_cutover.rehearsal import tls as tls_mod

    cert = tls_mod.issue_server_cert(rehearsal_ca, scratch / "tls", name="pooler")
    pooler = PgBouncer("stats", workdir=scratch / "pb", socket_dir=bare_postgres.socket_dir,
                       pg_port=bare_postgres.port, users={"app_user": "pw-app-1234"}, certfile=cert.cert_path,
                       keyfile=cert.key_path, ca_file=rehearsal_ca.cert_path, pool_mode="transaction",
                       stats_users={"pgbouncer_stats": "pw-stats-5678"})
    try:
        pooler.start()
        console = pooler.admin_dsn("pgbouncer_stats").get()
        done = subprocess.run([system_psql, "-X", "-A", "-t", "-F", "|", "-d", console, "-c", "SHOW CONFIG"],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        settings = dict(line.split("|")[:2] for line in done.stdout.splitlines() if "|" in line)
        assert settings["pool_mode"] == "transaction"
        assert settings["client_tls_sslmode"] == "require"
    finally:
        pooler.stop()
