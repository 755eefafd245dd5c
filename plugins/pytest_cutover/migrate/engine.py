"""The vector pipeline: a reader process scrolls and screens pages, the writer COPYs and commits them.

Why a process: converting Qdrant's floats to float32 and hashing them is CPU work
that, in a thread, starves the asyncio writer under the GIL (measured: COPY ran 6x
slower inside a threaded pipeline).  The reader sends finished :class:`Batch` objects
through a bounded queue, so memory stays flat whatever the collection size.  The
reader dies with its parent (``PR_SET_PDEATHSIG``), so a killed run never leaves a
process holding Qdrant's local-mode folder lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_cutover.migrate.accounting import Accounting
from pytest_cutover.migrate.batch import Batch, screen_page
from pytest_cutover.migrate.errors import MigrationError, SourceError, TargetError
from pytest_cutover.migrate.sink import VectorSchema, VectorSink, connect_target, ensure_state_schema, state_tables
from pytest_cutover.migrate.source import SourceSpec, offset_from_text, offset_to_text
from pytest_cutover.redact import redact

__all__ = ["VectorJob", "VectorResult", "migrate_vectors"]

_DONE = "done"
_ERROR = "error"
_HEADER = "header"


@dataclass
class VectorJob:
    """Everything one vector migration needs (built from the config by :mod:`api`)."""

    source: SourceSpec
    target_dsn: str
    run_id: str
    schema: VectorSchema = field(default_factory=VectorSchema)
    app_database_url: str | None = None
    batch_size: int = 2000
    queue_depth: int = 3
    dry_run: bool = False
    resume: bool = False
    reader: str = "process"  # "process" (default) or "thread" (tests, comparisons)
    pace_s: float = 0.0  # pause between batches: throttles the load on a live target
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0


@dataclass
class VectorResult:
    """What a run did: the books, and how the time went."""

    accounting: Accounting
    written: int = 0
    batches_sent: int = 0
    batches_total: int = 0
    resumed: bool = False
    already_done: bool = False
    dim: int = 0
    duration_s: float = 0.0
    reader_ready_s: float = 0.0  # process start, imports and opening the source, before the first page
    points_read_this_run: int = 0
    dry_run: bool = False
    dropped_indexes: list[str] = field(default_factory=list)

    @property
    def points_per_s(self) -> float:
        return self.points_read_this_run / self.duration_s if self.duration_s > 0 else 0.0


def _die_with_parent() -> None:
    """Linux: deliver SIGKILL to this process when its parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _reader(spec: SourceSpec, out: Any, start: Any, page_size: int, key_kind: str, first_seq: int,
            parent: int | None) -> None:
    """Scroll the source from ``start`` and put header, batches and a final marker on ``out``."""
    if parent is not None:
        _die_with_parent()
        if os.getppid() != parent:
            return
    source = None
    try:
        source = spec.open()
        dim = source.dimension()
        out.put((_HEADER, {"dim": dim, "count": source.count()}))
        seen: set[str] = set()
        seq = first_seq
        for page, next_offset in source.pages(start, page_size):
            t0 = time.perf_counter()
            batch = screen_page(page, seq=seq, dim=dim, seen=seen, key_kind=key_kind, next_offset=next_offset)
            batch.read_s = time.perf_counter() - t0
            if batch.size:
                out.put(batch)
                seq += 1
            # keep the de-duplication window to recent ids: scroll is ordered by id, so a duplicate is adjacent
            if len(seen) > 4 * page_size:
                seen = set(batch.keys)
        out.put((_DONE, None))
    except SourceError as exc:
        out.put((_ERROR, str(exc)))
    except Exception as exc:  # report any reader failure to the writer, redacted, with where it happened
        out.put((_ERROR, redact(f"reader failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")))
    finally:
        if source is not None:
            source.close()


class _Reader:
    """The reader, as a child process or a thread, behind one ``get`` with a deadline."""

    def __init__(self, job: VectorJob, start: Any, key_kind: str, first_seq: int) -> None:
        self.job = job
        args = (job.source, None, start, job.batch_size, key_kind, first_seq)
        if job.reader == "process":
            ctx = mp.get_context("spawn")
            self.queue: Any = ctx.Queue(maxsize=job.queue_depth)
            self.worker: Any = ctx.Process(target=_reader, args=(*args[:1], self.queue, *args[2:], os.getpid()),
                                           name="cutover-vector-reader", daemon=True)
        elif job.reader == "thread":
            self.queue = queue_mod.Queue(maxsize=job.queue_depth)
            self.worker = threading.Thread(target=_reader, args=(*args[:1], self.queue, *args[2:], None),
                                           name="cutover-vector-reader", daemon=True)
        else:
            raise MigrationError(f"unknown reader mode {job.reader!r}", hint="use 'process' or 'thread'")
        self.worker.start()

    def get(self) -> Any:
        deadline = time.monotonic() + self.job.read_timeout_s
        while True:
            try:
                return self.queue.get(timeout=0.5)
            except queue_mod.Empty:
                alive = self.worker.is_alive()
                if alive and time.monotonic() <= deadline:
                    continue
                what = (f"sent nothing for {self.job.read_timeout_s:g}s" if alive else
                        f"exited (code {getattr(self.worker, 'exitcode', None)}) without finishing")
                raise SourceError(f"the vector reader {what} while reading {self.job.source.where()}",
                                  hint="check that qdrant is reachable and its folder is not locked by another "
                                       "process") from None

    def stop(self) -> None:
        if isinstance(self.worker, threading.Thread):
            with contextlib.suppress(queue_mod.Empty):  # unblock a reader waiting on a full queue
                while True:
                    self.queue.get_nowait()
            self.worker.join(timeout=5)
            return
        if self.worker.is_alive():
            self.worker.terminate()
        self.worker.join(timeout=10)
        if self.worker.is_alive():  # pragma: no cover - terminate ignored
            self.worker.kill()
            self.worker.join(timeout=5)
        self.queue.close()
        self.queue.cancel_join_thread()


