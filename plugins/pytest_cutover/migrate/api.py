"""The library entry points the sync-stage fixtures and ``cutover migrate`` call, taking the config.

Each returns a :class:`Outcome`: ``ok``, one line per finding, and the figures that
go to the ledger and the report (``figures.vectors`` per the report contract).
"""

from __future__ import annotations

import asyncio
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

__all__ = ["Outcome", "source_spec", "vector_job", "vector_schema", "vectors"]


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
                               "dry_run": job.dry_run}
    outcome = Outcome("vectors", verdict.ok, [verdict.message], figures)
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
        if index:
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
