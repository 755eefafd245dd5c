"""The seed is deterministic, shaped like real embeddings, and lands identically in old, target and Qdrant."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_cutover.rehearsal import seed as seed_mod
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.postgres import OLD_DATABASE, TENANT_TABLES

pytestmark = pytest.mark.integration

TINY = seed_mod.SeedSize(orgs=2, users_per_org=2, threads_per_user=1, messages_per_thread=2, fragments_per_org=60,
                         attachments_per_org=3, attachment_bytes=512, max_blob_bytes=4096, topics_per_org=3)


def test_same_seed_same_content_and_another_seed_differs() -> None:
    a, b, c = seed_mod.generate(7, TINY), seed_mod.generate(7, TINY), seed_mod.generate(8, TINY)
    assert a.digest == b.digest
    assert a.fragments == b.fragments and np.array_equal(a.vectors, b.vectors)
    assert c.digest != a.digest


def test_unknown_size_names_the_choices() -> None:
    with pytest.raises(RehearsalError, match=r"seed: unknown size 'huge'.*large, small"):
        seed_mod.generate(1, "huge")


def test_summary_counts_what_was_written(seeded) -> None:
    s, d = seeded.summary, seeded.data
    assert s.digest == seed_mod.generate(42, "small").digest
    assert (s.orgs, s.users, s.threads, s.messages, s.fragments, s.attachments) == (
        len(d.orgs), len(d.users), len(d.threads), len(d.messages), len(d.fragments), len(d.attachments))
    assert s.fragments_with_vector_id == sum(1 for f in d.fragments if f[6] is not None) == len(d.points)
    assert s.points == s.fragments_with_vector_id
    assert s.blob_bytes == sum(a[6] for a in d.attachments)
    assert s.orgs == 4 and 1000 <= s.fragments <= 2000 and s.attachments == 40
    assert 0 < s.fragments - s.fragments_with_vector_id < s.fragments * 0.1  # some fragments not yet embedded


def test_edge_cases_are_planted(seeded) -> None:
    d = seeded.data
    sizes = [a[6] for a in d.attachments]
    assert 0 in sizes and d.size.max_blob_bytes in sizes
    assert any(not f[5] for f in d.fragments) and any(not m[5] for m in d.messages)
    assert any(f[3] is None for f in d.fragments)  # fragments without a thread
    assert any(any(ord(ch) > 0x2000 for ch in a[4]) for a in d.attachments)  # unicode file name
    assert any(any(ord(ch) > 0x2000 for ch in t[3]) for t in d.threads)
    assert {f[4] for f in d.fragments} == {"private", "shared"}


def test_vectors_are_unit_float32_and_clustered_not_random(seeded) -> None:
    vecs, labels = seeded.data.vectors, np.array(seeded.data.labels)
    assert vecs.dtype == np.float32 and vecs.shape[1] == seed_mod.DIM
    assert np.allclose(np.linalg.norm(vecs.astype(np.float64), axis=1), 1.0, atol=1e-6)
    clustered = _neighbour_stats(vecs, labels)
    rng = np.random.default_rng(0)
    random = rng.standard_normal(vecs.shape)
    random = (random / np.linalg.norm(random, axis=1, keepdims=True)).astype(np.float32)
    control = _neighbour_stats(random, labels)
    assert clustered["self_first"] == 1.0  # a fragment's own vector is its nearest neighbour
    assert clustered["same_topic_at_10"] >= 0.9
    assert clustered["gap"] > 0.4  # top-10 neighbours clearly closer than an average fragment
    assert control["gap"] < 0.15  # the control: random vectors are all nearly equidistant
    dupes = sum(1 for f in seeded.data.fragments if f[5].endswith("(edited)"))
    assert dupes >= 3  # near-duplicates planted


def _neighbour_stats(vecs: np.ndarray, labels: np.ndarray, queries: int = 60) -> dict[str, float]:
    idx = np.linspace(0, len(vecs) - 1, queries).astype(int)
    sims = vecs[idx].astype(np.float64) @ vecs.astype(np.float64).T
    order = np.argsort(-sims, axis=1)
    top = order[:, 1:11]
    return {
        "self_first": float(np.mean(order[:, 0] == idx)),
        "same_topic_at_10": float(np.mean(labels[top] == labels[idx][:, None])),
        "gap": float(np.mean(np.take_along_axis(sims, top, axis=1)) - np.mean(sims)),
    }


def test_target_holds_the_same_relational_rows_without_embeddings(seeded) -> None:
    async def counts(user: str, database: str) -> dict[str, int]:
        conn = await seeded.connect(user, database)
        try:
            out = {t: int(await conn.fetchval(f"select count(*) from {t}")) for t in TENANT_TABLES}
            out["digest"] = await conn.fetchval(
                "select md5(string_agg(id::text || org_id || coalesce(vector_id::text, '') || content, ',' "
                "order by id)) from memory_fragments")
            out["blob_digest"] = await conn.fetchval(
                "select md5(string_agg(sha256 || octet_length(file_data)::text, ',' order by id)) from attachments")
            if database != OLD_DATABASE:
                out["embedded"] = int(await conn.fetchval("select count(embedding) from memory_fragments"))
            return out
        finally:
            await conn.close()

    old = seeded.run(counts("old_app", OLD_DATABASE))
    target = seeded.run(counts("postgres", "postgres"))
    assert target.pop("embedded") == 0
    assert old == target


def test_qdrant_collection_has_a_point_per_embedded_fragment(seeded) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(seeded.qdrant_path))
    try:
        info = client.get_collection(seed_mod.COLLECTION)
        count = client.count(seed_mod.COLLECTION, exact=True).count
        sample = seeded.data.points[::150]
        got = {str(p.id): p for p in client.retrieve(seed_mod.COLLECTION, ids=[s[0] for s in sample],
                                                     with_vectors=True, with_payload=True)}
    finally:
        client.close()
    assert info.config.params.vectors.size == seed_mod.DIM
    assert info.config.params.vectors.distance.value == "Cosine"
    assert count == seeded.summary.fragments_with_vector_id
    positions = {p[0]: i for i, p in enumerate(seeded.data.points)}
    for vector_id, org, fragment_id, user in sample:
        point = got[vector_id]
        assert point.payload == {"org_id": org, "fragment_id": fragment_id, "user_id": user}
        # Reopened local mode returns the raw uploaded values (float64 of our float32): bit-exact after the cast.
        assert np.array_equal(np.asarray(point.vector).astype(np.float32), seeded.data.vectors[positions[vector_id]])


def test_hnsw_recall_on_the_seeded_vectors(seeded) -> None:
    """pgvector HNSW (cosine ops, default ef_search) returns the exact top-10 on the seeded vectors.

    At ~1.5k points HNSW is close to exhaustive even on random vectors (measured: 0.96 random vs 1.00 here), so
    this proves the index and operator class work on our data; the clustering itself is proven by the
    neighbour-gap test above, whose random control fails it.
    """
    from pytest_cutover.migrate.sink import register_vector_codec

    vecs = seeded.data.vectors
    queries = list(range(0, len(vecs), len(vecs) // 20))[:20]

    async def main() -> float:
        conn = await seeded.connect("supabase_admin")
        try:
            await register_vector_codec(conn)  # pgvector lives in schema extensions, as on Supabase
            await conn.execute("create temporary table recall_probe (id int primary key, v vector(1536))")
            await conn.copy_records_to_table("recall_probe", records=[(i, v) for i, v in enumerate(vecs)])
            await conn.execute("set maintenance_work_mem = '256MB'")
            await conn.execute("create index on recall_probe using hnsw (v vector_cosine_ops)")
            await conn.execute("analyze recall_probe")
            plan = "\n".join(r[0] for r in await conn.fetch(
                "explain (format text) select id from recall_probe order by v <=> $1 limit 10", vecs[0]))
            assert "recall_probe_v_idx" in plan, plan
            hits = 0
            for q in queries:
                rows = await conn.fetch("select id from recall_probe order by v <=> $1 limit 10", vecs[q])
                exact = np.argsort(-(vecs.astype(np.float64) @ vecs[q].astype(np.float64)))[:10]
                hits += len({r["id"] for r in rows} & set(exact.tolist()))
            return hits / (10 * len(queries))
        finally:
            await conn.close()

    recall = seeded.run(main())
    assert recall >= 0.95, f"recall@10 {recall:.2f}"


def test_seed_all_works_from_inside_a_running_event_loop(seeded, tmp_path) -> None:
    """seed_all is sync; called from async code (an async fixture, say) it must not trip over asyncio.run."""
    pg = seeded.pg

    async def admin(sql: str) -> None:
        conn = await seeded.connect("supabase_admin")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    seeded.run(admin("create database seed_probe owner old_app"))
    try:
        pg.run_sql_file("app_tables.sql", database="seed_probe", role="old_app")

        async def from_a_loop() -> seed_mod.SeedSummary:
            return seed_mod.seed_all(old_dsn=pg.dsn("old_app", "seed_probe"), target_dsn=None,
                                     qdrant_path=tmp_path / "q", seed=3, size=TINY)

        summary = seeded.run(from_a_loop())
    finally:
        seeded.run(admin("drop database seed_probe with (force)"))
    tiny = seed_mod.generate(3, TINY)
    assert (summary.fragments, summary.points, summary.digest) == (
        len(tiny.fragments), len(tiny.points), tiny.digest)
    assert summary.size == "custom"


@pytest.mark.parametrize("module", ["postgres", "seed", "backup"])
def test_public_api_is_exactly_all(module: str) -> None:
    """Every public class, function and module constant is exported; nothing else (ruff keeps the order)."""
    import importlib
    import inspect
    import re

    mod = importlib.import_module(f"pytest_cutover.rehearsal.{module}")
    source = inspect.getsource(mod)
    defined = {n for n, v in vars(mod).items() if not n.startswith("_") and (
        (callable(v) and getattr(v, "__module__", None) == mod.__name__)
        or re.search(rf"^{n}(: .*)? = ", source, re.M))}
    assert sorted(defined) == sorted(mod.__all__)
    assert len(set(mod.__all__)) == len(mod.__all__)
