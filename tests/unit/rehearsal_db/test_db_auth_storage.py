"""auth.uid()/role()/jwt() read request.jwt.claims as on Supabase; storage.objects policies isolate orgs."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

pytestmark = pytest.mark.integration

SUB = "6f1c7a52-3d1e-4c35-9e59-3b8f6d1e2a10"


async def _as_api_role(conn: asyncpg.Connection, role: str, claims: dict | None) -> None:
    """What PostgREST / Storage do per request: SET LOCAL ROLE and the claims, inside a transaction."""
    await conn.execute(f"set local role {role}")
    if claims is not None:
        await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(claims))


def test_auth_functions_read_request_jwt_claims(seeded) -> None:
    claims = {"sub": SUB, "role": "authenticated", "email": "a@org0001.example", "org_id": "org_0001"}

    async def main() -> tuple[asyncpg.Record, asyncpg.Record, asyncpg.Record, str]:
        conn = await seeded.connect("authenticator")
        try:
            async with conn.transaction():
                await _as_api_role(conn, "authenticated", claims)
                inside = await conn.fetchrow("select auth.uid() as uid, auth.role() as role, auth.email() as email,"
                                             " auth.jwt() ->> 'org_id' as org, current_user as who")
            # Next request on the same session, no claims: the setting now reads '' (not NULL) and nullif keeps
            # uid() from failing its ::uuid cast.
            async with conn.transaction():
                await _as_api_role(conn, "authenticated", None)
                after = await conn.fetchrow("select auth.uid() as uid, auth.jwt() as jwt, current_user as who,"
                                            " current_setting('request.jwt.claims', true) as raw")
            who_after = await conn.fetchval("select current_user")
            async with conn.transaction():
                await _as_api_role(conn, "authenticated", None)
                await conn.execute("select set_config('request.jwt.claim.sub', $1, true)", SUB)
                legacy = await conn.fetchrow("select auth.uid() as uid")
            return inside, after, legacy, who_after
        finally:
            await conn.close()

    inside, after, legacy, who_after = seeded.run(main())
    assert inside["uid"] == uuid.UUID(SUB)
    assert (inside["role"], inside["email"], inside["org"], inside["who"]) == (
        "authenticated", "a@org0001.example", "org_0001", "authenticated")
    assert after["raw"] == "" and after["uid"] is None and after["jwt"] is None and after["who"] == "authenticated"
    assert who_after == "authenticator"  # SET LOCAL ROLE ended with the transaction
    assert legacy["uid"] == uuid.UUID(SUB)


def test_storage_helpers_split_paths(seeded) -> None:
    async def main() -> asyncpg.Record:
        conn = await seeded.connect("supabase_admin")
        try:
            return await conn.fetchrow(
                "select storage.foldername('org_0001/t/42/résumé 報告.pdf') as folders,"
                " storage.filename('org_0001/t/42/résumé 報告.pdf') as name,"
                " storage.extension('org_0001/t/42/a.tar.gz') as ext")
        finally:
            await conn.close()

    row = seeded.run(main())
    assert row["folders"] == ["org_0001", "t", "42"]
    assert row["name"] == "résumé 報告.pdf"
    assert row["ext"] == "gz"


def test_storage_objects_are_isolated_by_the_jwt_org_claim(seeded) -> None:
    folder = uuid.uuid4().hex  # objects of this test only
    names = {"org_0001": f"org_0001/{folder}/1/a.pdf", "org_0002": f"org_0002/{folder}/2/b.pdf"}
    claims = {"sub": SUB, "role": "authenticated", "org_id": "org_0001"}

    async def attempt(api: asyncpg.Connection, sql: str, *args: object) -> str:
        try:
            async with api.transaction():
                await _as_api_role(api, "authenticated", claims)
                return await api.execute(sql, *args)
        except asyncpg.InsufficientPrivilegeError as exc:
            return exc.sqlstate

    async def main() -> dict[str, object]:
        admin = await seeded.connect("supabase_admin")
        api = await seeded.connect("authenticator")
        out: dict[str, object] = {}
        try:
            out["bucket_public"] = await admin.fetchval("select public from storage.buckets where id = 'attachments'")
            await admin.executemany("insert into storage.objects (bucket_id, name) values ('attachments', $1)",
                                    [(n,) for n in names.values()])
            async with api.transaction():
                await _as_api_role(api, "authenticated", claims)
                out["visible"] = sorted(r[0] for r in await api.fetch(
                    "select name from storage.objects where name like $1", f"%/{folder}/%"))
                out["buckets_visible"] = await api.fetchval("select count(*) from storage.buckets")
            insert = "insert into storage.objects (bucket_id, name) values ('attachments', $1)"
            out["foreign_insert"] = await attempt(api, insert, f"org_0002/{folder}/3/evil.pdf")
            out["own_insert"] = await attempt(api, insert, f"org_0001/{folder}/9/own.pdf")
            out["foreign_delete"] = await attempt(api, "delete from storage.objects where name = $1", names["org_0002"])
            out["foreign_rename"] = await attempt(
                api, "update storage.objects set name = $1 where name = $2", f"org_0001/{folder}/stolen.pdf",
                names["org_0002"])
            out["left"] = await admin.fetchval("select count(*) from storage.objects where name = $1",
                                               names["org_0002"])
        finally:
            await admin.execute("delete from storage.objects where name like $1", f"%/{folder}/%")
            await api.close()
            await admin.close()
        return out

    out = seeded.run(main())
    assert out["bucket_public"] is False
    assert out["visible"] == [names["org_0001"]]
    assert out["buckets_visible"] == 1
    assert out["foreign_insert"] == "42501"
    assert out["own_insert"] == "INSERT 0 1"
    assert (out["foreign_delete"], out["foreign_rename"], out["left"]) == ("DELETE 0", "UPDATE 0", 1)


def test_anon_sees_no_objects_and_service_role_sees_all(seeded) -> None:
    names = ["org_0001/t/1/x.pdf", "org_0002/t/2/y.pdf", "org_0003/t/3/z.pdf"]

    async def main() -> tuple[int, int]:
        conn = await seeded.connect("authenticator")
        admin = await seeded.connect("supabase_admin")
        try:
            await admin.executemany("insert into storage.objects (bucket_id, name) values ('attachments', $1)",
                                    [(n,) for n in names])
            async with conn.transaction():
                await _as_api_role(conn, "anon", None)
                anon = await conn.fetchval("select count(*) from storage.objects where name = any($1::text[])", names)
            async with conn.transaction():
                await _as_api_role(conn, "service_role", {"role": "service_role"})
                service = await conn.fetchval("select count(*) from storage.objects where name = any($1::text[])",
                                              names)
            return int(anon), int(service)
        finally:
            await admin.execute("delete from storage.objects where name = any($1::text[])", names)
            await conn.close()
            await admin.close()

    assert seeded.run(main()) == (0, 3)
