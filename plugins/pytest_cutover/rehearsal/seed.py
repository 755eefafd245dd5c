"""Deterministic multi-tenant seed data for the rehearsal: old database, target rows, Qdrant source collection.

Why embeddings are clustered: independent random 1536-d vectors make every neighbour nearly equidistant, so HNSW
recall on them is meaningless (field notes: recall@10 0.14 on random vs 1.00 on clustered data).  Real embeddings
cluster by topic.  Each org here gets its own topics, each topic a few sub-topics, and every fragment is
``topic + 0.6 * subtopic + 0.5 * own noise`` (unit directions), unit-normalised to float32; about 1 % are
near-duplicates of an earlier fragment (edited copies).  Cosine similarity is then ~0.84 inside a sub-topic,
~0.62 inside a topic and ~0 across topics and orgs.

Everything comes from one ``numpy`` generator seeded with ``seed``: same seed and size, same bytes (timestamps are
fixed offsets from a fixed date, never ``now()``), and :attr:`SeedData.digest` proves it.

Edge cases planted on purpose: an empty message and an empty fragment, fragments without a thread, fragments not yet
embedded (``vector_id`` NULL, so no point), unicode in names, titles, content and a file name, a zero-byte and a
max-size attachment.

Writers: binary COPY with asyncpg into the old database and into the target's relational tables (the runbook assumes
the relational data was moved before the cutover; ``embedding`` stays NULL for the migration to fill), identity
sequences moved past the copied ids; and batched upserts into a qdrant-client local-mode folder, whose client is
always closed (local mode locks the folder to one process).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pytest_cutover.redact import Secret, reveal
from pytest_cutover.rehearsal.errors import RehearsalError

__all__ = [
    "COLLECTION",
    "COLUMNS",
    "DIM",
    "SIZES",
    "SeedData",
    "SeedSize",
    "SeedSummary",
    "generate",
    "seed_all",
    "seed_all_async",
    "write_postgres",
    "write_qdrant",
]

DIM = 1536
COLLECTION = "dac_memory"
_EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)
_TOPIC_WEIGHT, _SUBTOPIC_WEIGHT, _NOISE_WEIGHT = 1.0, 0.6, 0.5
_DUPLICATE_NOISE = 0.02
_WORDS = (
    "invoice", "onboarding", "latency", "migration", "roadmap", "refund", "contract", "dashboard", "incident",
    "pricing", "backup", "release", "audit", "billing", "support", "analytics", "security", "storage", "search",
    "payroll", "hiring", "forecast", "inventory", "shipping", "compliance", "training", "feedback", "renewal",
)
_UNICODE = ("Zürich café ☕", "東京オフィス 報告", "مرحبا بالعالم", "naïve résumé – “quotes”", "emoji 🚀🔥 mix",
            "Ελληνικά κείμενο", "e\u0301 combining accent")


@dataclass(frozen=True)
class SeedSize:
    """How much data to generate (all counts are per org unless the name says otherwise)."""

    orgs: int = 4
    users_per_org: int = 2
    threads_per_user: int = 3
    messages_per_thread: int = 6
    fragments_per_org: int = 375
    attachments_per_org: int = 10
    attachment_bytes: int = 48 * 1024  # typical attachment size (log-normal around this)
    max_blob_bytes: int = 2 * 1024 * 1024  # one attachment of exactly this size (the max-size BLOB)
    topics_per_org: int = 6
    subtopics_per_topic: int = 3
    private_share: float = 0.2
    unembedded_share: float = 0.02
    near_duplicate_share: float = 0.01
    threadless_share: float = 0.1


SIZES: dict[str, SeedSize] = {
    # ~1500 fragments, 40 attachments: a few seconds on 2 cores.
    "small": SeedSize(),
    # ~20k fragments (19.6k points: under qdrant-client local mode's 20k "not recommended" threshold).
    "large": SeedSize(orgs=20, users_per_org=5, threads_per_user=4, messages_per_thread=10, fragments_per_org=1000,
                      attachments_per_org=20, attachment_bytes=64 * 1024, max_blob_bytes=20 * 1024 * 1024,
                      topics_per_org=12, subtopics_per_topic=4),
}


@dataclass
class SeedData:
    """Rows (tuples in table column order) and vectors generated from one seed; nothing written yet."""

    seed: int
    size: SeedSize
    orgs: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[tuple[Any, ...]] = field(default_factory=list)
    threads: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    fragments: list[tuple[Any, ...]] = field(default_factory=list)
    attachments: list[tuple[Any, ...]] = field(default_factory=list)
    #: One row per fragment with a vector_id, in ``fragments`` order: (vector_id, org_id, fragment_id, user_id).
    points: list[tuple[str, str, int, str]] = field(default_factory=list)
    #: float32, shape (len(points), DIM), unit-normalised.
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, DIM), dtype=np.float32))
    #: Topic label per point (``org_id/topic/subtopic``), for recall tests.
    labels: list[str] = field(default_factory=list)
    digest: str = ""


#: Column order of each table's tuples (the COPY column lists).
COLUMNS: dict[str, tuple[str, ...]] = {
    "orgs": ("id", "name", "created_at"),
    "users": ("id", "org_id", "email"),
    "threads": ("id", "org_id", "user_id", "title", "created_at"),
    "messages": ("id", "org_id", "thread_id", "user_id", "role", "content", "created_at"),
    "memory_fragments": ("id", "org_id", "user_id", "thread_id", "tier", "content", "vector_id", "created_at"),
    "attachments": ("id", "org_id", "thread_id", "user_id", "filename", "content_type", "size_bytes", "sha256",
                    "file_data", "storage_path", "storage_bucket", "created_at"),
}
_TABLE_ORDER = ("orgs", "users", "threads", "messages", "memory_fragments", "attachments")
_IDENTITY_TABLES = ("messages", "memory_fragments", "attachments")


@dataclass(frozen=True)
class SeedSummary:
    """Counts read back from what was written (the old database and the Qdrant folder), plus the content digest."""

    seed: int
    size: str
    orgs: int
    users: int
    threads: int
    messages: int
    fragments: int
    fragments_with_vector_id: int
    points: int
    attachments: int
    blob_bytes: int
    digest: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON figures."""
        return dict(self.__dict__)


