"""Delta final sync vs full sync + index build, on the same data in the same run (issue 17).

Per size: seed n points (1536-d) and their rows; a pre-sync (``mode="presync"``: load, verify, build the HNSW
index); then, in Qdrant, 1% of the points get a new vector, 0.5% are added (with their rows) and 0.5% deleted
(their rows stay: the delta must clear their embeddings and account them as missing); then the delta final
sync (``mode="auto"`` finds the pre-sync).  Then the embeddings are cleared and the index dropped (not timed),
and a full sync + index build runs on the same data.  Search parity is off for both (it is the same cost either
way); both end with the bit-exact verification of every accounted row.

    python bench/bench_delta.py --sizes 20000 [--sizes 100000] [--workdir /tmp/cutover-bench] [--qdrant-url URL]

With ``--qdrant-url`` the points live on a Qdrant server (a collection per size, seeded afresh for each run
and deleted after it, since the run changes it); without it, in a copy of a local-mode folder.

Prints a table and writes reports/bench/delta-<utc>.json.  Target: delta <= 0.2 x (full + index) at 100k.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vectors import DIM, QSource, seed, sizes_parser

RUN = "bench-delta"


def _config(dsn: str, source: QSource) -> Any:
    from pytest_cutover.config import parse_config

    where = {"qdrant_url": source.location} if source.is_server else {"qdrant_path": source.location}
    return parse_config({"run": {"id": RUN}, "source": {**where, "collection": source.collection},
                         "target": {"database_url": dsn},
                         "migrate": {"state_schema": "public", "maintenance_work_mem": "1GB"}}, env={})


def _sql(dsn: str, query: str, *args: Any) -> Any:
    import asyncpg

    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def _target_digest(dsn: str) -> str:
    """One md5 over every row's key and sha256(embedding): equal digests, identical targets."""
    return _sql(dsn, "SELECT md5(string_agg(vector_id::text || ':' || coalesce(encode(sha256(vector_send(embedding)),"
                     " 'hex'), '-'), ',' ORDER BY vector_id)) AS d FROM memory_fragments")[0]["d"]


def mutate(source: QSource, dsn: str, ids: list[str], n: int) -> dict[str, int]:
    """1% new vectors, 0.5% added points (and rows), 0.5% deleted points, chosen by a fixed seed."""
    from qdrant_client import QdrantClient, models

    rng = np.random.default_rng(n + 17)
    picks = rng.permutation(len(ids))
    n_change, n_add, n_delete = n // 100, n // 200, n // 200
    changed = [ids[i] for i in picks[:n_change]]
    deleted = [ids[i] for i in picks[n_change:n_change + n_delete]]
    added = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n_add)]
    client = source.client(QdrantClient)
    collection = source.collection
    try:
        payloads = {str(p.id): p.payload for p in client.retrieve(collection, changed, with_payload=True)}
        for chunk in range(0, max(len(changed), len(added)), 500):
            for keys, org_of in ((changed[chunk:chunk + 500], lambda k: payloads[k]["org_id"]),
                                 (added[chunk:chunk + 500], lambda k: "org_0001")):
                if not keys:
                    continue
                m = rng.standard_normal((len(keys), DIM)).astype(np.float32)
                m /= np.linalg.norm(m, axis=1, keepdims=True)
                client.upsert(collection, points=models.Batch(ids=keys, vectors=m.tolist(),
                                                                 payloads=[{"org_id": org_of(k)} for k in keys]))
        client.delete(collection, points_selector=models.PointIdsList(points=deleted), wait=True)
    finally:
        client.close()
    _sql(dsn, "INSERT INTO memory_fragments (org_id, user_id, content, vector_id) SELECT 'org_0001', "
              "'user_0001_01', 'c', unnest($1::uuid[])", added)
    return {"changed": n_change, "added": n_add, "deleted": n_delete}


def _row(outcome: Any, seconds: float) -> dict[str, Any]:
    f = outcome.figures
    return {"ok": outcome.ok, "mode": outcome.mode, "seconds": round(seconds, 3), "migrate_s": f.get("migrate_s"),
            "index_s": f.get("index_s"), "verify_s": f.get("verify_s"), "items": f.get("items"), "sent": f.get("sent"),
            "written": f.get("written"), "round_trips": f.get("round_trips"), "bit_exact": f.get("bit_exact"),
            "migrated": f.get("migrated"), "missing": f.get("missing"), "delta": f.get("delta"),
            "read_s": f.get("read_s"), "write_s": f.get("write_s"), "reader_ready_s": f.get("reader_ready_s"),
            "pin_s": f.get("pin_s"), "pinned": f.get("pinned"), "verified_by_pin": f.get("verified_by_pin"),
            "messages": outcome.messages}


def _forget(source: QSource) -> None:
    """A server collection this run changed: delete it, so the next run seeds it afresh."""
    from qdrant_client import QdrantClient

    client = source.client(QdrantClient)
    try:
        client.delete_collection(source.collection)
    finally:
        client.close()


