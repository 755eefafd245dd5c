"""The vector engine against a real embedded PostgreSQL + pgvector and a real qdrant local-mode folder."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cutover.migrate import api

pytestmark = pytest.mark.integration


def test_clean_migration_is_complete_bit_exact_and_searchable(make_world):
    world = make_world(600, unembedded=4)
    outcome = api.vectors(world.config(), "clean", verify_source=True)
    f = outcome.figures
    assert outcome.ok, outcome.messages
    assert (f["points"], f["migrated"], f["rejected"], f["missing"], f["bit_exact"]) == (600, 600, 0, 0, 600)
    assert f["source_bit_exact"] == f["source_checked"] == 600
    assert f["recall_at_10"] >= 0.95 and f["hnsw_index_used"] is True and f["hnsw_build_s"] > 0
    assert f["written"] == 600 and f["batches"] == 3
    # the server holds exactly qdrant's float32 values
    rows = world.sql("SELECT vector_id::text AS k, vector_send(embedding) AS b FROM memory_fragments "
                     "WHERE embedding IS NOT NULL")
    by_id = dict(zip(world.ids, world.vectors, strict=True))
    from pytest_cutover.migrate.digest import decode_vector

    assert len(rows) == 600
    assert all(np.array_equal(decode_vector(bytes(r["b"])), by_id[r["k"]]) for r in rows)


def test_each_bad_point_lands_in_its_bucket(make_world):
    world = make_world(300, missing=2, no_row=2, org_mismatch=3, nan=1)
    outcome = api.vectors(world.config(), "bad", index=False, parity=False)
    f = outcome.figures
    assert not outcome.ok
    assert f["points"] == 300 - 2 + 2
    assert f["rejected_by_reason"] == {"nan-or-inf": 1, "no-matching-row": 2, "org-mismatch": 3}
    assert f["migrated"] + f["rejected"] == f["points"] and f["missing"] == 2
    for bucket in ("missing", "no-matching-row", "org-mismatch", "nan-or-inf"):
        assert sorted(f["samples"][bucket]) == world.planted[bucket], bucket
    assert f["bit_exact"] == f["migrated"] == 300 - 2 - 3 - 1
    assert outcome.messages[0] == ("294 of 300 points migrated, 6 rejected (nan-or-inf 1, no-matching-row 2, "
                                   "org-mismatch 3), 2 rows missing a point: success 97.35% is below the required "
                                   "100.00%")
    for bucket in ("nan-or-inf", "no-matching-row", "org-mismatch", "missing"):  # each bucket names its keys
        assert any(line.startswith(f"{bucket}: ") and all(k in line for k in world.planted[bucket])
                   for line in outcome.messages[1:]), (bucket, outcome.messages)
    # rejected points never reach their rows
    bad = world.planted["org-mismatch"] + world.planted["nan-or-inf"]
    rows = world.sql("SELECT count(*) AS n FROM memory_fragments WHERE vector_id::text = ANY($1) "
                     "AND embedding IS NOT NULL", bad)
    assert rows[0]["n"] == 0


def test_every_reason_through_the_engine_with_an_in_memory_source(make_world):
    import asyncio
    import uuid

    from pytest_cutover.migrate.engine import VectorJob, migrate_vectors
    from pytest_cutover.migrate.source import FakeSource, SourceSpec

    world = make_world(6)
    ok = [(world.ids[i], world.orgs[i], world.vectors[i]) for i in range(6)]
    points = [ok[0], ok[1],
              (world.ids[2], world.orgs[2], world.vectors[2][:100]),            # wrong dimension
              (world.ids[3], world.orgs[3], np.full(1536, np.inf, np.float32)),  # inf
              (world.ids[4], "org_0009", world.vectors[4]),                      # org mismatch
              (str(uuid.UUID(int=7)), "org_0001", world.vectors[0]),            # no matching row
              (world.ids[1].upper(), world.orgs[1], world.vectors[1]),           # duplicate id
              ("not-a-uuid", "org_0001", world.vectors[0])]                      # cannot match a uuid key
    job = VectorJob(source=SourceSpec(collection="fake", fake=FakeSource(1536, points)), target_dsn=world.target_dsn,
                    run_id="fake", batch_size=3, reader="thread")
    result = asyncio.run(migrate_vectors(job))
    books = result.accounting
    assert books.rejected_by_reason == {"duplicate-id": 1, "nan-or-inf": 1, "no-matching-row": 2,
                                       "org-mismatch": 1, "wrong-dimension": 1}
    assert (books.points, books.migrated, books.missing) == (8, 2, 1)
    assert books.samples["missing"] == [world.ids[5]]


def test_running_twice_changes_nothing(make_world):
    world = make_world(300)
    first = api.vectors(world.config(), "twice", index=False, parity=False)
    before = world.sql("SELECT vector_id, xmin::text AS x, sha256(vector_send(embedding)) AS d FROM memory_fragments")
    second = api.vectors(world.config(), "twice", index=False, parity=False)
    after = world.sql("SELECT vector_id, xmin::text AS x, sha256(vector_send(embedding)) AS d FROM memory_fragments")
    assert first.ok and second.ok
    assert first.figures["written"] == 300 and second.figures["written"] == 0
    assert sorted(map(tuple, before)) == sorted(map(tuple, after))  # same values, same row versions
    assert second.figures["bit_exact"] == 300


def test_a_single_flipped_float_in_the_target_is_caught(make_world):
    import asyncio

    from pytest_cutover.migrate import verify
    from pytest_cutover.migrate.sink import connect_target, ensure_state_schema

    world = make_world(300)
    assert api.vectors(world.config(), "flip", index=False, parity=False).ok
    victim = sorted(world.ids)[123]
    vec = world.vectors[world.ids.index(victim)].copy()
    vec.view(np.uint32)[77] ^= 1  # one bit of one float
    world.sql("UPDATE memory_fragments SET embedding = $1::float4[]::vector WHERE vector_id::text = $2",
              vec.tolist(), victim)

    async def check():
        conn = await connect_target(world.target_dsn)
        try:
            schema = api.vector_schema(world.config())
            bits = await verify.verify_digests(conn, schema, "flip", await ensure_state_schema(conn, "cutover"))
            source = api.source_spec(world.config()).open()
            try:
                src = await verify.verify_source(conn, source, schema)
            finally:
                source.close()
            return bits, src
        finally:
            await conn.close()

    bits, src = asyncio.run(check())
    assert (bits.checked, bits.bit_exact, bits.mismatches) == (300, 299, [victim])
    assert (src.checked, src.bit_exact, src.mismatches) == (300, 299, [victim])


def test_dry_run_accounts_without_writing(make_world):
    world = make_world(300, missing=1, org_mismatch=1)
    outcome = api.vectors(world.config(), "dry", dry_run=True)
    f = outcome.figures
    assert (f["points"], f["migrated"], f["rejected"], f["missing"]) == (299, 298, 1, 1)
    assert "dry run: nothing was written" in outcome.messages
    assert world.sql("SELECT count(embedding) AS n FROM memory_fragments")[0]["n"] == 0
    assert world.sql("SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'cutover_%'")[0]["n"] == 0


def test_an_existing_hnsw_index_is_dropped_for_the_load_and_rebuilt_after(make_world):
    world = make_world(200)
    world.sql("CREATE INDEX app_embedding_idx ON memory_fragments USING hnsw (embedding vector_cosine_ops)")
    outcome = api.vectors(world.config(), "reindex", index=False, parity=False)
    assert outcome.ok
    assert any("app_embedding_idx was dropped for the load" in m for m in outcome.messages)
    names = [r["n"] for r in world.sql("SELECT indexrelid::regclass::text AS n FROM pg_index i JOIN pg_class c "
                                       "ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                                       "WHERE i.indrelid = 'memory_fragments'::regclass AND a.amname = 'hnsw'")]
    assert names == ["memory_fragments_embedding_hnsw_idx"]


def test_resuming_a_finished_run_sends_nothing_and_keeps_the_index(make_world):
    world = make_world(150)
    first = api.vectors(world.config(), "finished", parity=False)
    again = api.vectors(world.config(), "finished", resume=True, parity=False)
    assert first.ok and again.ok
    assert again.figures["batches_sent"] == 0 and again.figures["resumed"] is True
    assert (again.figures["points"], again.figures["migrated"], again.figures["bit_exact"]) == (150, 150, 150)
    assert any("kept: nothing was sent" in m for m in again.messages)


def test_verify_source_skips_points_without_a_dense_vector(make_world):
    import asyncio

    from pytest_cutover.migrate import verify
    from pytest_cutover.migrate.sink import connect_target
    from pytest_cutover.migrate.source import FakeSource

    world = make_world(3)
    assert api.vectors(world.config(), "skip", index=False, parity=False).ok
    points = [(world.ids[i], world.orgs[i], world.vectors[i]) for i in range(3)]
    points.append(("6f9619ff-8b86-d011-b42d-00c04fc964ff", "org_0001", {"legacy-768": [0.1] * 768}))

    async def check():
        conn = await connect_target(world.target_dsn)
        try:
            return await verify.verify_source(conn, FakeSource(1536, points), api.vector_schema(world.config()))
        finally:
            await conn.close()

    bits = asyncio.run(check())
    assert (bits.checked, bits.bit_exact) == (3, 3)


def test_rows_sharing_a_vector_id_are_rejected_by_name_and_the_run_completes(make_world):
    world = make_world(300, dup_rows=2)
    outcome = api.vectors(world.config(), "dup", index=False, parity=False)
    f = outcome.figures
    dup = world.planted["duplicate-row-key"]
    assert f["rejected_by_reason"] == {"duplicate-row-key": 2}, outcome.messages
    assert sorted(f["samples"]["duplicate-row-key"]) == dup
    assert f["points"] == 300 and f["migrated"] == 298 and f["missing"] == 0
    assert f["bit_exact"] == 298 and f["batches"] == 2
    assert any(all(k in line for k in dup) for line in outcome.messages), outcome.messages
    # neither row of a shared key gets a vector: which one the point belongs to is for a human to decide
    rows = world.sql("SELECT count(*) AS n FROM memory_fragments WHERE vector_id::text = ANY($1) "
                     "AND embedding IS NOT NULL", dup)
    assert rows[0]["n"] == 0
    done = world.sql("SELECT done FROM public.cutover_migration_checkpoint WHERE run_id = 'dup'")
    assert [r["done"] for r in done] == [True]
