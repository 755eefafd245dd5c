"""Fixtures for the migration engine's tests: one embedded PostgreSQL per session, a fresh world per test.

A *world* is the target's (and optionally the old database's) relational rows plus a real qdrant-client
local-mode folder holding one point per fragment, with bad points planted on request.  Sizes stay small:
the whole folder must run in well under 150 s on 2 cores.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

DIM = 1536
ORGS = ("org_0001", "org_0002", "org_0003")


def _runtime_dir() -> None:
    # platformdirs warns (an error under filterwarnings=error) when XDG_RUNTIME_DIR is unusable.
    if not os.environ.get("XDG_RUNTIME_DIR") or not os.access(os.environ["XDG_RUNTIME_DIR"], os.W_OK):
        path = Path(tempfile.gettempdir()) / f"cutover-runtime-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(path)


_runtime_dir()


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The rehearsal's embedded PostgreSQL 18 + pgvector (A1's rehearsal/postgres.py), once per session."""
    # Outside pytest's basetemp: a concurrent pytest session resets /tmp/pytest-of-<user> to 0700, which the
    # server's system user then cannot traverse.
    import shutil

    from pytest_cutover.rehearsal.postgres import EmbeddedPostgres

    workdir = Path(tempfile.mkdtemp(prefix="cutover-migrate-pg-"))
    server = EmbeddedPostgres(workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def clustered(rng: np.random.Generator, orgs: list[str]) -> np.ndarray:
    """Unit float32 vectors clustered per org (random Gaussian vectors make recall meaningless)."""
    centers = {org: rng.standard_normal((4, DIM)) for org in sorted(set(orgs))}
    rows = np.stack([centers[o][rng.integers(4)] + 0.35 * rng.standard_normal(DIM) for o in orgs])
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class World:
    """A seeded target + qdrant folder, with what was planted."""

    pg: Any
    root: Path
    qdrant_path: Path
    ids: list[str]
    orgs: list[str]
    vectors: np.ndarray
    planted: dict[str, list[str]] = field(default_factory=dict)

    @property
    def target_dsn(self) -> str:
        return self.pg.target_dsn.get()

    @property
    def admin_dsn(self) -> str:
        return self.pg.admin_dsn.get()

    @property
    def old_dsn(self) -> str:
        return self.pg.old_dsn.get()

    def config_dict(self, **migrate: Any) -> dict[str, Any]:
        return {"run": {"id": "rehearsal-migrate"},
                "source": {"qdrant_path": str(self.qdrant_path), "collection": "dac_memory",
                           "database_url": self.old_dsn},
                "target": {"database_url": self.target_dsn},
                "migrate": {"batch_size": 200, "search_samples_per_org": 3, "hnsw_workers": 0, **migrate}}

    def config(self, **migrate: Any) -> Any:
        from pytest_cutover.config import parse_config

        return parse_config(self.config_dict(**migrate), env={})

    def write_toml(self, **migrate: Any) -> Path:
        import json

        lines = []
        for section, values in self.config_dict(**migrate).items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        path = self.root / "cutover.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def sql(self, query: str, *args: Any, dsn: str | None = None) -> Any:
        return asyncio.run(_fetch(dsn or self.admin_dsn, query, *args))


async def _fetch(dsn: str, query: str, *args: Any) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _reset_and_seed(pg: Any, ids: list[str | None], orgs: list[str], *, unique_vector_id: bool = True) -> None:
    import asyncpg

    admin = await asyncpg.connect(pg.admin_dsn.get())
    try:
        await admin.execute("""
            DROP TABLE IF EXISTS public.cutover_migration_checkpoint, public.cutover_migration_seen,
                public.cutover_vector_staging, public.cutover_blob_checkpoint, public.cutover_migration_pin;
            DROP SCHEMA IF EXISTS cutover CASCADE;
            TRUNCATE memory_fragments, attachments, messages, threads, users, orgs CASCADE""")
        for stmt in ("DROP INDEX IF EXISTS memory_fragments_embedding_hnsw_idx",):
            await admin.execute(stmt)
        # The rehearsal schema declares vector_id UNIQUE; a production target may not (rows sharing one).
        await admin.execute("ALTER TABLE memory_fragments DROP CONSTRAINT IF EXISTS memory_fragments_vector_id_key")
        if unique_vector_id:
            await admin.execute("ALTER TABLE memory_fragments ADD CONSTRAINT memory_fragments_vector_id_key "
                                "UNIQUE (vector_id)")
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg.target_dsn.get())
    try:
        await conn.executemany("INSERT INTO orgs(id, name) VALUES ($1, $2)", [(o, o.upper()) for o in ORGS])
        await conn.executemany("INSERT INTO users(id, org_id, email) VALUES ($1, $2, $3)",
                               [(f"user_{o[-4:]}_01", o, f"{o}@example.test") for o in ORGS])
        await conn.copy_records_to_table(
            "memory_fragments", columns=["org_id", "user_id", "tier", "content", "vector_id"],
            records=[(o, f"user_{o[-4:]}_01", "shared", f"fragment {i}", None if v is None else uuid.UUID(v))
                     for i, (o, v) in enumerate(zip(orgs, ids, strict=True))])
    finally:
        await conn.close()


