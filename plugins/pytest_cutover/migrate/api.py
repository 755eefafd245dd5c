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
from pytest_cutover.ledger import iso_utc
from pytest_cutover.migrate.engine import VectorJob, VectorResult
from pytest_cutover.migrate.sink import VectorSchema
from pytest_cutover.migrate.source import SourceSpec
from pytest_cutover.redact import reveal

__all__ = [
    "Outcome",
    "blob_schema",
    "blobs",
    "ledger_record",
    "parity",
    "record_migration",
    "source_spec",
    "vector_job",
    "vector_schema",
    "vectors",
]


@dataclass
class Outcome:
    """What one migration step found: pass/fail, the reasons, and figures for the ledger."""

    kind: str
    ok: bool
    messages: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    mode: str = "full"  # full, presync or delta (the ledger record's ``mode``)


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
               batch_size: int | None = None, pace_s: float = 0.0, mode: str = "auto") -> VectorJob:
    mig = config.migrate
    return VectorJob(source=source_spec(config),
                     target_dsn=_require(reveal(config.target.database_url), "target.database_url"),
                     app_database_url=reveal(config.target.app_database_url), run_id=run_id,
                     schema=vector_schema(config), batch_size=batch_size or mig.batch_size,
                     queue_depth=mig.queue_depth, reader=mig.reader, dry_run=dry_run, resume=resume, pace_s=pace_s,
                     connect_timeout_s=config.thresholds.connect_timeout_s, mode=mode)  # type: ignore[arg-type]


def _engine_figures(result: VectorResult, job: VectorJob) -> dict[str, Any]:
    """The engine's figures: the books, the clock, and the keys ``cutover plan`` reads (see MigrationRecord)."""
    busy, delta = result.busy, result.delta
    figures: dict[str, Any] = {
        **result.accounting.figures(), "bit_exact": 0, "recall_at_10": None, "hnsw_build_s": None,
        "duration_s": round(result.duration_s, 3), "points_per_s": round(result.points_per_s, 1),
        "written": result.written, "batches": result.batches_total, "batches_sent": result.batches_sent,
        "resumed": result.resumed, "dry_run": job.dry_run, "reader_ready_s": round(result.reader_ready_s, 3),
        "mode": result.mode, "items": result.points_read_this_run, "sent": result.points_sent,
        "read_s": round(busy.get("scroll_s", 0.0) + busy.get("screen_s", 0.0), 3),
        "write_s": round(busy.get("writing_s", 0.0), 3), "migrate_s": round(result.duration_s, 3),
        "items_per_s": round(result.points_per_s, 1), "round_trips": result.round_trips, "index_s": 0.0,
        "verify_s": 0.0, "at": iso_utc()}
    if result.mode == "delta":
        figures.update(presync_at=result.presync_at, delta=dict(sorted(delta.items())),
                       added=delta.get("added", 0), deleted=delta.get("deleted", 0),
                       changed=sum(delta.get(k, 0) for k in ("changed_vector", "changed_payload", "retried")),
                       unchanged=delta.get("unchanged", 0), deleted_samples=result.deleted_sample)
    return figures


def _delta_lines(result: VectorResult, row_key: str) -> list[str]:
    """What a delta final sync found changed since the pre-sync, with the first deleted keys."""
    if result.mode != "delta":
        return []
    d = result.delta
    lines = [f"delta since the pre-sync of {result.presync_at}: {d.get('added', 0)} added, "
             f"{d.get('changed_vector', 0)} vectors changed, {d.get('changed_payload', 0)} payloads changed, "
             f"{d.get('retried', 0)} refused before and sent again, {d.get('unchanged', 0)} unchanged (not sent); "
             f"HNSW index kept"]
    if d.get("deleted"):
        from pytest_cutover.migrate.accounting import bucket_line

        lines.append(bucket_line("deleted", d["deleted"], "point", "point ids", result.deleted_sample,
                                 what=" gone from qdrant since the pre-sync (their rows' embeddings cleared: "
                                      f"{d.get('cleared', 0)} rows this run)"))
    return lines


async def _bit_check(conn: Any, job: VectorJob, state_schema: str, books: Any, result: VectorResult,
                     outcome: Outcome) -> None:
    """Every recorded read digest against the server's (the final sync: every row it accounts for)."""
    from pytest_cutover.migrate import verify as v

    figures = outcome.figures
    bits = await v.verify_digests(conn, job.schema, job.run_id, state_schema, kind=job.kind,
                                  pinned=result.pinned > 0)
    if result.pinned:
        await v.drop_pins(conn, job.run_id, state_schema)
    figures.update(bit_exact=bits.bit_exact, verify_s=round(bits.duration_s, 3), verified_by_pin=bits.by_pin,
                   pinned=result.pinned, pin_s=result.pin_s,
                   verify_ratio=round(bits.duration_s / result.duration_s, 3) if result.duration_s else None)
    if bits.checked != books.migrated:
        outcome.ok = False
        outcome.messages.append(f"verify: {bits.checked} digests recorded for {books.migrated} migrated points")
    if not bits.ok:
        outcome.ok = False
        outcome.messages.append(f"verify: {bits.checked - bits.bit_exact} of {bits.checked} vectors differ "
                                f"from what was read; first keys: {', '.join(bits.mismatches)}")
    else:
        how = (f" ({bits.by_pin} by a tuple unchanged since it was hashed during the read, the rest hashed now)"
               if bits.by_pin else "")
        outcome.messages.append(f"verify: {bits.bit_exact} of {bits.checked} vectors bit-exact{how}")
    figures["mismatch_samples"] = bits.mismatches