async def migrate_vectors(job: VectorJob, *, on_progress: Callable[[int, int | None], None] | None = None,
                          on_event: Callable[[str, dict[str, Any]], None] | None = None) -> VectorResult:
    """Run (or resume) one vector migration; see the module docstring.

    ``on_progress(points_done, points_total)`` drives a progress bar; ``on_event(name, data)`` receives
    ``copy`` (before a batch is sent) and ``commit`` (after it is durable) events.
    """
    emit = on_event or (lambda name, data: None)
    started = time.perf_counter()
    conn = await connect_target(job.target_dsn, timeout=job.connect_timeout_s,
                                app_database_url=job.app_database_url)
    reader: _Reader | None = None
    try:
        loop = asyncio.get_running_loop()
        sink = VectorSink(conn, job.schema, job.run_id, dry_run=job.dry_run)
        result = VectorResult(accounting=Accounting(), dry_run=job.dry_run)
        checkpoint = None
        if not job.dry_run:
            sink.use_state_schema(await ensure_state_schema(conn, job.schema.state_schema))
            await conn.execute(state_tables(sink.state_schema))
            checkpoint = await sink.load_checkpoint()
            if checkpoint is not None and not job.resume:
                await sink.reset()  # a fresh run: start over (updates are idempotent, so nothing is doubled)
                checkpoint = None
        if checkpoint is not None:
            result.accounting = Accounting.from_state(checkpoint.state)
            result.resumed = True
            result.already_done = checkpoint.done
            result.written = int((checkpoint.state or {}).get("written", 0))
        accounting = result.accounting
        batches_done = checkpoint.batches if checkpoint else 0
        key_kind = await _key_kind(conn, job.schema)
        if not result.already_done:
            start = offset_from_text(checkpoint.next_offset) if checkpoint else None
            reader = _Reader(job, start, key_kind, batches_done)
            item = await loop.run_in_executor(None, reader.get)
            if item[0] == _ERROR:
                raise SourceError(item[1])
            result.reader_ready_s = time.perf_counter() - started
            result.dim = int(item[1]["dim"])
            total = int(item[1]["count"])
            await sink.prepare(result.dim)
            if not job.dry_run:
                # An HNSW index turns each batch's UPDATE into thousands of graph inserts (measured: 14 s per
                # 2000 rows instead of 0.15 s): drop it for the load; the caller builds it once afterwards.
                from pytest_cutover.migrate.verify import drop_hnsw

                result.dropped_indexes = await drop_hnsw(conn, job.schema)
                if result.dropped_indexes:
                    emit("index-dropped", {"names": result.dropped_indexes})
            if on_progress:
                on_progress(accounting.points, total)
            while True:
                item = await loop.run_in_executor(None, reader.get)
                if isinstance(item, tuple):
                    if item[0] == _ERROR:
                        raise SourceError(item[1])
                    break
                batch: Batch = item
                emit("copy", {"seq": batch.seq, "points": batch.size, "last_key": batch.last_key})

                def books(refused: list[tuple[str, str]], batch: Batch = batch) -> dict[str, Any]:
                    for key, reason in [*batch.unstaged, *refused]:
                        accounting.reject(reason, key)
                    accounting.add_migrated(len(batch.keys) - len(refused))
                    return {**accounting.to_state(), "written": result.written}

                refused, written = await sink.write(batch, batches_done + 1, offset_to_text(batch.next_offset),
                                                    batch.next_offset is None, books)
                batches_done += 1
                result.batches_sent += 1
                result.points_read_this_run += batch.size
                result.written += written
                emit("commit", {"seq": batch.seq, "points": batch.size, "refused": len(refused) + len(batch.unstaged)})
                if on_progress:
                    on_progress(accounting.points, total)
                if job.pace_s:
                    await asyncio.sleep(job.pace_s)
            await sink.mark_done(batches_done, {**accounting.to_state(), "written": result.written})
        missing, sample = await sink.missing()
        accounting.set_missing(missing, sample)
        result.batches_total = batches_done
        result.duration_s = time.perf_counter() - started
        await sink.drop_staging()
        return result
    finally:
        if reader is not None:
            reader.stop()
        await conn.close()


async def _key_kind(conn: Any, schema: VectorSchema) -> str:
    """How point ids must look to match the target's key column: ``uuid``, ``int`` or ``text``."""
    key_type = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) "
        "AND attname = $2 AND attnum > 0 AND NOT attisdropped", '"' + schema.table.replace('"', '""') + '"',
        schema.key)
    if key_type is None:
        raise TargetError(f"target column {schema.table}.{schema.key} does not exist",
                          hint="check schema.fragments_table and schema.vector_id_column, and that the relational "
                               "data was restored into the target")
    return "uuid" if key_type == "uuid" else ("int" if key_type in ("bigint", "integer", "smallint") else "text")
