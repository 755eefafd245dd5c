"""BLOBs -> Storage against the rehearsal's Storage-API service (real HTTP on loopback) and the embedded target."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from pathlib import Path
from urllib.parse import quote

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
from pytest_cutover.util.storage_key import is_valid_key, safe_segment

pytestmark = pytest.mark.integration

HOSTILE = ["résumé final.pdf", "a b#c?.txt", "100%.csv", "..", ".", "   ", "", "😀🎉.png", "x" * 400 + ".bin",
           "日本語.docx", "../../etc/passwd", "tab\there.txt", "a/b\\c.txt", "q?&=+,;:@$.txt", "CON"]


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


def _seed(pg, n: int, corrupt_source: int | None = None, names: list[str] | None = None) -> list[dict]:
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
                org, thread, f"user_{org[-4:]}_01", names[i] if names else f"notes é {i}.txt", len(data), digest,
                data)
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
        original = f"notes é {row['id'] - rows[0]['id']}.txt"  # non-ASCII: Supabase refuses it as a key
        assert row["storage_path"] == f"{row['org_id']}/{row['t']}/{row['id']}/{safe_segment(original)}"
        assert is_valid_key(row["storage_path"]) and row["storage_path"].endswith(".txt")
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


def test_hostile_filenames_get_keys_the_real_service_accepts_and_keep_their_name_in_metadata(pg, storage):
    import httpx

    rows = _seed(pg, len(HOSTILE), names=HOSTILE)
    moved = _run(pg, storage, lambda c, s: migrate_blobs(c, s, "attachments", BlobSchema()))
    assert (moved.migrated, moved.rejected) == (len(HOSTILE), 0), moved.figures()
    stored = asyncio.run(_fetch(pg, "SELECT id, org_id, filename, storage_path FROM attachments ORDER BY id"))
    assert [r["id"] for r in stored] == [r["id"] for r in rows]
    names = [r["storage_path"].rsplit("/", 1)[1] for r in stored]
    assert len(set(names)) == len(HOSTILE)  # distinct filenames, distinct keys
    for row in stored:
        assert is_valid_key(row["storage_path"]), row["storage_path"]
        assert row["storage_path"].split("/")[0] == row["org_id"]  # RLS: (storage.foldername(name))[1]
        info = httpx.get(f"{storage['url']}/object/info/attachments/{quote(row['storage_path'])}",
                         headers={"Authorization": f"Bearer {storage['key']}"}, timeout=10)
        assert info.status_code == 200 and info.json()["metadata"] == {"filename": row["filename"]}, info.text


def test_blob_refusals_name_their_rows_in_the_step_messages(pg, storage, tmp_path):
    from pytest_cutover.config import parse_config
    from pytest_cutover.migrate import api

    rows = _seed(pg, 4, corrupt_source=1)
    config = parse_config({"run": {"id": "blob-keys"},
                           "target": {"database_url": pg.target_dsn.get(), "storage_url": storage["url"],
                                      "storage_key": storage["key"]}}, env={})
    outcome = api.blobs(config)
    assert not outcome.ok
    assert f"source-checksum-mismatch: 1 row; first id: {rows[1]['id']}" in outcome.messages, outcome.messages


def _call(storage, method, path, **kw):
    import httpx

    return httpx.request(method, f"{storage['url']}{path}", headers={"Authorization": f"Bearer {storage['key']}",
                                                                     **kw.pop("headers", {})}, timeout=10, **kw)


def test_the_rehearsal_service_refuses_exactly_the_keys_supabase_refuses(pg, storage):
    from test_storage_keys import ACCEPTED, REFUSED  # the upstream examples (rootdir-less prepend import)

    _seed(pg, 0)
    for why, key in REFUSED:
        if not key:
            continue  # no route carries an empty name
        name = f"org_0001/keys/{key}"
        for method, route in (("POST", "/object/attachments/"), ("GET", "/object/attachments/"),
                              ("GET", "/object/info/attachments/")):
            answer = _call(storage, method, route + quote(name), content=b"x")
            assert (answer.status_code, answer.json()) == (400, {
                "statusCode": "400", "code": "InvalidKey", "error": "InvalidKey", "message": f"Invalid key: {name}"}), \
                (why, method, route)
    for why, key in ACCEPTED:
        name = f"org_0001/keys/{key[:200]}"  # a 1024-character segment is a valid key but no file name on disk
        answer = _call(storage, "POST", "/object/attachments/" + quote(name), content=b"x")
        assert answer.status_code == 200, (why, answer.text)
        assert _call(storage, "GET", "/object/authenticated/attachments/" + quote(name)).content == b"x", why
    traversal = _call(storage, "POST", "/object/attachments/org_0001/%2E%2E/escape.txt", content=b"x")
    assert traversal.status_code == 400 and traversal.json()["message"] == \
        "Invalid key: org_0001/../escape.txt contains dot path segment"
    bucket = _call(storage, "POST", "/bucket", json={"name": "émoji"})
    assert (bucket.status_code, bucket.json()["code"], bucket.json()["message"]) == \
        (400, "InvalidBucketName", "Bucket name invalid")


def test_a_template_without_the_org_folder_first_is_refused_row_by_row(pg, storage):
    from pytest_cutover.migrate.blobs import ORG_FOLDER

    rows = _seed(pg, 2)
    schema = BlobSchema(template="{thread_id}/{org_id}/{attachment_id}/{filename}")
    moved = _run(pg, storage, lambda c, s: migrate_blobs(c, s, "attachments", schema))
    assert (moved.migrated, moved.rejected_by_reason) == (0, {ORG_FOLDER: 2})
    assert moved.samples[ORG_FOLDER] == [str(r["id"]) for r in rows]


def test_blob_presync_then_delta_resends_only_new_and_changed_rows_and_refuses_another_bucket(pg, storage):
    import httpx

    from pytest_cutover.config import parse_config
    from pytest_cutover.migrate import api
    from pytest_cutover.migrate.errors import MigrationError

    rows = _seed(pg, 6)
    target = {"database_url": pg.target_dsn.get(), "storage_url": storage["url"], "storage_key": storage["key"]}
    config = parse_config({"run": {"id": "night"}, "target": target}, env={})
    pre = api.blobs(config, run_id="night", mode="presync")
    assert pre.ok and pre.mode == "presync" and pre.figures["presync_recorded"] == 6, pre.messages
    changed = rows[2]["id"]
    data = b"re-uploaded after the pre-sync"

    async def change():
        import asyncpg

        conn = await asyncpg.connect(pg.target_dsn.get())
        try:
            await conn.execute("UPDATE attachments SET file_data = $1, sha256 = $2, size_bytes = $3 WHERE id = $4",
                               data, hashlib.sha256(data).hexdigest(), len(data), changed)
            thread = await conn.fetchval("SELECT thread_id FROM attachments WHERE id = $1", rows[0]["id"])
            await conn.execute(
                "INSERT INTO attachments(org_id, thread_id, user_id, filename, content_type, size_bytes, sha256, "
                "file_data) VALUES ('org_0001', $1, 'user_0001_01', 'new.txt', 'text/plain', 3, $2, 'new')",
                thread, hashlib.sha256(b"new").hexdigest())
        finally:
            await conn.close()

    asyncio.run(change())
    delta = api.blobs(config, run_id="night")
    assert delta.ok and delta.mode == "delta", delta.messages
    f = delta.figures
    assert (f["changed"], f["added"], f["deleted"], f["migrated"], f["verified"]) == (1, 1, 0, 2, 7), f
    assert f["changed_samples"] == [str(changed)]
    [row] = asyncio.run(_fetch(pg, f"SELECT storage_path FROM attachments WHERE id = {int(changed)}"))
    got = httpx.get(f"{storage['url']}/object/authenticated/attachments/{quote(row['storage_path'])}",
                    headers={"Authorization": f"Bearer {storage['key']}"}, timeout=10)
    assert got.content == data  # the object now holds the changed bytes, verified before recording
    other = parse_config({"run": {"id": "night"}, "target": {**target, "bucket": "archive"}}, env={})
    with pytest.raises(MigrationError, match=r"another table or bucket \(bucket 'attachments' then, 'archive' now\)"):
        api.blobs(other, run_id="night")
