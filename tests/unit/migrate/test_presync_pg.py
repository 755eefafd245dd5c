"""Pre-sync on Day 7, delta final sync in the window: each kind of change carried, verified, and refused when the
pre-sync was taken from elsewhere.  Small worlds (a few hundred points) on the embedded target + qdrant local mode."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import numpy as np
import pytest
from test_kill_resume import _events, _kill_when

from conftest import ORGS, clustered
from pytest_cutover.migrate import api
from pytest_cutover.migrate.errors import MigrationError

pytestmark = pytest.mark.integration

N = 240
RUN = "night"


def _embeddings(world) -> dict[str, bytes | None]:
    """key -> sha256 of the stored vector (None: no embedding), for every fragment row."""
    rows = world.sql("SELECT vector_id::text AS k, sha256(vector_send(embedding)) AS d FROM memory_fragments "
                     "WHERE vector_id IS NOT NULL")
    return {r["k"]: None if r["d"] is None else bytes(r["d"]) for r in rows}


def _index_oid(world) -> int | None:
    rows = world.sql("SELECT to_regclass('public.memory_fragments_embedding_hnsw_idx')::oid AS o")
    return rows[0]["o"]


def _change_qdrant(world) -> dict[str, str]:
    """Change points after the pre-sync as a live app would: one vector, one payload org (its row moved along),
    one payload org that no longer matches its row, one new point (with its row), one deleted point (its row
    stays).  Returns which key got which change."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(99)
    ids = world.ids
    changed_vec, moved, mismatched, deleted = ids[10], ids[11], ids[12], ids[13]
    added = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    new_org = next(o for o in ORGS if o != world.orgs[11])
    client = QdrantClient(path=str(world.qdrant_path))
    try:
        [vec_point] = client.retrieve("dac_memory", [changed_vec], with_payload=True)
        client.upsert("dac_memory", points=[
            models.PointStruct(id=changed_vec, vector=clustered(rng, [ORGS[0]])[0].tolist(),
                               payload=vec_point.payload)], wait=True)
        client.set_payload("dac_memory", {"org_id": new_org}, points=[moved], wait=True)
        client.set_payload("dac_memory", {"org_id": "org_9999"}, points=[mismatched], wait=True)
        client.upsert("dac_memory", points=[models.PointStruct(id=added, vector=clustered(rng, [ORGS[1]])[0].tolist(),
                                                                payload={"org_id": ORGS[1]})], wait=True)
        client.delete("dac_memory", points_selector=models.PointIdsList(points=[deleted]), wait=True)
    finally:
        client.close()
    world.sql("UPDATE memory_fragments SET org_id = $1, user_id = $2 WHERE vector_id = $3::uuid", new_org,
              f"user_{new_org[-4:]}_01", moved, dsn=world.target_dsn)
    world.sql("INSERT INTO memory_fragments (org_id, user_id, tier, content, vector_id) VALUES ($1, $2, 'shared', "
              "'new', $3::uuid)", ORGS[1], f"user_{ORGS[1][-4:]}_01", added, dsn=world.target_dsn)
    return {"changed_vector": changed_vec, "moved": moved, "mismatched": mismatched, "added": added,
            "deleted": deleted}


