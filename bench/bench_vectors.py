"""Where the time goes when moving 1536-d vectors Qdrant -> pgvector, measured in one run.

Methods (issue 5): (a) raw Qdrant scroll, (b) raw asyncpg binary COPY, (c) the engine end to end (reader
process; also with a reader thread, to show the GIL effect), (d) the runbook's per-point method (retrieve +
UPDATE per fragment) on a subset, extrapolated, (e) vec2pg's approach (scroll 100 + COPY into its own table,
plus the UPDATE it still needs).  Also: round trips per 10k points and the time at 1 ms per round trip,
verification cost, the per-batch UPDATE plan, the HNSW build with and without a parallel worker, peak RSS.

    python bench/bench_vectors.py --sizes 20000 [--sizes 100000] [--workdir /tmp/cutover-bench]

Prints a table and writes reports/bench/vectors-<utc>.json.  Figures are timings on this machine: compare
ratios measured in the same run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DIM = 1536
PAGE = 2000
RTT_S = 0.001
ROOT = Path(__file__).resolve().parent.parent


def _runtime_dir() -> None:
    if not os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(tempfile.gettempdir()) / f"cutover-runtime-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


# ---------------------------------------------------------------------------------------------- round trips
class RoundTrips:
    """Counts client<->server exchanges on asyncpg connections in this process (see README for the rules)."""

    count = 0

    @classmethod
    def install(cls) -> None:
        import asyncpg.connection as c

        def wrap(name: str, cost: int) -> None:
            original = getattr(c.Connection, name)

            async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
                cls.count += cost(args, kwargs) if callable(cost) else cost
                return await original(self, *args, **kwargs)

            setattr(c.Connection, name, counted)

        for name in ("execute", "fetch", "fetchrow", "fetchval"):
            wrap(name, 1)
        wrap("executemany", lambda a, k: 1)  # pipelined in one sync since asyncpg 0.22
        wrap("copy_records_to_table", 2)     # COPY ... FROM STDIN -> CopyInResponse; data + CopyDone -> Complete


# ---------------------------------------------------------------------------------------------- world
@dataclass(frozen=True)
class QSource:
    """Where the methods read: a local-mode folder, or a collection on a Qdrant server (``--qdrant-url``).

    Against a server the reader holds one page, so the peak-RSS target can be judged on the whole engine;
    local mode loads every point into the process that opens the folder.
    """

    location: str
    collection: str = "dac_memory"

    @property
    def is_server(self) -> bool:
        return self.location.startswith(("http://", "https://"))

    def client(self, client_class: Any) -> Any:
        if self.is_server:
            return client_class(url=self.location, timeout=120)
        return client_class(path=self.location)

    def spec(self) -> Any:
        from pytest_cutover.migrate.source import SourceSpec

        where = {"url": self.location, "timeout_s": 120.0} if self.is_server else {"path": self.location}
        return SourceSpec(collection=self.collection, **where)

    def arg(self) -> str:
        """One argv word for the method processes."""
        return f"{self.location}#{self.collection}"

    @classmethod
    def parse(cls, text: str) -> QSource:
        location, _, collection = text.rpartition("#")
        return cls(location, collection)


def _upload(client: Any, collection: str, ids: list[str], orgs: list[str], n: int) -> None:
    """n unit float32 vectors, the same for a folder and a server (seeded by the size)."""
    from qdrant_client import models

    if client.collection_exists(collection):
        client.delete_collection(collection)
    client.create_collection(collection, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    vec_rng = np.random.default_rng(n + 1)
    for s in range(0, n, 1000):
        m = vec_rng.standard_normal((min(1000, n - s), DIM)).astype(np.float32)
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        client.upsert(collection, points=models.Batch(ids=ids[s:s + len(m)], vectors=m.tolist(),
                                                       payloads=[{"org_id": o} for o in orgs[s:s + len(m)]]))


def seed(work: Path, n: int, pg: Any, qdrant_url: str | None = None) -> tuple[QSource, list[str]]:
    """Rows in the target + n unit vectors in a qdrant local folder (cached per size) or on ``qdrant_url``."""
    import asyncpg
    from qdrant_client import QdrantClient

    rng = np.random.default_rng(n)
    ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
    orgs = [f"org_{1 + i % 8:04d}" for i in range(n)]
    if qdrant_url:
        source = QSource(qdrant_url, f"bench_dac_memory_{n}")
        client = source.client(QdrantClient)
        try:
            if not client.collection_exists(source.collection) or client.count(source.collection).count != n:
                _upload(client, source.collection, ids, orgs, n)
        except Exception as exc:  # connection refused, timeout, HTTP error: say which server, then stop
            raise SystemExit(f"cannot seed the Qdrant server at {qdrant_url}: {type(exc).__name__}: {exc}") from None
        finally:
            client.close()
    else:
        qpath = work / f"qdrant-{n}"
        source = QSource(str(qpath))
        if not (qpath / ".complete").exists():
            client = QdrantClient(path=str(qpath))
            _upload(client, source.collection, ids, orgs, n)
            client.close()
            (qpath / ".complete").touch()

    async def rows() -> None:
        admin = await asyncpg.connect(pg.admin_dsn.get())
        await admin.execute("DROP TABLE IF EXISTS public.cutover_migration_checkpoint, public.cutover_migration_seen,"
                            " public.cutover_migration_pin,"
                            " public.cutover_vector_staging, public.bench_copy, public.vec2pg_dac_memory;"
                            "DROP INDEX IF EXISTS memory_fragments_embedding_hnsw_idx;"
                            "TRUNCATE memory_fragments, attachments, messages, threads, users, orgs CASCADE")
        await admin.close()
        conn = await asyncpg.connect(pg.target_dsn.get())
        await conn.executemany("INSERT INTO orgs(id, name) VALUES ($1, $1)", [(o,) for o in sorted(set(orgs))])
        await conn.executemany("INSERT INTO users(id, org_id, email) VALUES ($1, $2, 'x')",
                               [(f"user_{o[-4:]}_01", o) for o in sorted(set(orgs))])
        await conn.copy_records_to_table("memory_fragments", columns=["org_id", "user_id", "content", "vector_id"],
                                         records=[(o, f"user_{o[-4:]}_01", "c", uuid.UUID(v))
                                                  for o, v in zip(orgs, ids, strict=True)])
        await conn.execute("ANALYZE memory_fragments")
        await conn.close()

    asyncio.run(rows())
    return source, ids


async def _reset_embeddings(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute("UPDATE memory_fragments SET embedding = NULL WHERE embedding IS NOT NULL;"
                       "DROP TABLE IF EXISTS public.cutover_migration_checkpoint, public.cutover_migration_seen, "
                       "public.cutover_migration_pin")
    await conn.execute("VACUUM memory_fragments")
    await conn.close()


# ---------------------------------------------------------------------------------------------- methods
def _import_qdrant_client() -> tuple[Any, float]:
    """``QdrantClient`` and the seconds its first import took in this (fresh) method process.

    The engine's reader imports qdrant-client inside the engine's clock (it is a new process); the methods
    compared with it report this import as ``import_s`` and the table adds it to their time, so every
    method is timed from "qdrant-client not yet imported" to done.
    """
    t0 = time.perf_counter()
    from qdrant_client import QdrantClient

    return QdrantClient, time.perf_counter() - t0


def raw_scroll(src: QSource, page: int = PAGE) -> dict[str, Any]:
    QdrantClient, import_s = _import_qdrant_client()
    t0 = time.perf_counter()
    client = src.client(QdrantClient)
    opened = time.perf_counter()
    offset, n, calls = None, 0, 0
    while True:
        recs, offset = client.scroll(src.collection, limit=page, offset=offset, with_vectors=True, with_payload=True)
        n += len(recs)
        calls += 1
        if offset is None:
            break
    done = time.perf_counter()
    client.close()
    return {"points": n, "open_s": opened - t0, "scroll_s": done - opened, "seconds": done - t0, "qdrant_calls": calls,
            "import_s": import_s}


def raw_copy(dsn: str, n: int) -> dict[str, Any]:
    import asyncpg
    from pgvector.asyncpg import register_vector

    rng = np.random.default_rng(5)
    matrix = rng.standard_normal((min(n, 20000), DIM)).astype(np.float32)
    keys = [uuid.uuid4() for _ in range(n)]

    async def go() -> float:
        conn = await asyncpg.connect(dsn)
        await register_vector(conn)
        await conn.execute("DROP TABLE IF EXISTS bench_copy; CREATE UNLOGGED TABLE bench_copy (k uuid, e vector)")
        start = RoundTrips.count
        t0 = time.perf_counter()
        for s in range(0, n, PAGE):
            rows = [(keys[i], matrix[i % len(matrix)]) for i in range(s, min(n, s + PAGE))]
            async with conn.transaction():
                await conn.copy_records_to_table("bench_copy", records=rows)
        seconds = time.perf_counter() - t0
        trips = RoundTrips.count - start  # conn.transaction() sends BEGIN/COMMIT through execute: counted
        await conn.execute("DROP TABLE bench_copy")
        await conn.close()
        return seconds, trips

    seconds, trips = asyncio.run(go())
    return {"points": n, "seconds": seconds, "db_round_trips": trips}


def engine(dsn: str, src: QSource, reader: str, run_id: str) -> dict[str, Any]:
    from pytest_cutover.migrate.engine import VectorJob, migrate_vectors
    from pytest_cutover.migrate.sink import VectorSchema, connect_target
    from pytest_cutover.migrate.verify import verify_digests

    asyncio.run(_reset_embeddings(dsn))
    job = VectorJob(source=src.spec(), target_dsn=dsn, run_id=run_id,
                    batch_size=PAGE, reader=reader)
    start = RoundTrips.count
    result = asyncio.run(migrate_vectors(job))
    trips = RoundTrips.count - start

    async def check() -> Any:
        conn = await connect_target(dsn)
        try:
            return await verify_digests(conn, VectorSchema(), run_id, "public")
        finally:
            await conn.close()

    bits = asyncio.run(check())
    books = result.accounting
    return {"points": books.points, "migrated": books.migrated, "seconds": result.duration_s,
            "db_round_trips": trips, "qdrant_calls": result.batches_sent + 1, "bit_exact": bits.bit_exact,
            "verify_s": bits.duration_s, "batches": result.batches_sent, "reader_ready_s": result.reader_ready_s,
            "dropped_indexes": result.dropped_indexes, "timeline": result.timeline, "busy": result.busy}


def per_point(dsn: str, src: QSource, ids: list[str], subset: int) -> dict[str, Any]:
    import asyncpg
    from pgvector.asyncpg import register_vector

    QdrantClient, import_s = _import_qdrant_client()
    asyncio.run(_reset_embeddings(dsn))
    t_open = time.perf_counter()
    client = src.client(QdrantClient)
    open_s = time.perf_counter() - t_open

    async def go() -> float:
        conn = await asyncpg.connect(dsn)
        await register_vector(conn)
        t0 = time.perf_counter()
        for pid in ids[:subset]:  # the runbook's loop: one retrieve and one UPDATE per fragment
            point = client.retrieve(src.collection, [pid], with_vectors=True)[0]
            await conn.execute("UPDATE memory_fragments SET embedding = $1 WHERE vector_id = $2",
                               np.asarray(point.vector, dtype=np.float32), uuid.UUID(pid))
        seconds = time.perf_counter() - t0
        await conn.close()
        return seconds

    seconds = asyncio.run(go())
    client.close()
    # "seconds" covers the subset's loop only; the table scales it to the full size and adds open_s once
    return {"points": subset, "seconds": seconds, "open_s": open_s, "db_round_trips": subset, "qdrant_calls": subset,
            "import_s": import_s}


def vec2pg(dsn: str, src: QSource) -> dict[str, Any]:
    """vec2pg's shape: scroll pages of 100 into its own table (one COPY per page), no pipelining, no
    verification; then the UPDATE ... FROM that the app's table still needs (vec2pg does not do it)."""
    import asyncpg
    from pgvector.asyncpg import register_vector

    QdrantClient, import_s = _import_qdrant_client()
    asyncio.run(_reset_embeddings(dsn))
    t0 = time.perf_counter()
    client = src.client(QdrantClient)

    async def go() -> tuple[int, int, float]:
        conn = await asyncpg.connect(dsn)
        await register_vector(conn)
        await conn.execute("DROP TABLE IF EXISTS vec2pg_dac_memory; CREATE TABLE vec2pg_dac_memory "
                           "(id uuid primary key, values vector, metadata jsonb)")
        start = RoundTrips.count
        offset, n, calls = None, 0, 0
        while True:
            recs, offset = client.scroll(src.collection, limit=100, offset=offset, with_vectors=True,
                                         with_payload=True)
            calls += 1
            rows = [(uuid.UUID(str(r.id)), np.asarray(r.vector, dtype=np.float32), json.dumps(r.payload))
                    for r in recs]
            await conn.copy_records_to_table("vec2pg_dac_memory", records=rows)
            n += len(rows)
            if offset is None:
                break
        copied = time.perf_counter()
        await conn.execute("UPDATE memory_fragments t SET embedding = v.values FROM vec2pg_dac_memory v "
                           "WHERE t.vector_id = v.id")
        trips = RoundTrips.count - start
        await conn.execute("DROP TABLE vec2pg_dac_memory")
        await conn.close()
        return n, calls, trips, copied

    n, calls, trips, copied = asyncio.run(go())
    client.close()
    done = time.perf_counter()
    return {"points": n, "seconds": done - t0, "copy_s": copied - t0, "update_s": done - copied,
            "db_round_trips": trips, "qdrant_calls": calls, "import_s": import_s}


