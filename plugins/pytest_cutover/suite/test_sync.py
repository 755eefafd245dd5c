"""STEP 1 and STEP 2 of the runbook: maintenance mode on, the final data sync, consistency checks.

The fixtures here *do* the work: they enable maintenance by the configured method and verify it, run
the vector migration (every point accounted, bit for bit), move the BLOBs and compare the databases.
Maintenance stays on after this stage, as the runbook says, until the monitor stage turns it off.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig
from pytest_cutover.context import RunContext

pytestmark = pytest.mark.sync


@pytest.fixture(scope="module")
def maintenance(ctx: RunContext, needs: Any, announce_event: Any) -> Any:
    """Maintenance on, by the configured method, verified by ``/health``; left on for the later stages."""
    needs("app.maintenance", "app.health_url")
    from pytest_cutover.actions.maintenance import enable_maintenance

    result = enable_maintenance(ctx)
    announce_event("maintenance-enabled", detail=result.detail)
    return result


@pytest.fixture(scope="module")
def vectors(ctx: RunContext, cutover_config: CutoverConfig, needs: Any, maintenance: Any,
            announce_event: Any) -> Any:
    """The vector migration Qdrant -> pgvector (resumable; verified against what was read): a delta when this run
    has a pre-sync (only what changed since; the HNSW index kept), else a full copy.  Its ``migration`` ledger
    record (mode and figures) is what ``cutover plan`` learns the night's throughput from."""
    needs("source.qdrant_path|source.qdrant_url")
    from pytest_cutover.migrate.api import record_migration
    from pytest_cutover.migrate.api import vectors as migrate_vectors

    outcome = migrate_vectors(cutover_config, ctx.run, resume=True)
    record_migration(ctx, outcome, {"stage": "sync"})
    announce_event("vectors-copied", points=outcome.figures.get("points"), migrated=outcome.figures.get("migrated"))
    return outcome


@pytest.fixture(scope="module")
def blobs(ctx: RunContext, cutover_config: CutoverConfig, needs: Any, maintenance: Any, announce_event: Any) -> Any:
    """The BLOB migration attachments.file_data -> Storage (a delta after this run's pre-sync), then an
    independent verification pass."""
    needs("target.storage_url")
    from pytest_cutover.migrate.api import blobs as migrate_blobs
    from pytest_cutover.migrate.api import record_migration

    moved = migrate_blobs(cutover_config, run_id=ctx.run)
    record_migration(ctx, moved, {"stage": "sync"})
    announce_event("blobs-copied", migrated=moved.figures.get("migrated"))
    verified = migrate_blobs(cutover_config, verify_only=True)
    return moved, verified


@pytest.mark.runbook("Maintenance mode enabled")
def test_maintenance_mode_enabled(maintenance: Any) -> None:
    assert maintenance.ok, maintenance.detail


@pytest.mark.runbook("Vector migration completed successfully")
def test_vector_migration_completed(vectors: Any, record_figure: Any) -> None:
    record_figure("vectors", vectors.figures)
    assert vectors.ok, "; ".join(vectors.messages)
    figures = vectors.figures
    assert figures["migrated"] + figures["rejected"] == figures["points"]


@pytest.mark.runbook("Vector counts should match: every vector re-read from Qdrant equals the target's, bit for bit")
def test_vectors_bit_exact_against_the_source(ctx: RunContext, cutover_config: CutoverConfig, vectors: Any,
                                              record_figure: Any) -> None:
    from pytest_cutover.checks.base import run_sync
    from pytest_cutover.migrate import verify
    from pytest_cutover.migrate.api import source_spec, vector_schema
    from pytest_cutover.migrate.sink import connect_target
    from pytest_cutover.redact import reveal

    async def check() -> Any:
        conn = await connect_target(reveal(cutover_config.target.database_url),
                                    timeout=cutover_config.thresholds.connect_timeout_s,
                                    app_database_url=reveal(cutover_config.target.app_database_url))
        source = source_spec(cutover_config).open()
        try:
            return await verify.verify_source(conn, source, vector_schema(cutover_config))
        finally:
            source.close()
            await conn.close()

    bits = run_sync(check())
    record_figure("vectors_source_check", {"checked": bits.checked, "bit_exact": bits.bit_exact})
    assert bits.ok, (f"{bits.checked - bits.bit_exact} of {bits.checked} vectors in the target differ from Qdrant; "
                     f"first keys: {', '.join(bits.mismatches)}: re-run `cutover migrate vectors` for them")


@pytest.mark.runbook("Compare vector counts")
def test_consistency_vector_counts(cutover_config: CutoverConfig, sql: Any, vectors: Any, record_figure: Any) -> None:
    sc = cutover_config.schema_
    (row,) = sql("target.database_url",
                 f"SELECT COUNT(*) AS total, COUNT({sc.embedding_column}) AS with_vectors, "
                 f"COUNT({sc.vector_id_column}) AS with_qdrant_id FROM {sc.fragments_table}")
    counts = dict(row)
    record_figure("fragments", counts)
    assert counts["with_vectors"] == vectors.figures["migrated"], (
        f"{counts['with_vectors']} fragments have an embedding but the migration wrote {vectors.figures['migrated']}")
    missing = counts["with_qdrant_id"] - counts["with_vectors"]
    assert missing == 0, (f"{missing} fragments have a {sc.vector_id_column} but no embedding: "
                          "see the migration's rejected/missing samples in the report")


@pytest.mark.runbook("Check for any NULL file_data without storage_path")
def test_consistency_no_attachment_without_data(cutover_config: CutoverConfig, sql: Any, blobs: Any) -> None:
    sc = cutover_config.schema_
    (row,) = sql("target.database_url",
                 f"SELECT COUNT(*) AS n FROM {sc.attachments_table} "
                 f"WHERE {sc.blob_column} IS NULL AND {sc.storage_path_column} IS NULL")
    assert row["n"] == 0, f"{row['n']} attachments have neither {sc.blob_column} nor {sc.storage_path_column}"


@pytest.mark.runbook("Verify org isolation still working")
def test_consistency_org_count(cutover_config: CutoverConfig, sql: Any, vectors: Any) -> None:
    sc = cutover_config.schema_
    query = f"SELECT COUNT(DISTINCT {sc.tenant_column}) AS n FROM {sc.fragments_table}"
    (new,) = sql("target.database_url", query)
    (old,) = sql("source.database_url", query)
    assert new["n"] == old["n"], f"{sc.fragments_table}: {new['n']} orgs in the target, {old['n']} in the old database"


@pytest.mark.runbook("BLOB migration script run")
def test_blob_migration(blobs: Any, record_figure: Any) -> None:
    moved, verified = blobs
    record_figure("blobs", {**moved.figures, "verify_failed": verified.figures.get("verify_failed")})
    assert moved.ok, "; ".join(moved.messages)
    assert verified.ok, "; ".join(verified.messages)


@pytest.mark.runbook("Verify Data Consistency: the relational data in the target equals the old database, table by "
                     "table")
def test_relational_parity(cutover_config: CutoverConfig, needs: Any, maintenance: Any, record_figure: Any) -> None:
    needs("source.database_url")
    from pytest_cutover.migrate.api import parity

    outcome = parity(cutover_config)
    record_figure("parity", outcome.figures)
    assert outcome.ok, "; ".join(outcome.messages)
