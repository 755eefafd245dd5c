"""BLOBs -> Storage against the rehearsal's Storage-API service (real HTTP on loopback) and the embedded target."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from pathlib import Path

import pytest

from pytest_cutover.migrate.blobs import (
    READBACK_MISMATCH,
    SOURCE_CHECKSUM,
    BlobSchema,
    StorageClient,
    consistency,
    migrate_blobs,
    null_file_data,
    verify_blobs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def storage(pg, tmp_path_factory):
    from pytest_cutover.rehearsal.procs import free_port
    from pytest_cutover.rehearsal.services import storage_process
    from pytest_cutover.util.jwt import mint_jwt

    work = tmp_path_factory.mktemp("storage")
    secret = secrets.token_hex(16)
    port = free_port()
    proc = storage_process(port, dsn=pg.dsn("supabase_storage_admin").get(), jwt_secret=secret,
                           data_dir=work / "data", certfile=None, keyfile=None, log_path=work / "storage.log")
    proc.start(timeout=60)
    yield {"url": f"http://127.0.0.1:{port}", "key": mint_jwt(secret, role="service_role"), "data": work / "data"}
    proc.stop()


def _seed(pg, n: int, corrupt_source: int | None = None) -> list[dict]:
    import asyncpg

    async def go():
        admin = await asyncpg.connect(pg.admin_dsn.get())
        await admin.execute("TRUNCATE memory_fragments, attachments, messages, threads, users, orgs CASCADE;"
                            "DELETE FROM storage.objects")
        await admin.close()
        conn = await asyncpg.connect(pg.target_dsn.get())
        await conn.execute("INSERT INTO orgs VALUES ('org_0001', 'one'), ('org_0002', 'two');"
                           "INSERT INTO users VALUES ('user_0001_01', 'org_0001', 'a@x'), "
                           "('user_0002_01', 'org_0002', 'b@x')")
        rows = []
        for i in range(n):
            org = f"org_000{1 + i % 2}"
            thread = uuid.UUID(int=i + 1)
            await conn.execute("INSERT INTO threads(id, org_id, user_id, title) VALUES ($1, $2, $3, 't')",
                               thread, org, f"user_{org[-4:]}_01")
            data = (f"attachment {i} ".encode() * (i * 37 + 1))[: 1 + i * 500]
            digest = hashlib.sha256(data).hexdigest()
            if i == corrupt_source:
                data = b"X" + data[1:]  # the row's own sha256 no longer matches its bytes
            rid = await conn.fetchval(
                "INSERT INTO attachments(org_id, thread_id, user_id, filename, content_type, size_bytes, sha256, "
                "file_data) VALUES ($1, $2, $3, $4, 'text/plain', $5, $6, $7) RETURNING id",
                org, thread, f"user_{org[-4:]}_01", f"notes é {i}.txt", len(data), digest, data)
            rows.append({"id": rid, "org": org, "thread": str(thread)})
        await conn.close()
        return rows

    return asyncio.run(go())


def _run(pg, storage, step, **kw):
    import asyncpg

    async def go():
        conn = await asyncpg.connect(pg.target_dsn.get())
        client = StorageClient(storage["url"], storage["key"])
        try:
            return await step(conn, client, **kw)
        finally:
            await client.aclose()
            await conn.close()

    return asyncio.run(go())


def test_blobs_upload_verify_record_and_resume(pg, storage):
    rows = _seed(pg, 12, corrupt_source=3)
    schema = BlobSchema()
    first = _run(pg, storage, lambda c, s: migrate_blobs(c, s, "attachments", schema))
    assert (first.migrated, first.rejected_by_reason) == (11, {SOURCE_CHECKSUM: 1})
    assert first.samples[SOURCE_CHECKSUM] == [str(rows[3]["id"])]
    again = _run(pg, storage, lambda c, s: migrate_blobs(c, s, "attachments", schema))
    assert (again.migrated, again.already_done) == (0, 11)  # resumable/idempotent: done rows are skipped
    check = _run(pg, storage, lambda c, s: verify_blobs(c, s, schema))
    assert (check.rows, check.migrated, check.rejected) == (11, 11, 0)
    paths = asyncio.run(_fetch(pg, "SELECT id, org_id, thread_id::text AS t, storage_path, storage_bucket, file_data "
                                   "IS NOT NULL AS kept FROM attachments ORDER BY id"))
    for row in paths:
        if row["id"] == rows[3]["id"]:
            assert row["storage_path"] is None
            continue
        assert row["storage_path"] == f"{row['org_id']}/{row['t']}/{row['id']}/notes é {row['id'] - rows[0]['id']}.txt"
        assert row["storage_bucket"] == "attachments" and row["kept"]  # file_data untouched until the opt-in step


def test_a_blob_corrupted_after_upload_is_caught_and_keeps_its_file_data(pg, storage):
    rows = _seed(pg, 6)
    schema = BlobSchema()
    assert _run(pg, storage, lambda c, s: migrate_blobs(c, s, "attachments", schema)).migrated == 6
    victim = rows[2]
    files = [p for p in Path(storage["data"]).rglob("*") if p.is_file() and f"/{victim['id']}/" in str(p)]
    assert len(files) == 1
    raw = bytearray(files[0].read_bytes())
    raw[-1] ^= 0x01
    files[0].write_bytes(bytes(raw))
    check = _run(pg, storage, lambda c, s: verify_blobs(c, s, schema))
    assert check.rejected_by_reason == {READBACK_MISMATCH: 1}
    assert check.samples[READBACK_MISMATCH] == [str(victim["id"])]
    nulled = _run(pg, storage, lambda c, s: null_file_data(c, s, schema))
    assert nulled.migrated == 5
    kept = asyncio.run(_fetch(pg, "SELECT id FROM attachments WHERE file_data IS NOT NULL"))
    assert [r["id"] for r in kept] == [victim["id"]]
    assert _run(pg, storage, lambda c, s: consistency(c, schema)) == 0


async def _fetch(pg, query):
    import asyncpg

    conn = await asyncpg.connect(pg.target_dsn.get())
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()