def _resolve_size(size: str | SeedSize) -> tuple[str, SeedSize]:
    if isinstance(size, SeedSize):
        return "custom", size
    try:
        return size, SIZES[size]
    except KeyError:
        raise RehearsalError(f"seed: unknown size {size!r}", hint=f"use one of: {', '.join(sorted(SIZES))}") from None


def _uuid(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(bytes=rng.bytes(16), version=4)


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _sentence(rng: np.random.Generator, topic_words: Sequence[str], n: int) -> str:
    picks = rng.choice(len(topic_words), size=n)
    return " ".join(topic_words[i] for i in picks)


def _messages(data: SeedData, rng: np.random.Generator, o: int, org: str,
              threads: Sequence[tuple[uuid.UUID, str]]) -> None:
    """The messages of org number ``o``'s threads (ids continue across orgs)."""
    spec = data.size
    for t_index, (tid, user) in enumerate(threads):
        for m in range(spec.messages_per_thread):
            message_id = len(data.messages) + 1
            is_user = m % 2 == 0
            content = _sentence(rng, _WORDS, 8 + m)
            if message_id == 2:
                content = ""  # edge case: an empty message
            elif message_id % 29 == 0:
                content = f"{content} {_UNICODE[message_id % len(_UNICODE)]}"
            data.messages.append((message_id, org, tid, user if is_user else None, "user" if is_user else
                                  "assistant", content, _EPOCH + timedelta(days=o, minutes=t_index, seconds=m)))


def _attachments(data: SeedData, rng: np.random.Generator, o: int, org: str,
                 threads: Sequence[tuple[uuid.UUID, str]]) -> None:
    """The attachments of org number ``o`` with their BLOBs, edge cases in orgs 1 and 2 (ids continue across orgs)."""
    spec = data.size
    for a in range(spec.attachments_per_org):
        attachment_id = len(data.attachments) + 1
        tid, user = threads[int(rng.integers(len(threads)))]
        if o == 1 and a == 0:
            nbytes = spec.max_blob_bytes  # edge case: the max-size BLOB
        elif o == 1 and a == 1:
            nbytes = 0  # edge case: an empty file
        else:
            nbytes = int(min(spec.max_blob_bytes - 1, rng.lognormal(np.log(spec.attachment_bytes), 0.8)))
        blob = rng.bytes(nbytes)
        kind = a % 3
        name, ctype = (("report.pdf", "application/pdf"), ("photo.png", "image/png"),
                       ("notes.txt", "text/plain"))[kind]
        if o == 2 and a == 0:
            name = "résumé 報告 final.pdf"  # edge case: unicode and spaces in a storage path
        data.attachments.append((attachment_id, org, tid, user, f"{attachment_id:05d}-{name}", ctype, nbytes,
                                 hashlib.sha256(blob).hexdigest(), blob, None, None,
                                 _EPOCH + timedelta(days=o, hours=2, seconds=a)))


def generate(seed: int = 42, size: str | SeedSize = "small") -> SeedData:
    """Build every row and vector in memory from ``seed`` (pure: no I/O)."""
    _, spec = _resolve_size(size)
    rng = np.random.default_rng(seed)
    data = SeedData(seed=seed, size=spec)
    vectors: list[np.ndarray] = []
    fragment_id = 0
    for o in range(1, spec.orgs + 1):
        org = f"org_{o:04d}"
        org_name = f"Org {o:04d}" if o % 3 else f"Org {o:04d} {_UNICODE[o % len(_UNICODE)]}"
        data.orgs.append((org, org_name, _EPOCH + timedelta(days=o)))
        users = [f"user_{o:04d}_{u:02d}" for u in range(1, spec.users_per_org + 1)]
        for u, user in enumerate(users):
            local = user if (o + u) % 5 else f"ñandú.{user}"
            data.users.append((user, org, f"{local}@org{o:04d}.example"))
        threads: list[tuple[uuid.UUID, str]] = []
        for user in users:
            for _ in range(spec.threads_per_user):
                tid = _uuid(rng)
                n = len(data.threads)
                title = f"{_WORDS[n % len(_WORDS)]} thread {n}"
                if n % 7 == 3:
                    title = f"{title} {_UNICODE[n % len(_UNICODE)]}"
                data.threads.append((tid, org, user, title, _EPOCH + timedelta(days=o, minutes=n)))
                threads.append((tid, user))
        _messages(data, rng, o, org, threads)
        # Embedding geometry of this org: topics, sub-topics, per-fragment noise (all unit directions).
        topics = _unit(rng.standard_normal((spec.topics_per_org, DIM)))
        subtopics = _unit(rng.standard_normal((spec.topics_per_org, spec.subtopics_per_topic, DIM)))
        topic_words = [tuple(_WORDS[(t * 5 + k) % len(_WORDS)] for k in range(5)) for t in range(spec.topics_per_org)]
        org_vectors: list[tuple[int, np.ndarray, str]] = []  # (fragment index in data.fragments, vector, content)
        for f in range(spec.fragments_per_org):
            fragment_id += 1
            user = users[int(rng.integers(len(users)))]
            user_threads = [tid for tid, owner in threads if owner == user] or [threads[0][0]]
            pick = user_threads[int(rng.integers(len(user_threads)))]
            thread = None if rng.random() < spec.threadless_share else pick
            tier = "private" if rng.random() < spec.private_share else "shared"
            t, s = int(rng.integers(spec.topics_per_org)), int(rng.integers(spec.subtopics_per_topic))
            content = f"{_sentence(rng, topic_words[t], 12)} #{fragment_id}"
            noise = _unit(rng.standard_normal(DIM))
            vec = _TOPIC_WEIGHT * topics[t] + _SUBTOPIC_WEIGHT * subtopics[t, s] + _NOISE_WEIGHT * noise
            label = f"{org}/{t}/{s}"
            if org_vectors and rng.random() < spec.near_duplicate_share:
                base_index, base_vec, base_content = org_vectors[int(rng.integers(len(org_vectors)))]
                vec = base_vec + _DUPLICATE_NOISE * _unit(rng.standard_normal(DIM))
                content = f"{base_content} (edited)"
                label = data.labels[base_index] if base_index < len(data.labels) else label
            if f == 1:
                content = ""  # edge case: an empty fragment
            elif fragment_id % 97 == 0:
                content = f"{content} {_UNICODE[fragment_id % len(_UNICODE)]}"
            embedded = f != 2 and rng.random() >= spec.unembedded_share  # f == 2: at least one per org unembedded
            vector_id = _uuid(rng) if embedded else None
            created = _EPOCH + timedelta(days=o, hours=1, seconds=f)
            data.fragments.append((fragment_id, org, user, thread, tier, content, vector_id, created))
            if vector_id is not None:
                unit32 = _unit(vec.astype(np.float64)).astype(np.float32)
                data.points.append((str(vector_id), org, fragment_id, user))
                data.labels.append(label)
                vectors.append(unit32)
                org_vectors.append((len(data.labels) - 1, vec, content))
        _attachments(data, rng, o, org, threads)
    data.vectors = np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, DIM), dtype=np.float32)
    data.digest = _digest(data)
    return data


