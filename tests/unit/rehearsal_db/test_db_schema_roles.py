"""Both databases exist with the contract tables; the target's roles are Supabase's (postgres: no superuser)."""

from __future__ import annotations

import asyncpg
import pytest

from pytest_cutover.rehearsal.postgres import LOGIN_ROLES, OLD_DATABASE, TENANT_TABLES

pytestmark = pytest.mark.integration

CONTRACT_COLUMNS = {
    "orgs": {"id", "name", "created_at"},
    "users": {"id", "org_id", "email"},
    "threads": {"id", "org_id", "user_id", "title", "created_at"},
    "messages": {"id", "org_id", "thread_id", "user_id", "role", "content", "created_at"},
    "memory_fragments": {"id", "org_id", "user_id", "thread_id", "tier", "content", "vector_id", "created_at"},
    "attachments": {"id", "org_id", "thread_id", "user_id", "filename", "content_type", "size_bytes", "sha256",
                    "file_data", "storage_path", "storage_bucket", "created_at"},
}

COLUMNS_SQL = """
select table_name, column_name, udt_name from information_schema.columns
where table_schema = 'public' order by table_name, ordinal_position
"""


def _columns(rows: list[asyncpg.Record]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        out.setdefault(r["table_name"], {})[r["column_name"]] = r["udt_name"]
    return out


def test_old_and_target_have_the_contract_tables_and_differ_only_by_embedding(seeded) -> None:
    async def main() -> tuple[dict, dict, str]:
        old = await seeded.connect("old_app", OLD_DATABASE)
        target = await seeded.connect("postgres")
        try:
            typmod = await target.fetchval(
                "select format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = 'public.memory_fragments'::regclass and attname = 'embedding'")
            return _columns(await old.fetch(COLUMNS_SQL)), _columns(await target.fetch(COLUMNS_SQL)), typmod
        finally:
            await old.close()
            await target.close()

    old, target, embedding_type = seeded.run(main())
    assert {t: set(cols) for t, cols in old.items()} == CONTRACT_COLUMNS
    expected_target = {t: set(c) | ({"embedding"} if t == "memory_fragments" else set())
                       for t, c in CONTRACT_COLUMNS.items()}
    assert {t: set(cols) for t, cols in target.items()} == expected_target
    assert embedding_type == "vector(1536)"
    for table in CONTRACT_COLUMNS:
        for column, udt in old[table].items():
            assert target[table][column] == udt, f"{table}.{column} differs between old and target"


def test_cluster_roles_are_supabase_like(seeded) -> None:
    rows = seeded.run(_roles(seeded))
    roles = {r["rolname"]: r for r in rows}
    assert roles["supabase_admin"]["rolsuper"] is True
    postgres = roles["postgres"]
    assert (postgres["rolsuper"], postgres["rolbypassrls"], postgres["rolcanlogin"]) == (False, True, True)
    app = roles["app_user"]
    assert (app["rolsuper"], app["rolbypassrls"], app["rolcanlogin"]) == (False, False, True)
    assert roles["service_role"]["rolbypassrls"] is True and roles["service_role"]["rolcanlogin"] is False
    for name in ("anon", "authenticated"):
        assert roles[name]["rolcanlogin"] is False and roles[name]["rolbypassrls"] is False
    authenticator = roles["authenticator"]
    assert authenticator["rolcanlogin"] is True and authenticator["rolinherit"] is False
    assert set(authenticator["member_of"]) >= {"anon", "authenticated", "service_role"}
    for role in LOGIN_ROLES:
        assert roles[role]["rolcanlogin"] is True
        assert roles[role]["has_scram"] is True, f"{role} has no scram-sha-256 verifier"


async def _roles(seeded) -> list[asyncpg.Record]:
    conn = await seeded.connect("supabase_admin")
    try:
        return await conn.fetch(
            "select r.rolname, r.rolsuper, r.rolbypassrls, r.rolcanlogin, r.rolinherit,"
            " coalesce(a.rolpassword like 'SCRAM-SHA-256$%', false) as has_scram,"
            " array(select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            "       where m.member = r.oid) as member_of"
            " from pg_roles r join pg_authid a on a.oid = r.oid where r.rolname !~ '^pg_'")
    finally:
        await conn.close()


def test_postgres_owns_the_target_tables_and_app_user_owns_nothing(seeded) -> None:
    async def main() -> dict[str, str]:
        conn = await seeded.connect("supabase_admin")
        try:
            rows = await conn.fetch("select tablename, tableowner from pg_tables where schemaname = 'public'")
            return {r["tablename"]: r["tableowner"] for r in rows}
        finally:
            await conn.close()

    owners = seeded.run(main())
    assert owners == dict.fromkeys(TENANT_TABLES, "postgres")


def test_passwords_are_checked_over_tcp_and_dsns_are_redacted(seeded) -> None:
    pg = seeded.pg
    password = pg.password("app_user").get()
    assert password not in str(pg.app_role_dsn) and password not in repr(pg.app_role_dsn)

    async def wrong_password() -> None:
        await asyncpg.connect(pg.dsn("app_user", password="not-the-password").get(), timeout=10)

    with pytest.raises(asyncpg.InvalidPasswordError):
        seeded.run(wrong_password())

    async def over_socket() -> str:
        conn = await asyncpg.connect(pg.dsn("app_user", via="socket").get(), timeout=10)
        try:
            return await conn.fetchval("select current_user")
        finally:
            await conn.close()

    assert seeded.run(over_socket()) == "app_user"
    assert pg.scram_secret("app_user").startswith("SCRAM-SHA-256$4096:")
