"""RLS on the target: enabled + forced, one policy per command, tenant and private tier enforced for app_user."""

from __future__ import annotations

import asyncpg
import pytest

from pytest_cutover.rehearsal.postgres import TENANT_TABLES

pytestmark = pytest.mark.integration

ORG = "org_0001"
OTHER_ORG = "org_0002"


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {t: int(await conn.fetchval(f"select count(*) from {t}")) for t in TENANT_TABLES}


async def _counts_as(seeded, user: str, org: str | None, app_user_id: str | None = None) -> dict[str, int]:
    conn = await seeded.connect(user)
    try:
        async with conn.transaction():
            if org is not None:
                await conn.execute("select set_config('app.current_org_id', $1, true)", org)
            if app_user_id is not None:
                await conn.execute("select set_config('app.current_user_id', $1, true)", app_user_id)
            return await _counts(conn)
    finally:
        await conn.close()


def test_rls_is_enabled_and_forced_with_a_policy_per_command(seeded) -> None:
    async def main() -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
        conn = await seeded.connect("supabase_admin")
        try:
            flags = await conn.fetch(
                "select relname, relrowsecurity, relforcerowsecurity from pg_class "
                "where relnamespace = 'public'::regnamespace and relkind = 'r'")
            policies = await conn.fetch("select tablename, cmd from pg_policies where schemaname = 'public'")
            return flags, policies
        finally:
            await conn.close()

    flags, policies = seeded.run(main())
    assert {r["relname"]: (r["relrowsecurity"], r["relforcerowsecurity"]) for r in flags} == dict.fromkeys(
        TENANT_TABLES, (True, True))
    for table in TENANT_TABLES:
        cmds = sorted(r["cmd"] for r in policies if r["tablename"] == table)
        assert cmds == ["DELETE", "INSERT", "SELECT", "UPDATE"], table


def test_app_user_sees_nothing_without_a_tenant_context(seeded) -> None:
    assert seeded.run(_counts_as(seeded, "app_user", None)) == dict.fromkeys(TENANT_TABLES, 0)


def test_app_user_sees_exactly_its_org_and_the_context_ends_with_the_transaction(seeded) -> None:
    user = "user_0001_01"
    expected = {t: len(seeded.org_rows(t, ORG)) for t in TENANT_TABLES}
    fragments = seeded.org_rows("memory_fragments", ORG)
    expected["memory_fragments"] = sum(1 for f in fragments if f[4] == "shared" or f[2] == user)
    assert expected["users"] > 0 and expected["memory_fragments"] > 0

    async def main() -> tuple[dict[str, int], set[str], dict[str, int]]:
        conn = await seeded.connect("app_user")
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true)", ORG)
                await conn.execute("select set_config('app.current_user_id', $1, true)", user)
                inside = await _counts(conn)
                orgs_seen = {r[0] for t in TENANT_TABLES if t != "orgs"
                             for r in await conn.fetch(f"select distinct org_id from {t}")}
            after = await _counts(conn)  # same connection, after COMMIT: SET LOCAL semantics
            return inside, orgs_seen, after
        finally:
            await conn.close()

    inside, orgs_seen, after = seeded.run(main())
    assert inside == expected
    assert orgs_seen == {ORG}
    assert after == dict.fromkeys(TENANT_TABLES, 0)


def test_app_user_cannot_insert_or_touch_another_orgs_rows(seeded) -> None:
    other_thread = seeded.org_rows("threads", OTHER_ORG)[0]

    async def insert_foreign() -> None:
        conn = await seeded.connect("app_user")
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true)", ORG)
                await conn.execute(
                    "insert into messages (org_id, thread_id, user_id, role, content) values ($1, $2, $3, 'user', 'x')",
                    OTHER_ORG, other_thread[0], other_thread[2])
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError) as err:
        seeded.run(insert_foreign())
    assert err.value.sqlstate == "42501"

    async def update_delete_foreign() -> tuple[str, str]:
        conn = await seeded.connect("app_user")
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true)", ORG)
                updated = await conn.execute("update threads set title = 'hijacked' where id = $1", other_thread[0])
                deleted = await conn.execute("delete from messages where thread_id = $1", other_thread[0])
                raise _Rollback((updated, deleted))
        except _Rollback as done:
            return done.args[0]
        finally:
            await conn.close()

    assert seeded.run(update_delete_foreign()) == ("UPDATE 0", "DELETE 0")


def test_app_user_can_write_inside_its_own_org(seeded) -> None:
    thread = seeded.org_rows("threads", ORG)[0]

    async def main() -> int:
        conn = await seeded.connect("app_user")
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true)", ORG)
                new_id = await conn.fetchval(
                    "insert into messages (org_id, thread_id, user_id, role, content) "
                    "values ($1, $2, $3, 'user', 'ok') returning id", ORG, thread[0], thread[2])
                raise _Rollback(new_id)
        except _Rollback as done:
            return done.args[0]
        finally:
            await conn.close()

    assert seeded.run(main()) > max(m[0] for m in seeded.data.messages)  # sequences moved past the seeded ids


def test_private_fragments_of_another_user_are_invisible(seeded) -> None:
    mine, other = "user_0001_01", "user_0001_02"
    fragments = seeded.org_rows("memory_fragments", ORG)
    other_private = [f[0] for f in fragments if f[4] == "private" and f[2] == other]
    assert other_private, "the seed must plant private fragments for the second user"

    async def main(as_user: str | None) -> int:
        conn = await seeded.connect("app_user")
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true)", ORG)
                if as_user is not None:
                    await conn.execute("select set_config('app.current_user_id', $1, true)", as_user)
                return int(await conn.fetchval("select count(*) from memory_fragments where id = any($1::bigint[])",
                                               other_private))
        finally:
            await conn.close()

    assert seeded.run(main(mine)) == 0
    assert seeded.run(main(None)) == 0
    assert seeded.run(main(other)) == len(other_private)  # control: the owner sees them


def test_postgres_bypasses_rls_negative_control(seeded) -> None:
    """`postgres` has BYPASSRLS: it sees every org's rows with no context at all (the Supabase trap)."""
    expected = {t: len(seeded.data.fragments if t == "memory_fragments" else getattr(seeded.data, t))
                for t in TENANT_TABLES}
    assert seeded.run(_counts_as(seeded, "postgres", None)) == expected
    assert seeded.run(_counts_as(seeded, "postgres", ORG)) == expected


def test_set_role_to_a_bypassrls_role_changes_the_outcome(seeded) -> None:
    """Only current_user's attributes count: app_user cannot become service_role, postgres can."""
    async def main() -> str:
        conn = await seeded.connect("app_user")
        try:
            await conn.execute("set role service_role")
            return "switched"
        except asyncpg.InsufficientPrivilegeError as exc:
            return exc.sqlstate
        finally:
            await conn.close()

    assert seeded.run(main()) == "42501"


class _Rollback(Exception):
    """Raised inside a transaction block to roll it back and carry a value out."""