def _digest(data: SeedData) -> str:
    """sha256 over every row (canonical text) and every vector's float32 bytes."""
    h = hashlib.sha256()
    for table in _TABLE_ORDER:
        h.update(table.encode())
        for row in getattr(data, "fragments" if table == "memory_fragments" else table):
            for value in row:
                h.update(value if isinstance(value, bytes) else repr(value).encode("utf-8"))
                h.update(b"\x1f")
            h.update(b"\x1e")
    for point in data.points:
        h.update(repr(point).encode("utf-8"))
    h.update(np.ascontiguousarray(data.vectors, dtype="<f4").tobytes())
    return h.hexdigest()


async def write_postgres(dsn: str | Secret, data: SeedData, *, timeout: float = 300.0) -> None:
    """COPY every table into the database at ``dsn`` (old or target; the target's ``embedding`` stays NULL).

    The tables must be empty; connect as a role that may write them past RLS (the owner on the old database,
    ``postgres`` on the target, which has BYPASSRLS).  One transaction: all rows or none.
    """
    import asyncpg

    try:
        conn = await asyncpg.connect(reveal(dsn), timeout=30)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RehearsalError(f"seed: cannot connect to {Secret(reveal(dsn) or '')}: {exc}",
                             hint="is the embedded PostgreSQL running and the role's password right?") from exc
    try:
        async with asyncio.timeout(timeout), conn.transaction():
            for table in _TABLE_ORDER:
                rows = data.fragments if table == "memory_fragments" else getattr(data, table)
                await conn.copy_records_to_table(table, records=rows, columns=list(COLUMNS[table]))
            for table in _IDENTITY_TABLES:
                await conn.execute(
                    f"select setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                    f"from {table}")
    except TimeoutError:
        raise RehearsalError(f"seed: writing the seed data did not finish within {timeout:.0f}s",
                             hint="use a smaller size or check the server log") from None
    except asyncpg.PostgresError as exc:
        raise RehearsalError(f"seed: COPY failed: {exc}",
                             hint="seed into freshly created, empty tables (rebuild the stack)") from exc
    finally:
        await conn.close()


def write_qdrant(path: Path | None, data: SeedData, *, collection: str = COLLECTION, batch_size: int = 256,
                 url: str | None = None) -> int:
    """(Re)create ``collection`` (1536-d, Cosine) in the local-mode folder ``path`` and upsert every point.

    With ``url`` (and ``path=None``) the collection is written to a Qdrant server instead (the testcontainers
    stack).  Returns the collection's exact point count read back.  The client is closed before returning, also
    on error, because local mode locks the folder to one process.
    """
    from qdrant_client import QdrantClient, models

    if url is not None:
        client = QdrantClient(url=url, timeout=30)
    else:
        path = Path(path)  # type: ignore[arg-type]
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            raise RehearsalError(f"seed: cannot open the qdrant folder {path}: {exc}",
                                 hint="another process (the app?) holds it open; close it first") from None
    try:
        if client.collection_exists(collection):
            client.delete_collection(collection)
        client.create_collection(collection, vectors_config=models.VectorParams(size=DIM,
                                                                                 distance=models.Distance.COSINE))
        _relax_local_durability(client, collection)
        for start in range(0, len(data.points), batch_size):
            chunk = data.points[start:start + batch_size]
            client.upsert(collection, points=models.Batch(
                ids=[p[0] for p in chunk],
                vectors=data.vectors[start:start + len(chunk)].tolist(),
                payloads=[{"org_id": p[1], "fragment_id": p[2], "user_id": p[3]} for p in chunk],
            ), wait=True)
        return int(client.count(collection, exact=True).count)
    finally:
        client.close()


def _relax_local_durability(client: Any, collection: str) -> None:
    """Skip the fsync of every point while seeding (this client's connection only; the folder is unchanged).

    Local mode commits one sqlite transaction per point: with the default ``synchronous=FULL`` that is an fsync per
    point (measured here: ~3-4 ms/point, 80 s for the 19.6k points of ``large``).  Seed data is regenerated at will,
    so durability during the upload does not matter; readers opening the folder later use their own connection.
    Reaches into qdrant-client's local internals (1.20): if they change, seeding just stays slow.
    """
    import sqlite3

    try:
        conn = client._client.collections[collection].storage.storage
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA journal_mode = MEMORY")
    except (AttributeError, KeyError, TypeError, sqlite3.Error):
        return


async def _read_counts(dsn: str | Secret) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(reveal(dsn), timeout=30)
    try:
        row = await conn.fetchrow(
            "select (select count(*) from orgs) as orgs, (select count(*) from users) as users,"
            " (select count(*) from threads) as threads, (select count(*) from messages) as messages,"
            " (select count(*) from memory_fragments) as fragments,"
            " (select count(vector_id) from memory_fragments) as fragments_with_vector_id,"
            " (select count(*) from attachments) as attachments,"
            " (select coalesce(sum(octet_length(file_data)), 0) from attachments) as blob_bytes")
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def seed_all_async(*, old_dsn: str | Secret, target_dsn: str | Secret | None, qdrant_path: Path | None,
                         seed: int = 42, size: str | SeedSize = "small", collection: str = COLLECTION,
                         qdrant_url: str | None = None) -> tuple[SeedSummary, SeedData]:
    """Generate, write old + target + Qdrant, and read the counts back (see :func:`seed_all`)."""
    started = time.monotonic()
    size_name, _ = _resolve_size(size)
    data = generate(seed, size)
    writes = [write_postgres(old_dsn, data)]
    if target_dsn is not None:
        writes.append(write_postgres(target_dsn, data))
    await asyncio.gather(*writes)
    points = 0
    if qdrant_path is not None:
        points = await asyncio.to_thread(write_qdrant, Path(qdrant_path), data, collection=collection)
    elif qdrant_url is not None:
        points = await asyncio.to_thread(write_qdrant, None, data, collection=collection, url=qdrant_url)
    counts = await _read_counts(old_dsn)
    summary = SeedSummary(seed=seed, size=size_name, points=points, digest=data.digest,
                          seconds=round(time.monotonic() - started, 3), **counts)
    return summary, data


def seed_all(*, old_dsn: str | Secret, target_dsn: str | Secret | None, qdrant_path: Path | None, seed: int = 42,
             size: str | SeedSize = "small", collection: str = COLLECTION,
             qdrant_url: str | None = None) -> SeedSummary:
    """Seed the old database, the target's relational rows and the Qdrant collection; return what was written.

    ``target_dsn`` should log in as ``postgres`` (BYPASSRLS, owner) and ``old_dsn`` as the old database's owner.
    Pass ``None`` for a part to skip it.  Called from inside a running event loop, it seeds on a worker thread
    with its own loop (and blocks the caller until done); async code should rather await :func:`seed_all_async`.
    """
    coro = seed_all_async(old_dsn=old_dsn, target_dsn=target_dsn, qdrant_path=qdrant_path, seed=seed, size=size,
                          collection=collection, qdrant_url=qdrant_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        summary, _ = asyncio.run(coro)
        return summary
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cutover-seed") as pool:
        summary, _ = pool.submit(asyncio.run, coro).result()
    return summary
