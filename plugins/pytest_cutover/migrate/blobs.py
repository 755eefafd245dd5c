"""BLOBs -> Storage: stream ``attachments.file_data`` to tenant-scoped objects, verified before anything else.

Object names are keys the real Storage service accepts for any filename (``object_path``); the original
filename travels in the object's user metadata (``filename``).  Order matters (runbook Week 1): upload,
read the object back through the Storage API, check its size and sha256 against the row, and only then
set ``storage_path``/``storage_bucket``.  A row with ``storage_path`` set is therefore a verified row, which
is what makes the step resumable and idempotent: a re-run picks up the rows that are
not done.  Nulling ``file_data`` is a separate, opt-in step that re-verifies each object
first and touches only rows whose object matches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_cutover.migrate.errors import MigrationError, TargetError
from pytest_cutover.redact import redact
from pytest_cutover.util.sql import quote_ident
from pytest_cutover.util.storage_key import safe_segment

if TYPE_CHECKING:
    import asyncpg
    import httpx

__all__ = ["BlobResult", "BlobSchema", "StorageClient", "consistency", "migrate_blobs", "null_file_data",
           "object_path", "verify_blobs"]

SOURCE_CHECKSUM = "source-checksum-mismatch"  # file_data does not match the row's own sha256: corrupt before us
UPLOAD_FAILED = "upload-failed"
READBACK_MISMATCH = "readback-mismatch"
OBJECT_MISSING = "object-missing"
ORG_FOLDER = "org-folder-mismatch"  # the path's first folder is not the row's org id (RLS would misfile it)


@dataclass(frozen=True)
class BlobSchema:
    table: str = "attachments"
    key: str = "id"
    org: str = "org_id"
    blob: str = "file_data"
    path: str = "storage_path"
    bucket_column: str = "storage_bucket"
    template: str = "{org_id}/{thread_id}/{attachment_id}/{filename}"


def object_path(template: str, row: dict[str, Any]) -> str:
    """The tenant-scoped object name, e.g. ``org_0001/<thread>/<id>/report.pdf``, that Supabase Storage accepts.

    Every field becomes one segment by :func:`~pytest_cutover.util.storage_key.safe_segment`: a plain value is
    kept, any other (non-ASCII, ``#``, ``%``, ``..``, a slash, too long...) becomes a slug plus a short hash of
    the original, so the same row always gets the same name and different filenames different names.

    >>> object_path("{org_id}/{thread_id}/{attachment_id}/{filename}",
    ...             {"org_id": "org_1", "thread_id": "t", "id": 7, "filename": "a/b.pdf"})
    'org_1/t/7/a_b-e06332908d7e.pdf'
    """
    values = {k: safe_segment(v) for k, v in row.items()}
    values.setdefault("attachment_id", safe_segment(row.get("id")))
    return template.format(**values)


class StorageClient:
    """The Supabase Storage HTTP API with the service key: upload (upsert) and download objects."""

    def __init__(self, base_url: str, service_key: str, *, verify: Any = True, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, verify=verify, timeout=timeout, transport=transport,
                                       headers={"Authorization": f"Bearer {service_key}", "apikey": service_key})

    @staticmethod
    def _url(bucket: str, name: str) -> str:
        return f"{quote(bucket, safe='')}/{quote(name, safe='/')}"

    async def upload(self, bucket: str, name: str, data: bytes, content_type: str,
                     metadata: dict[str, Any] | None = None) -> None:
        """POST /object/{bucket}/{name} with ``x-upsert`` (a resumed run may re-upload a not-yet-recorded object);
        ``metadata`` becomes the object's user metadata (``x-metadata``: base64 of its JSON, as storage-js sends)."""
        import httpx

        headers = {"content-type": content_type or "application/octet-stream", "x-upsert": "true"}
        if metadata:
            headers["x-metadata"] = base64.b64encode(json.dumps(metadata).encode()).decode("ascii")
        try:
            resp = await self._http.post(f"/object/{self._url(bucket, name)}", content=data, headers=headers)
        except httpx.HTTPError as exc:
            raise TargetError(f"storage at {redact(self.base_url)} is unreachable: {type(exc).__name__}",
                              hint="check target.storage_url and that Storage is up") from None
        if resp.status_code >= 300:
            raise MigrationError(f"storage refused {bucket}/{name}: HTTP {resp.status_code} {redact(resp.text[:200])}",
                                 hint="check target.storage_key (service role) and the bucket name")

    async def download(self, bucket: str, name: str) -> bytes | None:
        """GET /object/authenticated/{bucket}/{name}; ``None`` when the object does not exist."""
        resp = await self._http.get(f"/object/authenticated/{self._url(bucket, name)}")
        if resp.status_code in (400, 404):
            return None
        if resp.status_code >= 300:
            raise MigrationError(f"storage read of {bucket}/{name} failed: HTTP {resp.status_code}",
                                 hint="check target.storage_key (service role)")
        return resp.content

    async def aclose(self) -> None:
        await self._http.aclose()


@dataclass
class BlobResult:
    """Counts and sample ids for one BLOB step."""

    rows: int = 0
    migrated: int = 0
    already_done: int = 0
    bytes: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    bad_keys: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def reject(self, reason: str, key: Any) -> None:
        self.bad_keys.append(str(key))
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        keep = self.samples.setdefault(reason, [])
        if len(keep) < 5:
            keep.append(str(key))

    def figures(self) -> dict[str, Any]:
        return {"rows": self.rows, "migrated": self.migrated, "already_done": self.already_done,
                "rejected": self.rejected, "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
                "samples": dict(sorted(self.samples.items())), "bytes": self.bytes,
                "duration_s": round(self.duration_s, 3)}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def migrate_blobs(conn: asyncpg.Connection, storage: StorageClient, bucket: str, schema: BlobSchema, *,
                        dry_run: bool = False, chunk: int = 32, concurrency: int = 4) -> BlobResult:
    """Upload every row's ``file_data`` not yet in storage, verify it read back, then record its path."""
    t0 = time.perf_counter()
    result = BlobResult()
    t, key, blob = quote_ident(schema.table), quote_ident(schema.key), quote_ident(schema.blob)
    path_col, bucket_col = quote_ident(schema.path), quote_ident(schema.bucket_column)
    result.already_done = int(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE {path_col} IS NOT NULL"))
    keys = [r[0] for r in await conn.fetch(
        f"SELECT {key} FROM {t} WHERE {blob} IS NOT NULL AND {path_col} IS NULL ORDER BY {key}")]
    result.rows = len(keys) + result.already_done
    gate = asyncio.Semaphore(concurrency)

    async def one(row: Any) -> tuple[Any, str] | None:
        data = bytes(row["file_data"])
        if _digest(data) != row["sha256"] or len(data) != row["size_bytes"]:
            result.reject(SOURCE_CHECKSUM, row["id"])
            return None
        name = object_path(schema.template, {k: row[k] for k in row if k != "file_data"})
        if name.split("/", 1)[0] != str(row[schema.org]):
            result.reject(ORG_FOLDER, row["id"])  # storage RLS reads the org from the first folder
            return None
        if dry_run:
            return None
        original = {"filename": str(row["filename"])} if row.get("filename") is not None else None
        async with gate:
            try:
                await storage.upload(bucket, name, data, row["content_type"], metadata=original)
            except MigrationError:
                result.reject(UPLOAD_FAILED, row["id"])
                return None
            back = await storage.download(bucket, name)
        if back is None or len(back) != len(data) or _digest(back) != row["sha256"]:
            result.reject(READBACK_MISMATCH, row["id"])
            return None
        result.bytes += len(data)
        return row["id"], name

    # Memory stays bounded: file_data is fetched ``chunk`` rows at a time.
    for start in range(0, len(keys), chunk):
        rows = await conn.fetch(
            f"SELECT {key} AS id, *, {blob} AS file_data FROM {t} WHERE {key} = ANY($1) ORDER BY {key}",
            keys[start:start + chunk])
        done = [d for d in await asyncio.gather(*(one(dict(r)) for r in rows)) if d is not None]
        if done:
            status = await conn.executemany(
                f"UPDATE {t} SET {path_col} = $2, {bucket_col} = $3 WHERE {key} = $1 AND {path_col} IS NULL",
                [(k, name, bucket) for k, name in done])
            del status
            result.migrated += len(done)
    result.duration_s = time.perf_counter() - t0
    return result


async def verify_blobs(conn: asyncpg.Connection, storage: StorageClient, schema: BlobSchema, *,
                       concurrency: int = 4) -> BlobResult:
    """Read every recorded object back and check its size and sha256 against the row (catches later corruption)."""
    t0 = time.perf_counter()
    result = BlobResult()
    t, key = quote_ident(schema.table), quote_ident(schema.key)
    path, bucket = quote_ident(schema.path), quote_ident(schema.bucket_column)
    rows = await conn.fetch(f"SELECT {key} AS id, {path} AS path, {bucket} "
                            f"AS bucket, sha256, size_bytes FROM {t} WHERE {path} IS NOT NULL "
                            f"ORDER BY {key}")
    result.rows = len(rows)
    gate = asyncio.Semaphore(concurrency)

    async def one(row: Any) -> None:
        async with gate:
            data = await storage.download(row["bucket"], row["path"])
        if data is None:
            result.reject(OBJECT_MISSING, row["id"])
        elif len(data) != row["size_bytes"] or _digest(data) != row["sha256"]:
            result.reject(READBACK_MISMATCH, row["id"])
        else:
            result.migrated += 1
            result.bytes += len(data)

    await asyncio.gather(*(one(r) for r in rows))
    result.duration_s = time.perf_counter() - t0
    return result


async def null_file_data(conn: asyncpg.Connection, storage: StorageClient, schema: BlobSchema) -> BlobResult:
    """Opt-in: set ``file_data`` to NULL on rows whose object re-verifies now; every other row is left alone."""
    t0 = time.perf_counter()
    check = await verify_blobs(conn, storage, schema)
    bad = set(check.bad_keys)
    t, key = quote_ident(schema.table), quote_ident(schema.key)
    rows = await conn.fetch(f"SELECT {key} AS id FROM {t} WHERE {quote_ident(schema.path)} IS NOT NULL "
                            f"AND {quote_ident(schema.blob)} IS NOT NULL ORDER BY {key}")
    verified = [r["id"] for r in rows if str(r["id"]) not in bad]
    status = await conn.execute(f"UPDATE {t} SET {quote_ident(schema.blob)} = NULL WHERE {key} = ANY($1) "
                                f"AND {quote_ident(schema.path)} IS NOT NULL", verified)
    check.migrated = int(status.split()[-1])
    check.duration_s = time.perf_counter() - t0
    return check


async def consistency(conn: asyncpg.Connection, schema: BlobSchema) -> int:
    """The runbook's check: rows with neither ``file_data`` nor ``storage_path`` (must be 0)."""
    t = quote_ident(schema.table)
    return int(await conn.fetchval(f"SELECT count(*) FROM {t} WHERE {quote_ident(schema.blob)} IS NULL "
                                   f"AND {quote_ident(schema.path)} IS NULL"))


# ------------------------------------------------------------------------------------------------ pre-sync
BLOBS_PRESYNC = "blobs-presync"  # the checkpoint kind of a BLOB pre-sync


def _row_digest(schema: BlobSchema, alias: str = "t") -> str:
    """SQL for the fields a BLOB's checks use (its ``sha256`` and ``size_bytes``), as one bytea."""
    del schema
    return f"convert_to(coalesce({alias}.sha256, '') || ':' || coalesce({alias}.size_bytes::text, ''), 'UTF8')"


def _presync_meta(schema: BlobSchema, bucket: str) -> dict[str, str]:
    return {"table": schema.table, "key": schema.key, "path": schema.path, "bucket": bucket,
            "template": schema.template}


async def record_presync(conn: asyncpg.Connection, schema: BlobSchema, run_id: str, state_schema: str,
                         bucket: str) -> int:
    """After a pre-sync uploaded and verified: keep, per row now in storage, the digest of its checked fields
    (``sha256``, ``size_bytes``) under this run, so the final sync re-uploads only new and changed rows.
    Safe to run again (it replaces the run's record).  Returns the rows recorded."""
    st = quote_ident(state_schema)
    t, key, path = quote_ident(schema.table), quote_ident(schema.key), quote_ident(schema.path)
    async with conn.transaction():
        await conn.execute(f"DELETE FROM {st}.cutover_migration_seen WHERE run_id = $1 AND kind = $2", run_id,
                           BLOBS_PRESYNC)
        status = await conn.execute(
            f"INSERT INTO {st}.cutover_migration_seen (run_id, kind, key, digest) SELECT $1, $2, t.{key}::text, "
            f"{_row_digest(schema)} FROM {t} t WHERE t.{path} IS NOT NULL", run_id, BLOBS_PRESYNC)
        await conn.execute(
            f"INSERT INTO {st}.cutover_migration_checkpoint (run_id, kind, batches, done, state) "
            "VALUES ($1, $2, 0, true, $3::jsonb) ON CONFLICT (run_id, kind) DO UPDATE SET done = true, "
            "state = excluded.state, updated_at = now()", run_id, BLOBS_PRESYNC,
            json.dumps({"source": _presync_meta(schema, bucket)}))
    return int(status.split()[-1])


async def delta_since_presync(conn: asyncpg.Connection, schema: BlobSchema, run_id: str, state_schema: str,
                              bucket: str) -> dict[str, Any] | None:
    """The final sync after a BLOB pre-sync: rows whose checked fields changed since lose their storage path
    (so the upload that follows sends them again, verified); returns the counts (``changed``, ``added``,
    ``deleted``, ``presync_at``, ``changed_samples``), or ``None`` when this run has no pre-sync.  A pre-sync
    of another table or bucket is refused."""
    st = quote_ident(state_schema)
    found = await conn.fetchrow(
        f"SELECT state, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS at "
        f"FROM {st}.cutover_migration_checkpoint WHERE run_id = $1 AND kind = $2 AND done", run_id, BLOBS_PRESYNC)
    if found is None:
        return None
    was = json.loads(found["state"]).get("source") or {}
    now = _presync_meta(schema, bucket)
    differs = sorted(k for k, v in now.items() if was.get(k) != v)
    if differs:
        what = ", ".join(f"{k} {was.get(k)!r} then, {now[k]!r} now" for k in differs)
        raise MigrationError(f"refusing a BLOB delta: the pre-sync of run {run_id} ({found['at']}) was taken from "
                             f"another table or bucket ({what})",
                             hint="run `cutover migrate blobs --presync` again with this config")
    t, key, path = quote_ident(schema.table), quote_ident(schema.key), quote_ident(schema.path)
    seen = f"{st}.cutover_migration_seen"
    row = await conn.fetchrow(f"""
        WITH changed AS (
            UPDATE {t} t SET {path} = NULL, {quote_ident(schema.bucket_column)} = NULL FROM {seen} p
            WHERE p.run_id = $1 AND p.kind = $2 AND p.key = t.{key}::text AND t.{path} IS NOT NULL
              AND p.digest IS DISTINCT FROM {_row_digest(schema)} RETURNING t.{key}::text AS key)
        SELECT (SELECT count(*) FROM changed) AS changed,
               (SELECT (array_agg(key ORDER BY key))[1:5] FROM changed) AS samples,
               (SELECT count(*) FROM {t} t WHERE t.{quote_ident(schema.blob)} IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM {seen} p WHERE p.run_id = $1 AND p.kind = $2 AND p.key = t.{key}::text)) AS added,
               (SELECT count(*) FROM {seen} p WHERE p.run_id = $1 AND p.kind = $2 AND NOT EXISTS (
                    SELECT 1 FROM {t} t WHERE t.{key}::text = p.key)) AS deleted""", run_id, BLOBS_PRESYNC)
    return {"changed": int(row["changed"]), "added": int(row["added"]), "deleted": int(row["deleted"]),
            "changed_samples": list(row["samples"] or []), "presync_at": found["at"]}