def update_plan(dsn: str) -> str:
    """EXPLAIN of the engine's per-batch UPDATE with one batch staged: must be a nested loop on the key index."""
    import asyncpg

    async def go() -> str:
        conn = await asyncpg.connect(dsn)
        await conn.execute("CREATE TEMP TABLE s AS SELECT vector_id AS key, org_id::text AS org_id, embedding, "
                           f"NULL::bytea AS digest, NULL::text AS reason FROM memory_fragments LIMIT {PAGE}")
        plan = await conn.fetch("EXPLAIN UPDATE memory_fragments t SET embedding = s.embedding FROM s "
                                "WHERE t.vector_id = s.key AND t.org_id::text = s.org_id AND s.reason IS NULL "
                                "AND s.embedding IS NOT NULL AND t.embedding IS DISTINCT FROM s.embedding")
        await conn.close()
        return "\n".join(r[0] for r in plan)

    return asyncio.run(go())


def hnsw(dsn: str, workers: int) -> float:
    from pytest_cutover.migrate.sink import VectorSchema, connect_target
    from pytest_cutover.migrate.verify import build_hnsw

    async def go() -> float:
        conn = await connect_target(dsn)
        try:
            return (await build_hnsw(conn, VectorSchema(), workers=workers, maintenance_work_mem="2GB")).seconds
        finally:
            await conn.close()

    return asyncio.run(go())