async def _source_check(conn: Any, job: VectorJob, outcome: Outcome) -> None:
    """Re-read Qdrant and compare it with the target (``--verify-source``)."""
    from pytest_cutover.migrate import verify as v

    source = job.source.open()
    try:
        src_bits = await v.verify_source(conn, source, job.schema)
    finally:
        source.close()
    outcome.figures.update(source_checked=src_bits.checked, source_bit_exact=src_bits.bit_exact,
                           verify_source_s=round(src_bits.duration_s, 3))
    if not src_bits.ok:
        outcome.ok = False
        outcome.messages.append(f"verify-source: {src_bits.checked - src_bits.bit_exact} of "
                                f"{src_bits.checked} vectors differ from qdrant; first keys: "
                                f"{', '.join(src_bits.mismatches)}")
    else:
        outcome.messages.append(f"verify-source: {src_bits.bit_exact} of {src_bits.checked} match qdrant")


async def _index(conn: Any, config: CutoverConfig, job: VectorJob, result: VectorResult, index: bool,
                 outcome: Outcome) -> None:
    """Build the HNSW index after a full load; keep it when nothing dropped it (a delta, or nothing sent)."""
    from pytest_cutover.migrate import verify as v

    mig, figures = config.migrate, outcome.figures
    if result.dropped_indexes and not index:
        outcome.messages.append(f"hnsw index {', '.join(result.dropped_indexes)} was dropped for the load: "
                                "rebuilding it although the index build was not requested")
    existing = await v.hnsw_indexes(conn, job.schema)
    if existing and not result.dropped_indexes and (result.mode == "delta" or not result.batches_sent):
        figures.update(hnsw_index=existing[0], hnsw_build_s=0.0)
        why = "a delta writes into it" if result.mode == "delta" else "nothing was sent in this run"
        outcome.messages.append(f"hnsw index {existing[0]} kept: {why}")
    elif index or result.dropped_indexes:
        build = await v.build_hnsw(conn, job.schema, workers=mig.hnsw_workers,
                                   maintenance_work_mem=mig.maintenance_work_mem, m=mig.hnsw_m,
                                   ef_construction=mig.hnsw_ef_construction)
        figures.update(hnsw_build_s=round(build.seconds, 3), hnsw_workers=build.workers, hnsw_index=build.name,
                       index_s=round(build.seconds, 3))
        outcome.messages.append(f"hnsw index {build.name} built in {build.seconds:.2f}s "
                                f"({build.workers} parallel worker(s))")


async def _search_parity(config: CutoverConfig, job: VectorJob, outcome: Outcome) -> None:
    """Recall@k of pgvector's HNSW against Qdrant's exact search, and EXPLAIN proof the index answers."""
    from pytest_cutover.migrate import verify as v

    mig, th, figures = config.migrate, config.thresholds, outcome.figures
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


async def _vectors(config: CutoverConfig, job: VectorJob, *, verify: bool, verify_source: bool, index: bool,
                   parity: bool, on_progress: Callable[[int, int | None], None] | None,
                   on_event: Callable[[str, dict[str, Any]], None] | None) -> Outcome:
    from pytest_cutover.migrate.engine import migrate_vectors
    from pytest_cutover.migrate.sink import connect_target, ensure_state_schema

    result: VectorResult = await migrate_vectors(job, on_progress=on_progress, on_event=on_event)
    books = result.accounting
    verdict = books.check(config.thresholds.migration_success)
    outcome = Outcome("vectors", verdict.ok, [*result.notes, verdict.message, *books.sample_lines(job.schema.key),
                                              *_delta_lines(result, job.schema.key)],
                      _engine_figures(result, job), mode=result.mode)
    if job.dry_run:
        outcome.messages.append("dry run: nothing was written")
        return outcome
    conn = await connect_target(job.target_dsn, timeout=job.connect_timeout_s, app_database_url=job.app_database_url)
    try:
        state_schema = await ensure_state_schema(conn, job.schema.state_schema)
        if verify:
            await _bit_check(conn, job, state_schema, books, result, outcome)
        if verify_source or config.migrate.verify_source:
            await _source_check(conn, job, outcome)
        await _index(conn, config, job, result, index, outcome)
    finally:
        await conn.close()
    if parity:
        t0 = time.perf_counter()
        await _search_parity(config, job, outcome)
        outcome.figures["parity_s"] = round(time.perf_counter() - t0, 3)
    return outcome


