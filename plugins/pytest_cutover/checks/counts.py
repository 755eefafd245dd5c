"""Runbook "Data Validation": the counts the cutover will be judged against, recorded as figures.

Qdrant points (exact count) and the collection's dimension come from qdrant-client, on a server
(``source.qdrant_url``) or in local mode (``source.qdrant_path``; the client is always closed because
local mode locks the folder).  When another process holds a local folder (the app keeps it open while it
serves searches), the count is read from the collection's own ``storage.sqlite`` read-only instead, and
the evidence says so.  Fragments, fragments with a ``vector_id`` and attachments with a BLOB are counted
on the source database (``source.database_url``), with the names from ``[schema]``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cutover.checks.base import CheckResult, config_relative, result, run_sync
from pytest_cutover.checks.db import connection
from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.redact import redact, reveal
from pytest_cutover.util.sql import quote_ident

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["QdrantInfo", "SourceCounts", "check_blobs", "check_fragments", "check_qdrant", "qdrant_info",
           "source_counts"]


@dataclass(frozen=True)
class QdrantInfo:
    """Points and dimension of the source collection, and how they were read."""

    points: int
    dimension: int | None
    via: str


def _local_fallback(folder: Path, collection: str) -> QdrantInfo:
    """Read a locked local-mode folder without the client: meta.json for the dimension, sqlite for the count."""
    db_file = folder / "collection" / collection / "storage.sqlite"
    if not db_file.is_file():
        raise CutoverError(f"qdrant collection {collection!r} has no storage at {db_file}",
                           hint="check source.qdrant_path and source.collection")
    con = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=10)
    try:
        points = int(con.execute("select count(*) from points").fetchone()[0])
    finally:
        con.close()
    dim = None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        vectors = meta["collections"][collection]["vectors"]
        dim = int(vectors["size"]) if isinstance(vectors, dict) and "size" in vectors else None
    except (OSError, ValueError, KeyError, TypeError):
        dim = None
    return QdrantInfo(points, dim, f"{db_file} read-only (the folder is held by another process)")


def qdrant_info(config: CutoverConfig) -> QdrantInfo:
    """Exact point count and dimension of ``source.collection``."""
    import warnings

    from pytest_cutover.migrate.errors import SourceError
    from pytest_cutover.migrate.source import QdrantSource, SourceSpec

    src = config.source
    if not src.qdrant_path and not src.qdrant_url:
        raise ConfigError("missing config key source.qdrant_path (or source.qdrant_url)",
                          hint="set [source] qdrant_path (local mode) or qdrant_url")
    path = str(config_relative(config, src.qdrant_path)) if src.qdrant_path else None
    spec = SourceSpec(collection=src.collection, path=path, url=src.qdrant_url, api_key=reveal(src.qdrant_api_key),
                      timeout_s=config.thresholds.connect_timeout_s)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # local mode warns above 20k points
            source = QdrantSource(spec)
    except SourceError as exc:
        if path and "already accessed" in str(exc):
            return _local_fallback(Path(path), src.collection)
        raise
    try:
        try:
            dim: int | None = source.dimension()
        except SourceError:
            dim = None
        return QdrantInfo(source.count(), dim, f"qdrant-client at {spec.where()}")
    finally:
        source.close()


def check_qdrant(config: CutoverConfig) -> CheckResult:
    """Runbook "Vector count verified in Qdrant": an exact count of a non-empty collection."""
    info = qdrant_info(config)
    problems = [] if info.points > 0 else [
        f"qdrant collection {config.source.collection} is empty: the migration would move nothing; check "
        f"source.qdrant_url/qdrant_path and source.collection"]
    return result("count-qdrant", problems,
                  f"collection {config.source.collection}: {info.points} points, dimension {info.dimension} "
                  f"({info.via})", {"qdrant_points": info.points, "qdrant_dimension": info.dimension})


@dataclass(frozen=True)
class SourceCounts:
    fragments: int
    fragments_with_vector_id: int
    attachments: int
    attachments_with_blob: int
    blob_bytes: int
    attachments_without_content: int | None   # neither a BLOB nor a storage path (None: no such column)


async def _source_counts(config: CutoverConfig) -> SourceCounts:
    s = config.schema_
    dsn = config.source.database_url
    if dsn is None:
        raise ConfigError("missing config key source.database_url", hint="set [source] database_url")
    frag, att = quote_ident(s.fragments_table), quote_ident(s.attachments_table)
    async with connection(dsn, ca_file=config.target.ca_file, timeout=config.thresholds.connect_timeout_s,
                          what="source.database_url") as conn:
        try:
            f = await conn.fetchrow(f"select count(*) as n, count({quote_ident(s.vector_id_column)}) as v from {frag}")
            a = await conn.fetchrow(f"select count(*) as n, count({quote_ident(s.blob_column)}) as b, "
                                    f"coalesce(sum(octet_length({quote_ident(s.blob_column)})), 0) as bytes from {att}")
            has_path = await conn.fetchval("select count(*) from pg_attribute where attrelid = to_regclass($1) "
                                           "and attname = $2 and not attisdropped", att, s.storage_path_column)
            lost = None
            if has_path:
                lost = await conn.fetchval(f"select count(*) from {att} where {quote_ident(s.blob_column)} is null "
                                           f"and {quote_ident(s.storage_path_column)} is null")
        except Exception as exc:  # asyncpg.PostgresError: undefined table/column
            raise CutoverError(f"counting on source.database_url failed: {redact(exc)}",
                               hint="check [schema] fragments_table, vector_id_column, attachments_table, "
                                    "blob_column against the old database") from None
    return SourceCounts(int(f["n"]), int(f["v"]), int(a["n"]), int(a["b"]), int(a["bytes"]),
                        None if lost is None else int(lost))


def source_counts(config: CutoverConfig) -> SourceCounts:
    """Fragment and attachment counts on the source database."""
    return run_sync(_source_counts(config), timeout=config.thresholds.connect_timeout_s + 120)


def check_fragments(counts: SourceCounts, config: CutoverConfig) -> CheckResult:
    """Runbook "Memory fragment count verified": counted exactly; every vector_id must become a point."""
    s = config.schema_
    problems = []
    if counts.fragments_with_vector_id > counts.fragments:
        problems.append("more fragments with a vector_id than fragments: the count is inconsistent")
    return result("count-fragments", problems,
                  f"{s.fragments_table}: {counts.fragments} fragments, {counts.fragments_with_vector_id} with "
                  f"{s.vector_id_column}", {"memory_fragments": counts.fragments,
                                            "fragments_with_vector_id": counts.fragments_with_vector_id})


def check_blobs(counts: SourceCounts, config: CutoverConfig) -> CheckResult:
    """Runbook "Attachment BLOB count verified"."""
    s = config.schema_
    problems = []
    if counts.attachments_without_content:
        problems.append(f"{counts.attachments_without_content} {s.attachments_table} rows have neither "
                        f"{s.blob_column} nor {s.storage_path_column}: their content is already lost; restore them "
                        f"from the backup before the cutover")
    return result("count-blobs", problems,
                  f"{s.attachments_table}: {counts.attachments} attachments, {counts.attachments_with_blob} with a "
                  f"{s.blob_column} BLOB ({counts.blob_bytes} bytes)",
                  {"attachments": counts.attachments, "attachment_blobs": counts.attachments_with_blob,
                   "attachment_blob_bytes": counts.blob_bytes,
                   "attachments_without_content": counts.attachments_without_content})