def run_size(pg: Any, work: Path, n: int, qdrant_url: str | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    src, ids = seed(work, n, pg, qdrant_url)
    if src.is_server:
        try:
            return _measure(pg, src, ids, n, t0)
        finally:
            _forget(src)
    qpath = work / f"qdrant-{n}-delta"  # the seeded folder is a cache: mutate a copy
    shutil.rmtree(qpath, ignore_errors=True)
    shutil.copytree(src.location, qpath)
    return _measure(pg, QSource(str(qpath), src.collection), ids, n, t0)


def _measure(pg: Any, src: QSource, ids: list[str], n: int, t0: float) -> dict[str, Any]:
    from pytest_cutover.migrate import api

    dsn = pg.target_dsn.get()
    print(f"[{n}] seeded in {time.perf_counter() - t0:.1f}s ({src.location})", flush=True)
    config = _config(dsn, src)

    def timed(**kw: Any) -> dict[str, Any]:
        start = time.perf_counter()
        outcome = api.vectors(config, kw.pop("run", RUN), parity=False, **kw)
        return _row(outcome, time.perf_counter() - start)

    presync = timed(mode="presync")
    print(f"[{n}] pre-sync {presync['seconds']:.1f}s", flush=True)
    changes = mutate(src, dsn, ids, n)
    delta = timed(resume=True)
    print(f"[{n}] delta {delta['seconds']:.1f}s: {delta['delta']}", flush=True)
    after_delta = _target_digest(dsn)
    _sql(dsn, "UPDATE memory_fragments SET embedding = NULL WHERE embedding IS NOT NULL")
    _sql(dsn, "DROP INDEX IF EXISTS memory_fragments_embedding_hnsw_idx")
    _sql(dsn, "VACUUM memory_fragments")
    full = timed(run="bench-full", mode="full")
    print(f"[{n}] full + index {full['seconds']:.1f}s", flush=True)
    identical = _target_digest(dsn) == after_delta
    return {"points": n, "changes": changes, "presync": presync, "delta": delta, "full": full,
            "ratio": round(delta["seconds"] / full["seconds"], 4) if full["seconds"] else None,
            "identical_targets": identical, "load": os.getloadavg(), "source": src.location}


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'points':>8} {'step':<13} {'total s':>8} {'migrate':>8} {'index':>7} {'verify':>7} {'read':>7} "
            f"{'sent':>7} {'RT':>6} {'bit-exact':>9}  accounted")
    lines = [head, "-" * len(head)]
    for r in results:
        for name in ("presync", "delta", "full"):
            x = r[name]
            d = x.get("delta") or {}
            acc = (f"+{d.get('added', 0)} ~{d.get('changed_vector', 0) + d.get('changed_payload', 0)} "
                   f"-{d.get('deleted', 0)} ={d.get('unchanged', 0)} (missing {x['missing']})" if d else
                   f"{x['migrated']} migrated, missing {x['missing']}")
            label = {"presync": "pre-sync", "delta": "delta final", "full": "full + index"}[name]
            lines.append(f"{r['points']:>8} {label:<13} {x['seconds']:>8.1f} {x['migrate_s']:>8.1f} "
                         f"{x['index_s']:>7.1f} {x['verify_s']:>7.2f} {x['items']:>7} {x['sent']:>7} "
                         f"{x['round_trips']:>6} {x['bit_exact']:>9}  {acc}")
        for name in ("delta", "full"):
            x = r[name]
            pin = (f", {x['pinned']} rows pinned in {x['pin_s']:.1f}s beside the open, {x['verified_by_pin']} of "
                   f"them verified by tuple" if x.get("pinned") else "")
            lines.append(f"{r['points']:>8} {name}: reader ready (open, load) {x['reader_ready_s']:.1f}s, "
                         f"reader busy {x['read_s']:.1f}s, writer busy {x['write_s']:.1f}s{pin}")
        target = "met" if r["ratio"] is not None and r["ratio"] <= 0.2 else "NOT met"
        lines.append(f"{r['points']:>8} delta / (full + index) = {r['ratio']:.3f} (target <= 0.2: {target}); "
                     f"changes planted {r['changes']}; targets identical after delta and after full: "
                     f"{r['identical_targets']}; load {tuple(round(v, 1) for v in r['load'])}")
    return "\n".join(lines)


def main() -> None:
    parser = sizes_parser(__doc__)
    parser.add_argument("--qdrant-url", default=None, help="points on this Qdrant server instead of a local folder")
    args = parser.parse_args()
    from pytest_cutover.rehearsal.postgres import EmbeddedPostgres

    args.workdir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(args.workdir / "pg")
    pg.start()
    try:
        results = [run_size(pg, args.workdir, n, args.qdrant_url) for n in (args.sizes or [20000])]
    finally:
        pg.stop()
    text = table(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"delta-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"results": results, "table": text, "command": " ".join(sys.argv),
                                "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}}, indent=2,
                               default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