def test_presync_then_delta_carries_every_kind_of_change_and_matches_a_full_sync(make_world):
    world = make_world(N)
    config = world.config()
    pre = api.vectors(config, RUN, mode="presync", parity=False)
    assert pre.ok and pre.mode == "presync", pre.messages
    assert (pre.figures["migrated"], pre.figures["bit_exact"], pre.figures["items"]) == (N, N, N)
    assert pre.figures["index_s"] > 0 and _index_oid(world) is not None  # the pre-sync builds the index
    oid = _index_oid(world)
    kinds = {r["kind"]: r["n"] for r in world.sql("SELECT kind, count(*) AS n FROM public.cutover_migration_seen "
                                                  "WHERE digest IS NOT NULL AND org IS NOT NULL GROUP BY kind")}
    assert kinds == {"vectors-presync": N}  # per key: the read-time digest and the checked payload field

    change = _change_qdrant(world)
    delta = api.vectors(config, RUN, resume=True, parity=True)
    f = delta.figures
    assert delta.mode == f["mode"] == "delta"
    assert f["delta"] == {"added": 1, "changed_vector": 1, "changed_payload": 2, "unchanged": N - 4, "deleted": 1,
                          "cleared": 2}, f["delta"]  # cleared: the mismatched row and the deleted point's row
    assert (f["added"], f["changed"], f["deleted"], f["unchanged"]) == (1, 3, 1, N - 4)
    assert f["sent"] == 4 and f["items"] == N  # every point read, only the changed ones sent
    assert f["samples"]["org-mismatch"] == [change["mismatched"]] and f["samples"]["missing"] == [change["deleted"]]
    assert f["deleted_samples"] == [change["deleted"]]
    assert f["bit_exact"] == f["migrated"] == N - 1  # the full verification: every accounted row bit-exact
    # ... most of it proved by tuples pinned while the reader opened qdrant: the rows written since (the changed
    # vector, the added point's row: possibly after the pin took its snapshot) were hashed at the end
    assert f["pinned"] >= N - 1 and N - 3 <= f["verified_by_pin"] <= N - 1, (f["pinned"], f["verified_by_pin"])
    assert not world.sql("SELECT 1 FROM public.cutover_migration_pin WHERE run_id = $1", RUN)  # used, then dropped
    assert f["hnsw_build_s"] == 0.0 and _index_oid(world) == oid, "the delta must keep the HNSW index"
    assert f["recall_at_10"] >= 0.9 and f["hnsw_index_used"]
    assert not delta.ok  # the org mismatch and the deleted point's row fail the 100% tolerance, as a full sync would
    assert any(m.startswith("deleted: 1 point gone from qdrant") for m in delta.messages), delta.messages
    after_delta = _embeddings(world)
    assert after_delta[change["mismatched"]] is None and after_delta[change["deleted"]] is None

    # the same data from scratch with a full sync: the target ends identical, row for row
    world.sql("UPDATE memory_fragments SET embedding = NULL", dsn=world.target_dsn)
    full = api.vectors(config, "from-scratch", mode="full", parity=False)
    assert full.mode == "full" and full.figures["sent"] == N
    assert _embeddings(world) == after_delta


def test_presync_twice_is_safe_and_a_delta_with_no_change_sends_nothing(make_world):
    world = make_world(120)
    config = world.config()
    assert api.vectors(config, RUN, parity=False).mode == "full"  # a final sync before any pre-sync: superseded
    first = api.vectors(config, RUN, mode="presync", parity=False)
    again = api.vectors(config, RUN, mode="presync", parity=False)
    assert first.ok and again.ok, again.messages
    assert again.figures["migrated"] == again.figures["bit_exact"] == 120 and again.figures["written"] == 0
    delta = api.vectors(config, RUN, resume=True, parity=False)
    assert delta.ok and delta.mode == "delta" and not delta.figures["resumed"], delta.messages
    assert (delta.figures["sent"], delta.figures["unchanged"], delta.figures["written"]) == (0, 120, 0)
    assert delta.figures["bit_exact"] == 120


def test_a_pinned_row_changed_afterwards_is_hashed_again_and_caught(make_world):
    """The pin proves a row only while its tuple is the one that was hashed: a row rewritten after the pin
    (with other bytes, or the same bytes) is hashed at verification time, so a change is never hidden."""
    import asyncio

    from pytest_cutover.migrate import verify
    from pytest_cutover.migrate.sink import VectorSchema, connect_target

    world = make_world(60)
    assert api.vectors(world.config(), RUN, mode="presync", parity=False).ok
    schema = VectorSchema(state_schema="public")
    tampered, rewritten = world.ids[3], world.ids[4]

    async def go() -> tuple[verify.Pin, verify.BitCheck]:
        conn = await connect_target(world.target_dsn)
        try:
            pin = await verify.pin_target(conn, schema, RUN, "public")
            await conn.execute("UPDATE memory_fragments SET embedding = (SELECT embedding FROM memory_fragments "
                               "WHERE vector_id = $2::uuid) WHERE vector_id = $1::uuid", tampered, world.ids[5])
            await conn.execute("UPDATE memory_fragments SET embedding = embedding WHERE vector_id = $1::uuid",
                               rewritten)
            return pin, await verify.verify_digests(conn, schema, RUN, "public", kind="vectors-presync",
                                                    pinned=True)
        finally:
            await conn.close()

    pin, bits = asyncio.run(go())
    assert pin.rows == 60
    assert (bits.checked, bits.bit_exact, bits.mismatches) == (60, 59, [tampered])
    assert bits.by_pin == 58  # the tampered and the rewritten rows were hashed again; the rewritten one matches


