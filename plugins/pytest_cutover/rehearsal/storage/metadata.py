"""``storage.buckets`` / ``storage.objects`` queries, each run AS the request's role.

Every transaction starts like the real server's (supabase/storage ``src/internal/database/postgres/
scope.ts``): ``set_config('role', <jwt role>, true)`` (the function form of ``SET LOCAL ROLE``) and
``set_config('request.jwt.claims', <claims json>, true)`` plus the older per-claim settings, all
transaction-local and bound as parameters.  So ``auth.jwt()`` / ``auth.uid()`` see the token and the
RLS policies on ``storage.objects`` decide; the service connects as a role that may switch to
``anon``/``authenticated``/``service_role`` (``supabase_storage_admin`` or ``authenticator``).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pytest_cutover.rehearsal.storage.auth import Principal
from pytest_cutover.rehearsal.storage.errors import StorageApiError, from_postgres

__all__ = ["MetadataStore"]

_SCOPE_SQL = (
    "SELECT set_config('role', $1, true), set_config('request.jwt.claim.role', $2, true), "
    "set_config('request.jwt', $3, true), set_config('request.jwt.claim.sub', $4, true), "
    "set_config('request.jwt.claims', $5, true), set_config('request.method', $6, true), "
    "set_config('request.path', $7, true)"
)
_COLUMNS_SQL = (
    "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'storage' AND c.relname IN ('buckets', 'objects') AND a.attnum > 0 AND NOT a.attisdropped"
)
_BUCKET_FIELDS = ("id", "name", "owner", "owner_id", "public", "file_size_limit", "allowed_mime_types", "created_at",
                  "updated_at")
_OBJECT_FIELDS = ("id", "bucket_id", "name", "owner", "owner_id", "version", "metadata", "user_metadata",
                  "created_at", "updated_at", "last_accessed_at")


def _jsonable(row: Any, fields: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in fields:
        value = row.get(name)  # asyncpg Record: .get() looks up keys
        if isinstance(value, str) and name in ("metadata", "user_metadata"):
            value = json.loads(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[name] = value
    return out


class MetadataStore:
    """An asyncpg pool plus the bucket/object queries the routes need."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: Any = None
        self.columns: dict[str, set[str]] = {"buckets": set(), "objects": set()}

    async def open(self) -> None:
        import asyncpg

        # statement_cache_size=0: works through a transaction pooler as well as directly.
        self._pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=4, statement_cache_size=0,
                                               command_timeout=30, server_settings={"application_name": "storage"})
        async with self._pool.acquire() as conn:
            for table, column in await conn.fetch(_COLUMNS_SQL):
                self.columns[table].add(column)
        if not {"id", "name"} <= self.columns["buckets"] or not {"bucket_id", "name"} <= self.columns["objects"]:
            raise RuntimeError("storage.buckets / storage.objects are missing or incomplete in this database")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def scoped(self, who: Principal, *, method: str = "", path: str = "") -> AsyncIterator[Any]:
        """A transaction running as ``who.role`` with its claims set; PostgreSQL errors become API errors."""
        async with self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(_SCOPE_SQL, who.role, who.role, who.token, who.sub, who.claims_json,
                                       method, path)
                    yield conn
            except StorageApiError:
                raise
            except Exception as exc:
                if getattr(exc, "sqlstate", None):
                    raise from_postgres(exc) from exc
                raise

    # ------------------------------------------------------------------ select lists
    def _select(self, table: str, fields: Sequence[str]) -> str:
        present = self.columns[table]
        return ", ".join(f for f in fields if f in present)

    def bucket_json(self, row: Any) -> dict[str, Any]:
        out = _jsonable(row, _BUCKET_FIELDS)
        # storage3's Bucket model needs a string owner; the real server fills it from the creator's sub.
        out["owner"] = str(out.pop("owner") or out.get("owner_id") or "")
        out.pop("owner_id", None)
        out["public"] = bool(out.get("public"))
        out["type"] = "STANDARD"
        return out

    def object_json(self, row: Any) -> dict[str, Any]:
        return _jsonable(row, _OBJECT_FIELDS)

    # ------------------------------------------------------------------ buckets
    async def list_buckets(self, conn: Any) -> list[dict[str, Any]]:
        rows = await conn.fetch(f"SELECT {self._select('buckets', _BUCKET_FIELDS)} FROM storage.buckets ORDER BY name")
        return [self.bucket_json(r) for r in rows]

    async def find_bucket(self, conn: Any, bucket_id: str) -> Any:
        return await conn.fetchrow(
            f"SELECT {self._select('buckets', _BUCKET_FIELDS)} FROM storage.buckets WHERE id = $1", bucket_id)

    async def create_bucket(self, conn: Any, *, bucket_id: str, name: str, public: bool, owner: str,
                            file_size_limit: int | None, allowed_mime_types: list[str] | None) -> None:
        values: dict[str, Any] = {"id": bucket_id, "name": name, "public": public,
                                  "file_size_limit": file_size_limit, "allowed_mime_types": allowed_mime_types}
        if owner and "owner_id" in self.columns["buckets"]:
            values["owner_id"] = owner
        await self._insert(conn, "buckets", values)

    async def update_bucket(self, conn: Any, bucket_id: str, changes: dict[str, Any]) -> int:
        sets = {k: v for k, v in changes.items() if k in self.columns["buckets"]}
        if not sets:
            return 0
        assignments = ", ".join(f"{k} = ${i}" for i, k in enumerate(sets, start=2))
        status = await conn.execute(f"UPDATE storage.buckets SET {assignments} WHERE id = $1", bucket_id,
                                    *sets.values())
        return int(status.split()[-1])

    async def delete_bucket(self, conn: Any, bucket_id: str) -> int:
        status = await conn.execute("DELETE FROM storage.buckets WHERE id = $1", bucket_id)
        return int(status.split()[-1])

    # ------------------------------------------------------------------ objects
    async def find_object(self, conn: Any, bucket_id: str, name: str) -> Any:
        return await conn.fetchrow(
            f"SELECT {self._select('objects', _OBJECT_FIELDS)} FROM storage.objects WHERE bucket_id = $1 AND name = $2",
            bucket_id, name)

    async def find_objects(self, conn: Any, bucket_id: str, names: Sequence[str]) -> list[Any]:
        return list(await conn.fetch(
            f"SELECT {self._select('objects', _OBJECT_FIELDS)} FROM storage.objects "
            "WHERE bucket_id = $1 AND name = ANY($2::text[])", bucket_id, list(names)))

    async def insert_object(self, conn: Any, *, bucket_id: str, name: str, owner: str, metadata: dict[str, Any],
                            user_metadata: dict[str, Any] | None) -> str:
        object_id = str(uuid.uuid4())
        values: dict[str, Any] = {"id": object_id, "bucket_id": bucket_id, "name": name,
                                  "metadata": json.dumps(metadata), "version": str(uuid.uuid4())}
        if user_metadata is not None:
            values["user_metadata"] = json.dumps(user_metadata)
        if owner:
            values["owner_id"] = owner
            with contextlib.suppress(ValueError):
                values["owner"] = str(uuid.UUID(owner))
        await self._insert(conn, "objects", values)
        return object_id

    async def update_object(self, conn: Any, *, bucket_id: str, name: str, owner: str, metadata: dict[str, Any],
                            user_metadata: dict[str, Any] | None) -> str | None:
        """Replace an object's metadata (upsert/update); None when no row is visible to this role."""
        sets: dict[str, Any] = {"metadata": json.dumps(metadata), "version": str(uuid.uuid4())}
        if user_metadata is not None:
            sets["user_metadata"] = json.dumps(user_metadata)
        if owner:
            sets["owner_id"] = owner
        sets = {k: v for k, v in sets.items() if k in self.columns["objects"]}
        assignments = ", ".join([f"{k} = ${i}" for i, k in enumerate(sets, start=3)]
                                + (["updated_at = now()"] if "updated_at" in self.columns["objects"] else []))
        row = await conn.fetchrow(
            f"UPDATE storage.objects SET {assignments} WHERE bucket_id = $1 AND name = $2 RETURNING id",
            bucket_id, name, *sets.values())
        return None if row is None else str(row["id"])

    async def delete_objects(self, conn: Any, bucket_id: str, names: Sequence[str]) -> list[Any]:
        return list(await conn.fetch(
            f"DELETE FROM storage.objects WHERE bucket_id = $1 AND name = ANY($2::text[]) "
            f"RETURNING {self._select('objects', _OBJECT_FIELDS)}", bucket_id, list(names)))

    async def objects_under(self, conn: Any, bucket_id: str, pattern: str) -> list[Any]:
        """Objects whose name matches the ILIKE ``pattern`` (what ``storage.search`` filters on)."""
        return list(await conn.fetch(
            f"SELECT {self._select('objects', _OBJECT_FIELDS)} FROM storage.objects "
            "WHERE bucket_id = $1 AND name ILIKE $2 ORDER BY name", bucket_id, pattern))

    async def _insert(self, conn: Any, table: str, values: dict[str, Any]) -> None:
        present = {k: v for k, v in values.items() if k in self.columns[table]}
        cols = ", ".join(present)
        params = ", ".join(f"${i}" for i in range(1, len(present) + 1))
        await conn.execute(f"INSERT INTO storage.{table} ({cols}) VALUES ({params})", *present.values())