def write_points(path: Path, points: list[tuple[str, list[float] | np.ndarray, dict[str, Any]]]) -> None:
    """Create the 1536-d Cosine collection ``dac_memory`` in a local-mode folder and upload ``points``."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(path))
    try:
        client.create_collection("dac_memory",
                                 vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        for start in range(0, len(points), 256):
            chunk = points[start:start + 256]
            client.upsert("dac_memory", points=models.Batch(
                ids=[p[0] for p in chunk], vectors=[np.asarray(p[1]).tolist() for p in chunk],
                payloads=[p[2] for p in chunk]), wait=True)
    finally:
        client.close()


def tamper_point(path: Path, point_id: str, change: Callable[[Any], None]) -> None:
    """Edit one point as local mode persisted it (its pickled PointStruct in SQLite), e.g. plant a NaN.

    The client refuses NaN on upload, but data on disk can hold anything; on reopen, local mode loads it as is.
    """
    db = path / "collection" / "dac_memory" / "storage.sqlite"
    con = sqlite3.connect(db)
    try:
        for key, blob in con.execute("SELECT id, point FROM points").fetchall():
            point = pickle.loads(blob)
            if str(point.id) == point_id:
                change(point)
                con.execute("UPDATE points SET point = ? WHERE id = ?", (sqlite3.Binary(pickle.dumps(point)), key))
                con.commit()
                return
    finally:
        con.close()
    raise AssertionError(f"point {point_id} not found in {db}")


def _plant_nan(point: Any) -> None:
    values = point.vector.get("") if isinstance(point.vector, dict) else point.vector  # batch upserts store {"": v}
    values[5] = float("nan")


@pytest.fixture
def make_world(pg: Any, tmp_path: Path) -> Callable[..., World]:
    """``make_world(n, missing=0, no_row=0, org_mismatch=0, nan=0, unembedded=0, dup_rows=0)``: rows + points,
    bad ones planted (``dup_rows``: that many extra rows reuse the ``vector_id`` of the last points)."""

    def make(n: int = 300, *, missing: int = 0, no_row: int = 0, org_mismatch: int = 0, nan: int = 0,
             unembedded: int = 0, dup_rows: int = 0, seed: int = 7) -> World:
        rng = np.random.default_rng(seed)
        ids = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]
        orgs = [ORGS[i % len(ORGS)] for i in range(n)]
        vectors = clustered(rng, orgs)
        world = World(pg, tmp_path, tmp_path / "qdrant", ids, orgs, vectors)
        row_ids: list[str | None] = list(ids)
        row_orgs = list(orgs)
        points = [(ids[i], vectors[i], {"org_id": orgs[i], "fragment_id": i}) for i in range(n)]
        world.planted["missing"] = sorted(ids[:missing])           # rows whose point is not in qdrant
        points = points[missing:]
        extra = [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(no_row)]
        world.planted["no-matching-row"] = sorted(extra)
        points += [(e, clustered(rng, [ORGS[0]])[0], {"org_id": ORGS[0]}) for e in extra]
        mismatched = [p[0] for p in points[:org_mismatch]]
        world.planted["org-mismatch"] = sorted(mismatched)
        points = [(p[0], p[1], {**p[2], "org_id": "org_9999"}) if p[0] in mismatched else p for p in points]
        row_ids += [None] * unembedded                              # fragments never embedded: no vector_id
        row_orgs += [ORGS[0]] * unembedded
        shared = list(range(n - dup_rows, n))                       # a second row for each of these points
        world.planted["duplicate-row-key"] = sorted(ids[i] for i in shared)
        row_ids += [ids[i] for i in shared]
        row_orgs += [orgs[i] for i in shared]
        asyncio.run(_reset_and_seed(pg, row_ids, row_orgs, unique_vector_id=not dup_rows))
        write_points(world.qdrant_path, points)
        nan_ids = [p[0] for p in points[org_mismatch:org_mismatch + nan]]
        world.planted["nan-or-inf"] = sorted(nan_ids)
        for pid in nan_ids:
            tamper_point(world.qdrant_path, pid, _plant_nan)
        return world

    return make