def test_a_delta_whose_pin_fails_hashes_every_row(make_world, monkeypatch):
    from pytest_cutover.migrate import verify

    async def broken(*args, **kwargs):
        raise OSError("connection reset by peer")

    world = make_world(60)
    config = world.config()
    assert api.vectors(config, RUN, mode="presync", parity=False).ok
    monkeypatch.setattr(verify, "pin_target", broken)
    delta = api.vectors(config, RUN, resume=True, parity=False)
    assert delta.ok and delta.mode == "delta", delta.messages
    assert (delta.figures["pinned"], delta.figures["verified_by_pin"], delta.figures["bit_exact"]) == (0, 0, 60)
    assert any("pinning the target's rows failed (OSError" in m for m in delta.messages), delta.messages


def test_a_delta_that_fails_stops_its_pin_and_leaves_no_connection(make_world, monkeypatch):
    """The reader cannot open the source (another process holds the local-mode folder) while the pin is still
    hashing (a slow one here, as on a large table): the delta fails with the source's error, and the pin is
    stopped with its connection closed, while the caller's event loop is still running."""
    import asyncio

    import asyncpg
    from qdrant_client import QdrantClient

    from pytest_cutover.migrate import verify
    from pytest_cutover.migrate.engine import migrate_vectors
    from pytest_cutover.migrate.errors import SourceError

    async def slow_pin(*args, **kwargs):
        await asyncio.sleep(120)

    world = make_world(60)
    config = world.config()
    assert api.vectors(config, RUN, mode="presync", parity=False).ok
    monkeypatch.setattr(verify, "pin_target", slow_pin)
    job = api.vector_job(config, RUN, resume=True)
    others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"

    async def go() -> tuple[int, int]:
        probe = await asyncpg.connect(world.admin_dsn)
        try:
            before = await probe.fetchval(others)
            with pytest.raises(SourceError, match="already accessed"):
                await migrate_vectors(job)
            return before, await probe.fetchval(others)
        finally:
            await probe.close()

    holder = QdrantClient(path=str(world.qdrant_path))
    try:
        before, after = asyncio.run(go())
    finally:
        holder.close()
    assert after == before


def test_without_a_presync_the_final_sync_is_a_full_one(make_world):
    world = make_world(100)
    outcome = api.vectors(world.config(), RUN, resume=True, parity=False)
    assert outcome.ok and outcome.mode == "full" and "delta" not in outcome.figures
    assert outcome.figures["sent"] == outcome.figures["bit_exact"] == 100
    assert outcome.figures["index_s"] > 0