# ---------------------------------------------------------------------------------------------- RSS
def measure_child(argv: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Run one method in a child process; sample the RSS of it and its children (the reader) every 20 ms."""
    import psutil

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak = {"main": 0, "children": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak["main"] = max(peak["main"], ps.memory_info().rss)
                kids = sum(c.memory_info().rss for c in ps.children(recursive=True))
                peak["children"] = max(peak["children"], kids)
            except psutil.Error:
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=3600)
    stop.set()
    thread.join()
    if proc.returncode != 0:
        from pytest_cutover.redact import redact

        raise SystemExit(redact(f"benchmark child failed: {argv}"))
    return json.loads(out.strip().splitlines()[-1]), peak


def child_main(args: argparse.Namespace) -> None:
    RoundTrips.install()
    args.dsn = os.environ["CUTOVER_BENCH_DSN"]
    src = QSource.parse(args.qdrant)
    if args.one == "scroll":
        out = raw_scroll(src)
    elif args.one == "copy":
        out = raw_copy(args.dsn, args.n)
    elif args.one in ("engine", "engine-thread"):
        out = engine(args.dsn, src, "thread" if args.one == "engine-thread" else "process", f"bench-{args.one}")
    elif args.one == "per-point":
        out = per_point(args.dsn, src, json.loads(Path(args.ids).read_text()), args.subset)
    elif args.one == "vec2pg":
        out = vec2pg(args.dsn, src)
    else:
        raise SystemExit(f"unknown method {args.one}")
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------- main
def run_size(pg: Any, work: Path, n: int, subset: int, repeat: int = 3, hnsw_max: int | None = None,
             qdrant_url: str | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    src, ids = seed(work, n, pg, qdrant_url)
    ids_file = work / f"ids-{n}.json"
    ids_file.write_text(json.dumps(ids))
    print(f"[{n}] seeded in {time.perf_counter() - t0:.1f}s", flush=True)
    dsn = pg.target_dsn.get()
    os.environ["CUTOVER_BENCH_DSN"] = dsn  # the environment, not argv: argv is visible to every user in ps
    base = [sys.executable, __file__, "--qdrant", src.arg(), "--n", str(n)]
    res: dict[str, Any] = {"points": n, "source": "server" if src.is_server else "local"}
    # The machine is shared: the load changes during a run.  The methods compared in the ratios (a, e, c', c)
    # run interleaved, ``repeat`` rounds, and each keeps its median run; (b) and (d) run once.
    # The engine runs last in every round, so the HNSW builds below index a fully loaded table.
    runs: dict[str, list[dict[str, Any]]] = {}
    plan = ["copy", "per-point"] + ["scroll", "vec2pg", "engine-thread", "engine"] * repeat
    for method in plan:
        argv = [*base, "--one", method, "--ids", str(ids_file), "--subset", str(subset)]
        out, peak = measure_child(argv)
        out["peak_rss_mb"] = round(peak["main"] / 2**20, 1)
        out["peak_rss_reader_mb"] = round(peak["children"] / 2**20, 1)
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        runs.setdefault(method, []).append(out)
        print(f"[{n}] {method}: {out}", flush=True)
    for method, outs in runs.items():
        ordered = sorted(outs, key=lambda o: o["seconds"])
        res[method] = {**ordered[len(ordered) // 2], "runs_s": [round(o["seconds"], 2) for o in outs]}
    res["update_plan"] = update_plan(dsn)
    res["hnsw_s"] = {}
    if hnsw_max is not None and n > hnsw_max:
        print(f"[{n}] hnsw builds skipped (--hnsw-max {hnsw_max})", flush=True)
        return res
    for workers in (0, 1):
        res["hnsw_s"][str(workers)] = round(hnsw(dsn, workers), 2)
        print(f"[{n}] hnsw workers={workers}: {res['hnsw_s'][str(workers)]}s", flush=True)
    return res


_IMPORTING = ("scroll", "per-point", "vec2pg")  # methods whose qdrant-client import is added to their time


def _seconds(key: str, m: dict[str, Any], n: int, *, with_import: bool = True) -> float:
    """A method's time at ``n`` points: (d) is extrapolated from its subset and pays its open once; (a), (d), (e)
    include their process's qdrant-client import (the engine's clock includes its reader's), unless told not to."""
    scale = n / m["points"] if m["points"] else 1
    seconds = m["seconds"] * scale + (m.get("open_s", 0.0) if key == "per-point" else 0.0)
    if with_import and key in _IMPORTING:
        seconds += m.get("import_s", 0.0)
    return seconds


def _kb_per_point(mb: float, n: int) -> float:
    return mb * 1024 / n if n else 0.0


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    head = (f"{'points':>7} {'method':<34} {'seconds':>8} {'points/s':>9} {'RT/10k':>7} {'s @1ms RT':>9} "
            f"{'RSS MB':>7} {'reader MB':>9} {'load':>5}")
    lines.append(head)
    lines.append("-" * len(head))
    for res in results:
        n = res["points"]
        for key, label in (("scroll", "(a) raw qdrant scroll (incl. open)"), ("copy", "(b) raw binary COPY"),
                           ("engine", "(c) engine, reader process"), ("engine-thread", "(c') engine, reader thread"),
                           ("per-point", "(d) runbook per-point (extrap.)"), ("vec2pg", "(e) vec2pg + UPDATE")):
            m = res[key]
            scale = n / m["points"] if m["points"] else 1
            seconds = _seconds(key, m, n)
            trips = (m.get("db_round_trips", 0) + m.get("qdrant_calls", 0)) * scale
            per10k = trips / n * 10000
            lines.append(f"{n:>7} {label:<34} {seconds:>8.2f} {n / seconds:>9,.0f} {per10k:>7,.0f} "
                         f"{seconds + trips * RTT_S:>9.2f} {m['peak_rss_mb']:>7.0f} {m['peak_rss_reader_mb']:>9.0f} "
                         f"{m.get('loadavg_1m', 0):>5.2f}")
        e, a, b, v, d = res["engine"], res["scroll"], res["copy"], res["vec2pg"], res["per-point"]
        thread = res["engine-thread"]
        ce, ae, ve = e["seconds"], _seconds("scroll", a, n), _seconds("vec2pg", v, n)
        ratios = [f"c/a {ae / ce:.2f} (scroll alone {a['scroll_s'] / ce:.2f})",
                  f"c/min(a,b) {min(ae, b['seconds']) / ce:.2f}",
                  f"c/e {ve / ce:.2f} (target >= 2; {_seconds('vec2pg', v, n, with_import=False) / ce:.2f} "
                  f"without (e)'s qdrant-client import; e/a = {ve / ae:.2f}: an engine that imports, opens and "
                  "scrolls as (a) does, then converts and writes, should not beat (a), so c/e should not exceed e/a "
                  "by more than the run-to-run noise)",
                  f"c'/c {ce / thread['seconds']:.2f}",
                  f"verify/migration {e['verify_s'] / ce:.3f}",
                  f"bit-exact {e['bit_exact']}/{e['points']}",
                  f"d is {_seconds('per-point', d, n) / ce:.1f}x slower than c"]
        lines.append(f"{n:>7} ratios: " + ", ".join(ratios))
        lines.append(f"{n:>7} runs (s): " + ", ".join(
            f"{k} {res[k]['runs_s']}" for k in ("scroll", "vec2pg", "engine-thread", "engine")))
        t, busy = e.get("timeline", {}), e.get("busy", {})
        if t:
            lines.append(
                f"{n:>7} (c) timeline (s): target prepared {t.get('prepared', 0):.2f} while the reader started; "
                f"reader ready {t.get('reader_ready', 0):.2f} (spawn, import qdrant-client {a.get('import_s', 0):.2f} "
                f"in (a)'s process, open {a.get('open_s', 0):.2f} in (a)'s); first batch {t.get('first_batch', 0):.2f};"
                f" read done {t.get('read_done', 0):.2f}; done {t.get('done', 0):.2f}. Reader: scroll "
                f"{busy.get('scroll_s', 0):.2f}, screen {busy.get('screen_s', 0):.2f}, blocked on a full queue "
                f"{busy.get('reader_blocked_s', 0):.2f}; writer: writing {busy.get('writing_s', 0):.2f}, waiting for "
                f"pages {busy.get('writer_waiting_s', 0):.2f}")
        why = ("" if res.get("source") == "server" else
               " (qdrant-client local mode loads the whole collection into the reader)")
        lines.append(f"{n:>7} RSS: engine process {e['peak_rss_mb']:.0f} MB; its reader process "
                     f"{e['peak_rss_reader_mb']:.0f} MB = {_kb_per_point(e['peak_rss_reader_mb'], n):.1f} KB per "
                     f"point{why}")
        indexed = "Index Scan" in res["update_plan"] and "Hash Join" not in res["update_plan"]
        if res["hnsw_s"]:
            lines.append(f"{n:>7} hnsw build: {res['hnsw_s']['0']}s without, {res['hnsw_s']['1']}s with 1 parallel "
                         f"worker; per-batch UPDATE uses the key index: {indexed}")
        else:
            lines.append(f"{n:>7} hnsw build: skipped (--hnsw-max); per-batch UPDATE uses the key index: {indexed}")
    if len(results) > 1:
        small, large = min(results, key=lambda r: r["points"]), max(results, key=lambda r: r["points"])
        es, el = small["engine"], large["engine"]
        own = el["peak_rss_mb"] / es["peak_rss_mb"] if es["peak_rss_mb"] else float("inf")
        reader = el["peak_rss_reader_mb"] / es["peak_rss_reader_mb"] if es["peak_rss_reader_mb"] else float("inf")
        if all(r.get("source") == "server" for r in results):
            total = ((el["peak_rss_mb"] + el["peak_rss_reader_mb"]) / (es["peak_rss_mb"] + es["peak_rss_reader_mb"])
                     if es["peak_rss_mb"] + es["peak_rss_reader_mb"] else float("inf"))
            lines.append(f"peak RSS {large['points']} vs {small['points']} (target <= 1.3x) from a Qdrant server: "
                         f"engine process {own:.2f}x, reader process {reader:.2f}x, both together {total:.2f}x "
                         f"({'met' if max(own, reader, total) <= 1.3 else 'NOT met'})")
        else:
            lines.append(f"peak RSS {large['points']} vs {small['points']} (target <= 1.3x), evaluated on the engine's "
                         f"own process: {own:.2f}x ({'met' if own <= 1.3 else 'NOT met'}). Its reader process: "
                         f"{reader:.2f}x: not flat, and local mode cannot make it flat: qdrant-client's local mode "
                         "loads every point of the collection into the process that opens it (here the reader), "
                         "before the first scroll. Against a Qdrant server (--qdrant-url) the reader holds one page.")
    return "\n".join(lines)


def sizes_parser(doc: str) -> argparse.ArgumentParser:
    """The options every bench script shares (sizes, work folder, results folder), after the runtime folder."""
    _runtime_dir()
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--sizes", action="append", type=int, help="points (repeatable; default 20000)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "cutover-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    return parser


def main() -> None:
    parser = sizes_parser(__doc__)
    parser.add_argument("--subset", type=int, default=1000, help="points for the per-point method")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of (a), (e), (c'), (c); medians kept")
    parser.add_argument("--once-above", type=int, default=None,
                        help="sizes above this run one round whatever --repeat says (e.g. 20000)")
    parser.add_argument("--hnsw-max", type=int, default=None,
                        help="build the HNSW index (twice) only at sizes up to this (at 100k the builds take minutes)")
    parser.add_argument("--qdrant-url", default=None,
                        help="read from this Qdrant server instead of a local-mode folder (collections "
                             "bench_dac_memory_<n> are created there), e.g. after "
                             "`docker run -p 6333:6333 qdrant/qdrant`")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--qdrant", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        child_main(args)
        return
    from pytest_cutover.rehearsal.postgres import EmbeddedPostgres

    args.workdir.mkdir(parents=True, exist_ok=True)
    pg = EmbeddedPostgres(args.workdir / "pg")
    pg.start()
    try:
        results = [run_size(pg, args.workdir, n, args.subset,
                            1 if args.once_above is not None and n > args.once_above else args.repeat, args.hnsw_max,
                            args.qdrant_url)
                   for n in (args.sizes or [20000])]
    finally:
        pg.stop()
    text = table(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = args.out / f"vectors-{stamp}.json"
    load = os.getloadavg()
    path.write_text(json.dumps({"sizes": [r["points"] for r in results], "results": results, "table": text,
                                "machine": {"cpus": os.cpu_count(), "loadavg": load},
                                "command": " ".join(sys.argv)}, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