def vectors(config: CutoverConfig, run_id: str, *, dry_run: bool = False, resume: bool = False,
            verify: bool = True, verify_source: bool = False, index: bool = True, parity: bool = True,
            batch_size: int | None = None, pace_s: float = 0.0, mode: str = "auto",
            on_progress: Callable[[int, int | None], None] | None = None,
            on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Outcome:
    """Migrate (or resume) the vectors, verify them bit for bit, build the HNSW index, check search parity.

    ``mode``: ``presync`` (Day 7, the app live: everything under the pre-sync's own checkpoint, index built),
    ``auto`` (the final sync: a delta against this run's pre-sync when there is one, else full), ``full``.
    """
    t0 = time.perf_counter()
    job = vector_job(config, run_id, dry_run=dry_run, resume=resume, batch_size=batch_size, pace_s=pace_s, mode=mode)
    outcome = asyncio.run(_vectors(config, job, verify=verify, verify_source=verify_source, index=index and not dry_run,
                                   parity=parity and not dry_run, on_progress=on_progress, on_event=on_event))
    outcome.figures["total_s"] = round(time.perf_counter() - t0, 3)
    outcome.figures["at"] = iso_utc()
    return outcome


def ledger_record(outcome: Outcome, options: dict[str, Any]) -> dict[str, Any]:
    """The ``migration`` ledger record of one step (see :class:`~pytest_cutover.records.MigrationRecord`).

    ``options`` are the step's own settings (mode, resume, who ran it); the stamp's ``args`` is the command
    line of the invocation, a different thing, so the two live under different keys."""
    return {"kind": "migration", "step": outcome.kind, "ok": outcome.ok, "mode": outcome.mode,
            "messages": outcome.messages, "figures": outcome.figures, "options": options, "end": iso_utc()}


def record_migration(ctx: Any, outcome: Outcome, options: dict[str, Any]) -> None:
    """Append one step's ``migration`` record, stamped, to the run's ledger: the one way every caller (the
    command, the sync stage, the rehearsal's pre-sync) records it, so ``cutover plan`` reads them alike."""
    ctx.ledger.append({**ctx.stamp(), **ledger_record(outcome, options)})


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


async def _blob_books(conn: Any, config: CutoverConfig, run_id: str | None, mode: str) -> tuple[str, str | None]:
    """The state schema for a BLOB pre-sync's record, and the mode this step runs in: a final sync (``auto``)
    with this run's BLOB pre-sync becomes a ``delta``; ``presync`` and ``full`` stay as asked."""
    from pytest_cutover.migrate.sink import ensure_state_schema, state_tables

    if run_id is None or mode == "full":
        return "full", None
    state_schema = await ensure_state_schema(conn, config.migrate.state_schema)
    await conn.execute(state_tables(state_schema))
    return mode, state_schema


async def _blobs(config: CutoverConfig, *, dry_run: bool, verify_only: bool, null_data: bool,
                 run_id: str | None = None, mode: str = "auto") -> Outcome:
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
        mode, state_schema = (("full", None) if dry_run or verify_only else
                              await _blob_books(conn, config, run_id, mode))
        if mode == "auto":
            delta = await b.delta_since_presync(conn, schema, run_id or "", state_schema or "", target.bucket)
            mode = "full" if delta is None else "delta"
            if delta is not None:
                outcome.figures.update(delta)
                outcome.messages.append(f"delta since the pre-sync of {delta['presync_at']}: {delta['added']} rows "
                                        f"not in it, {delta['changed']} changed (sent again; first: "
                                        f"{', '.join(delta['changed_samples']) or 'none'}), {delta['deleted']} "
                                        "deleted since (their objects stay in storage)")
        outcome.mode = mode
        if not verify_only:
            moved = await b.migrate_blobs(conn, storage, target.bucket, schema, dry_run=dry_run)
            outcome.figures.update(moved.figures())
            outcome.figures.update(items=moved.rows, sent=moved.migrated, write_s=round(moved.duration_s, 3),
                                   read_s=None, index_s=0.0, items_per_s=round(moved.migrated / moved.duration_s, 1)
                                   if moved.duration_s > 0 else 0.0)
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
        if mode == "presync" and outcome.ok:
            recorded = await b.record_presync(conn, schema, run_id or "", state_schema or "", target.bucket)
            outcome.figures["presync_recorded"] = recorded
            outcome.messages.append(f"pre-sync: {recorded} rows recorded for the final sync's delta")
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
          null_file_data: bool = False, run_id: str | None = None, mode: str = "auto") -> Outcome:
    """Move attachments to Storage (verified before recording), verify every object, optionally null file_data.

    With ``run_id``: ``mode="presync"`` also records, per row in storage, the digest of its checked fields;
    ``auto`` (the final sync) then re-sends the rows changed since that pre-sync (a ``delta``).
    """
    t0 = time.perf_counter()
    outcome = asyncio.run(_blobs(config, dry_run=dry_run, verify_only=verify_only, null_data=null_file_data,
                                 run_id=run_id, mode=mode))
    outcome.figures.update(total_s=round(time.perf_counter() - t0, 3), at=iso_utc())
    return outcome


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