def test_a_presync_from_another_collection_or_schema_is_refused(make_world):
    from qdrant_client import QdrantClient, models

    world = make_world(60)
    api.vectors(world.config(), RUN, mode="presync", parity=False, index=False)
    client = QdrantClient(path=str(world.qdrant_path))
    try:  # the same points under another name: only the collection differs
        points, _ = client.scroll("dac_memory", limit=100, with_vectors=True, with_payload=True)
        client.create_collection("dac_memory_b", vectors_config=models.VectorParams(
            size=1536, distance=models.Distance.COSINE))
        client.upsert("dac_memory_b", points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload)
                                              for p in points], wait=True)
    finally:
        client.close()
    other = world.config_dict()
    other["source"]["collection"] = "dac_memory_b"
    from pytest_cutover.config import parse_config

    with pytest.raises(MigrationError, match=r"pre-sync of run night .* another collection or schema "
                                             r"\(collection 'dac_memory' then, 'dac_memory_b' now\)"):
        api.vectors(parse_config(other, env={}), RUN, resume=True, parity=False)
    # a pre-sync recorded under another schema mapping (embedding column) is refused the same way
    world.sql("UPDATE public.cutover_migration_checkpoint SET state = jsonb_set(state, '{source,embedding}', "
              "'\"embedding_v1\"') WHERE kind = 'vectors-presync'")
    with pytest.raises(MigrationError, match=r"embedding 'embedding_v1' then, 'embedding' now"):
        api.vectors(world.config(), RUN, resume=True, parity=False)
    assert api.vectors(world.config(), RUN, mode="full", parity=False).mode == "full"  # --full still works


@pytest.mark.slow
def test_a_delta_killed_mid_way_resumes_to_the_same_verified_result(make_world):
    world = make_world(N)
    toml = world.write_toml()
    reports = toml.parent / "reports"
    base = [sys.executable, "-m", "pytest_cutover", "migrate", "vectors", "--config", str(toml), "--run", RUN,
            "--reports-dir", str(reports), "--batch-size", "40", "--no-search-parity", "--no-progress", "--json"]
    pre = subprocess.run([*base, "--presync"], capture_output=True, timeout=180)
    assert pre.returncode == 0, pre.stderr.decode()[-2000:]
    change = _change_qdrant(world)
    events = world.root / "events.jsonl"
    proc = subprocess.Popen([*base, "--pace", "0.2", "--events", str(events)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _kill_when(proc, events, lambda ev: sum(e["event"] == "commit" for e in ev) >= 2)
    assert 2 <= sum(e["event"] == "commit" for e in _events(events)) < N // 40
    done = subprocess.run([*base, "--resume"], capture_output=True, timeout=180)
    figures = json.loads(done.stdout)["figures"]
    assert json.loads(done.stdout)["mode"] == "delta", done.stderr.decode()[-2000:]
    assert figures["resumed"] and figures["bit_exact"] == figures["migrated"] == N - 1
    assert (figures["added"], figures["changed"], figures["deleted"], figures["unchanged"]) == (1, 3, 1, N - 4)
    assert _embeddings(world)[change["deleted"]] is None
    records = [json.loads(line) for line in (reports / RUN / "ledger.jsonl").read_text().splitlines()]
    modes = [(r["mode"], r["ok"]) for r in records if r["kind"] == "migration"]
    assert modes == [("presync", True), ("delta", False)]  # the killed run wrote nothing; the mismatch fails
    for key in ("items", "read_s", "write_s", "index_s", "verify_s", "items_per_s", "at", "added", "changed",
                "deleted"):
        assert key in records[-1]["figures"], key


def test_a_delta_that_misses_the_changes_fails_its_bit_exact_check(make_world, monkeypatch):
    """The guard behind the ``qdrant-changed-after-presync`` fault: a final sync that wrongly takes every point as
    unchanged (sends nothing) still records what it *read*, so the bit-exact verification names the points whose
    vectors changed or that were added since the pre-sync."""
    from pytest_cutover.migrate import engine

    world = make_world(120)
    config = world.config()
    assert api.vectors(config, RUN, mode="presync", parity=False).ok
    change = _change_qdrant(world)

    def blind(self, batch):  # a broken delta: everything "as the pre-sync saw it"
        return engine.Batch(seq=batch.seq, next_offset=batch.next_offset, last_key=batch.last_key), [
            (k, d, o) for k, o, d in zip(batch.keys, batch.orgs, batch.digests, strict=True)]

    monkeypatch.setattr(engine._Run, "split", blind)
    missed = api.vectors(config, RUN, resume=True, parity=False)
    assert not missed.ok
    bad = next(m for m in missed.messages if m.startswith("verify: ") and "differ from what was read" in m)
    assert change["changed_vector"] in bad and change["added"] in bad, bad
