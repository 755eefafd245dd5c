"""The library entry points the sync-stage fixtures and ``cutover migrate`` call, taking the config.

Each returns a :class:`Outcome`: ``ok``, one line per finding, and the figures that
go to the ledger and the report (``figures.vectors`` per the report contract).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_cutover.config import CutoverConfig
from pytest_cutover.errors import ConfigError
from pytest_cutover.migrate.engine import VectorJob, VectorResult
from pytest_cutover.migrate.sink import VectorSchema
from pytest_cutover.migrate.source import SourceSpec
from pytest_cutover.redact import reveal

__all__ = ["Outcome", "blob_schema", "blobs", "parity", "source_spec", "vector_job", "vector_schema", "vectors"]


@dataclass
class Outcome:
    """What one migration step found: pass/fail, the reasons, and figures for the ledger."""

    kind: str
    ok: bool
    messages: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def _require(value: Any, key: str) -> Any:
    if value is None or value == "":
        raise ConfigError(f"missing config key {key}", hint=f"set {key} in cutover.toml")
    return value


def vector_schema(config: CutoverConfig) -> VectorSchema:
    sc = config.schema_
    return VectorSchema(table=sc.fragments_table, key=sc.vector_id_column, org=sc.tenant_column,
                        embedding=sc.embedding_column, state_schema=config.migrate.state_schema)


def source_spec(config: CutoverConfig) -> SourceSpec:
    src = config.source
    if not src.qdrant_path and not src.qdrant_url:
        raise ConfigError("missing config key source.qdrant_path or source.qdrant_url",
                          hint="point the config at the qdrant local folder or server")
    return SourceSpec(collection=src.collection, path=src.qdrant_path, url=src.qdrant_url,
                      api_key=reveal(src.qdrant_api_key), org_field=config.schema_.tenant_column,
                      timeout_s=config.thresholds.connect_timeout_s)


def vector_job(config: CutoverConfig, run_id: str, *, dry_run: bool = False, resume: bool = False,
               batch_size: int | None = None, pace_s: float = 0.0) -> VectorJob:
    mig = config.migrate
    return VectorJob(source=source_spec(config),
                     target_dsn=_require(reveal(config.target.database_url), "target.database_url"),
                     app_database_url=reveal(config.target.app_database_url), run_id=run_id,
                     schema=vector_schema(config), batch_size=batch_size or mig.batch_size,
                     queue_depth=mig.queue_depth, reader=mig.reader, dry_run=dry_run, resume=resume, pace_s=pace_s,
                     connect_timeout_s=config.thresholds.connect_timeout_s)


async def _vectors(config: CutoverConfig, job: VectorJob, *, verify: bool, verify_source: bool, index: bool,
                   parity: bool, on_progress: Callable[[int, int | None], None] | None,
                   on_event: Callable[[str, dict[str, Any]], None] | None) -> Outcome:
    from pytest_cutover.migrate import verify as v
    from pytest_cutover.migrate.engine import migrate_vectors
    from pytest_cutover.migrate.sink import connect_target, ensure_state_schema

    mig, th = config.migrate, config.thresholds
    result: VectorResult = await migrate_vectors(job, on_progress=on_progress, on_event=on_event)
    books = result.accounting
    verdict = books.check(th.migration_success)
    figures: dict[str, Any] = {**books.figures(), "bit_exact": 0, "recall_at_10": None, "hnsw_build_s": None,
                               "duration_s": round(result.duration_s, 3), "points_per_s": round(result.points_per_s, 1),
                               "written": result.written, "batches": result.batches_total,
                               "batches_sent": result.batches_sent, "resumed": result.resumed,
                               "dry_run": job.dry_run, "reader_ready_s": round(result.reader_ready_s, 3)}
    outcome = Outcome("vectors", verdict.ok, [verdict.message, *books.sample_lines(job.schema.key)], figures)
    if job.dry_run:
        outcome.messages.append("dry run: nothing was written")
        return outcome
    conn = await connect_target(job.target_dsn, timeout=job.connect_timeout_s, app_database_url=job.app_database_url)
    try:
        state_schema = await ensure_state_schema(conn, job.schema.state_schema)
        if verify:
            bits = await v.verify_digests(conn, job.schema, job.run_id, state_schema)
            figures.update(bit_exact=bits.bit_exact, verify_s=round(bits.duration_s, 3),
                           verify_ratio=round(bits.duration_s / result.duration_s, 3) if result.duration_s else None)
            if bits.checked != books.migrated:
                outcome.ok = False
                outcome.messages.append(f"verify: {bits.checked} digests recorded for {books.migrated} migrated points")
            if not bits.ok:
                outcome.ok = False
                outcome.messages.append(f"verify: {bits.checked - bits.bit_exact} of {bits.checked} vectors differ "
                                        f"from what was read; first keys: {', '.join(bits.mismatches)}")
            else:
                outcome.messages.append(f"verify: {bits.bit_exact} of {bits.checked} vectors bit-exact")
            figures["mismatch_samples"] = bits.mismatches
        if verify_source or mig.verify_source:
            source = job.source.open()
            try:
                src_bits = await v.verify_source(conn, source, job.schema)
            finally:
                source.close()
            figures.update(source_checked=src_bits.checked, source_bit_exact=src_bits.bit_exact,
                           verify_source_s=round(src_bits.duration_s, 3))
            if not src_bits.ok:
                outcome.ok = False
                outcome.messages.append(f"verify-source: {src_bits.checked - src_bits.bit_exact} of "
                                        f"{src_bits.checked} vectors differ from qdrant; first keys: "
                                        f"{', '.join(src_bits.mismatches)}")
            else:
                outcome.messages.append(f"verify-source: {src_bits.bit_exact} of {src_bits.checked} match qdrant")
        if result.dropped_indexes and not index:
            outcome.messages.append(f"hnsw index {', '.join(result.dropped_indexes)} was dropped for the load: "
                                    "rebuilding it although the index build was not requested")
        existing = await v.hnsw_indexes(conn, job.schema)
        if existing and not result.batches_sent and not result.dropped_indexes:
            figures.update(hnsw_index=existing[0], hnsw_build_s=0.0)
            outcome.messages.append(f"hnsw index {existing[0]} kept: nothing was sent in this run")
        elif index or result.dropped_indexes:
            build = await v.build_hnsw(conn, job.schema, workers=mig.hnsw_workers,
                                       maintenance_work_mem=mig.maintenance_work_mem, m=mig.hnsw_m,
                                       ef_construction=mig.hnsw_ef_construction)
            figures.update(hnsw_build_s=round(build.seconds, 3), hnsw_workers=build.workers, hnsw_index=build.name)
            outcome.messages.append(f"hnsw index {build.name} built in {build.seconds:.2f}s "
                                    f"({build.workers} parallel worker(s))")
    finally:
        await conn.close()
    if parity:
        source = job.source.open()
        try:
            sp = await v.search_parity(job.target_dsn, source, job.schema, samples_per_org=mig.search_samples_per_org,
                                       k=mig.search_k, ef_search=mig.ef_search, timeout=job.connect_timeout_s)
        finally:
            source.close()
        figures.update(recall_at_10=round(sp.recall, 4), search_queries=sp.queries, hnsw_index_used=sp.index_used,
                       planner_uses_hnsw=sp.planner_uses_index)
        if sp.recall + 1e-9 < th.recall_at_10:
            outcome.ok = False
            outcome.messages.append(f"search parity: recall@{sp.k} {sp.recall:.3f} over {sp.queries} queries is "
                                    f"below {th.recall_at_10}; worst: {sp.worst}")
        else:
            outcome.messages.append(f"search parity: recall@{sp.k} {sp.recall:.3f} over {sp.queries} queries")
        if sp.queries and not sp.index_used:
            outcome.ok = False
            outcome.messages.append("search parity: EXPLAIN shows the HNSW index is not used by the top-k query")
    return outcome


def vectors(config: CutoverConfig, run_id: str, *, dry_run: bool = False, resume: bool = False,
            verify: bool = True, verify_source: bool = False, index: bool = True, parity: bool = True,
            batch_size: int | None = None, pace_s: float = 0.0,
            on_progress: Callable[[int, int | None], None] | None = None,
            on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Outcome:
    """Migrate (or resume) the vectors, verify them bit for bit, build the HNSW index, check search parity."""
    t0 = time.perf_counter()
    job = vector_job(config, run_id, dry_run=dry_run, resume=resume, batch_size=batch_size, pace_s=pace_s)
    outcome = asyncio.run(_vectors(config, job, verify=verify, verify_source=verify_source, index=index and not dry_run,
                                   parity=parity and not dry_run, on_progress=on_progress, on_event=on_event))
    outcome.figures["total_s"] = round(time.perf_counter() - t0, 3)
    return outcome


def blob_schema(config: CutoverConfig) -> Any:
    from pytest_cutover.migrate.blobs import BlobSchema

    sc = config.schema_
    return BlobSchema(table=sc.attachments_table, key=sc.attachment_key, org=sc.tenant_column, blob=sc.blob_column,
                      path=sc.storage_path_column, bucket_column=sc.storage_bucket_column,
                      template=config.migrate.blob_path_template)


def _blob_lines(result: Any, row_key: str) -> list[str]:
    """One line per refusal reason of a BLOB step, naming its first row keys."""
    from pytest_cutover.migrate.accounting import bucket_line

    return [bucket_line(reason, n, "row", row_key, result.samples.get(reason, []))
            for reason, n in sorted(result.rejected_by_reason.items())]


async def _blobs(config: CutoverConfig, *, dry_run: bool, verify_only: bool, null_data: bool) -> Outcome:
    from pytest_cutover.migrate import blobs as b
    from pytest_cutover.migrate.sink import connect_target

    target = config.target
    dsn = _require(reveal(target.database_url), "target.database_url")
    storage = b.StorageClient(_require(target.storage_url, "target.storage_url"),
                              _require(reveal(target.storage_key), "target.storage_key"),
                              verify=ssl.create_default_context(cafile=target.ca_file) if target.ca_file else True,
                              timeout=config.thresholds.connect_timeout_s * 3)
    conn = await connect_target(dsn, timeout=config.thresholds.connect_timeout_s,
                                app_database_url=reveal(target.app_database_url))
    schema = blob_schema(config)
    try:
        outcome = Outcome("blobs", True)
        if not verify_only:
            moved = await b.migrate_blobs(conn, storage, target.bucket, schema, dry_run=dry_run)
            outcome.figures.update(moved.figures())
            outcome.ok = moved.rejected == 0
            outcome.messages.append(f"{moved.migrated} uploaded and verified, {moved.already_done} already in storage, "
                                    f"{moved.rejected} refused {moved.rejected_by_reason or ''}".rstrip())
            outcome.messages += _blob_lines(moved, schema.key)
            if dry_run:
                outcome.messages.append("dry run: nothing was uploaded or written")
                return outcome
        check = await b.verify_blobs(conn, storage, schema)
        outcome.figures.update(verified=check.migrated, verify_failed=check.rejected,
                               verify_samples=check.samples, verify_s=round(check.duration_s, 3))
        if check.rejected:
            outcome.ok = False
            outcome.messages.append(f"verify: {check.rejected} of {check.rows} objects differ from their rows")
            outcome.messages += [f"verify: {line}" for line in _blob_lines(check, schema.key)]
        else:
            outcome.messages.append(f"verify: {check.migrated} of {check.rows} objects match size and sha256")
        if null_data:
            nulled = await b.null_file_data(conn, storage, schema)
            outcome.figures["file_data_nulled"] = nulled.migrated
            outcome.messages.append(f"file_data set to NULL on {nulled.migrated} verified rows")
        orphans = await b.consistency(conn, schema)
        outcome.figures["rows_without_data"] = orphans
        if orphans:
            outcome.ok = False
            outcome.messages.append(f"consistency: {orphans} rows have neither file_data nor storage_path")
        return outcome
    finally:
        await storage.aclose()
        await conn.close()


def blobs(config: CutoverConfig, *, dry_run: bool = False, verify_only: bool = False,
          null_file_data: bool = False) -> Outcome:
    """Move attachments to Storage (verified before recording), verify every object, optionally null file_data."""
    return asyncio.run(_blobs(config, dry_run=dry_run, verify_only=verify_only, null_data=null_file_data))


async def _parity(config: CutoverConfig, tables: tuple[str, ...]) -> Outcome:
    from pytest_cutover.migrate.parity import SESSION_SETTINGS, table_parity
    from pytest_cutover.migrate.sink import connect_target

    timeout = config.thresholds.connect_timeout_s
    old = await connect_target(_require(reveal(config.source.database_url), "source.database_url"), timeout=timeout)
    new = await connect_target(_require(reveal(config.target.database_url), "target.database_url"), timeout=timeout,
                               app_database_url=reveal(config.target.app_database_url))
    outcome = Outcome("parity", True)
    try:
        for conn in (old, new):
            await conn.execute(SESSION_SETTINGS)
        for table in tables:
            found = await table_parity(old, new, table, tenant=config.schema_.tenant_column,
                                       exclude=config.migrate.parity_exclude)
            outcome.figures[table] = {"old_rows": found.old_rows, "new_rows": found.new_rows, "tenants": found.tenants,
                                      "mismatched_tenants": found.mismatched_tenants,
                                      "differing_keys": found.differing_keys, "ok": found.ok}
            if found.ok:
                outcome.messages.append(f"{table}: {found.new_rows} rows, {found.tenants} tenants identical")
            else:
                outcome.ok = False
                outcome.messages.append(f"{table}: old {found.old_rows} rows, target {found.new_rows}; tenants "
                                        f"differing: {', '.join(found.mismatched_tenants)}; keys: "
                                        f"{', '.join(found.differing_keys) or 'none found'}")
    finally:
        await old.close()
        await new.close()
    return outcome


def parity(config: CutoverConfig, tables: tuple[str, ...] | None = None) -> Outcome:
    """Counts and per-tenant checksums, old vs target, for the configured tables; bisects to differing keys."""
    return asyncio.run(_parity(config, tables or config.schema_.parity_tables))
