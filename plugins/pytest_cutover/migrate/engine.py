"""The vector pipeline: a reader process scrolls and screens pages, the writer COPYs and commits them.

Why a process: converting Qdrant's floats to float32 and hashing them is CPU work
that, in a thread, starves the asyncio writer under the GIL (measured: COPY ran 6x
slower inside a threaded pipeline).  The reader sends finished :class:`Batch` objects
through a bounded queue, so memory stays flat whatever the collection size.  The
reader dies with its parent (``PR_SET_PDEATHSIG``), so a killed run never leaves a
process holding Qdrant's local-mode folder lock.

Why the reader starts first: its start-up (a new interpreter, importing qdrant-client,
opening the collection) is the largest fixed cost of a run (measured: 4 s of 7.5 s at
20k points in local mode) and needs nothing from the target.  The reader opens the
source while the writer connects and prepares the target (checkpoint, state and
staging tables, run lock), then waits to be told where to start (the checkpoint's
cursor and the target's key type).  A transaction-pooler DSN is refused before the
reader is started, so a refused run reads nothing.
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
from pytest_cutover.migrate.sink import (
    VectorSchema,
    VectorSink,
    connect_target,
    ensure_state_schema,
    refuse_pooler,
    state_tables,
)
from pytest_cutover.migrate.source import SourceSpec, offset_from_text, offset_to_text
from pytest_cutover.redact import redact
from pytest_cutover.util.sql import quote_ident

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
    """What a run did: the books, and how the time went.

    ``timeline`` holds moments in seconds since the run started (``reader_started``, ``connect_start``,
    ``connected``, ``prepared``, ``reader_ready``, ``go``, ``first_batch``, ``read_done``, ``done``), on the
    system-wide monotonic clock, so the reader process's own stamp (``reader_ready``) is comparable.
    ``busy`` holds totals in seconds: the reader's ``scroll_s``, ``screen_s`` and ``reader_blocked_s`` (waiting
    on a full queue: the writer is the bottleneck), the writer's ``writer_waiting_s`` (waiting for pages: the
    reader is) and ``writing_s``.
    """

    accounting: Accounting
    written: int = 0
    batches_sent: int = 0
    batches_total: int = 0
    resumed: bool = False
    already_done: bool = False
    dim: int = 0
    duration_s: float = 0.0
    reader_ready_s: float = 0.0  # the reader had started, imported and opened the source (its own clock)
    points_read_this_run: int = 0
    dry_run: bool = False
    dropped_indexes: list[str] = field(default_factory=list)
    timeline: dict[str, float] = field(default_factory=dict)
    busy: dict[str, float] = field(default_factory=dict)

    @property
    def points_per_s(self) -> float:
        return self.points_read_this_run / self.duration_s if self.duration_s > 0 else 0.0


def _die_with_parent() -> None:
    """Linux: deliver SIGKILL to this process when its parent dies."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stop_requested(control: Any) -> bool:
    """Whether the writer asked the reader to stop (``None`` on the control queue)."""
    try:
        return control.get_nowait() is None
    except queue_mod.Empty:
        return False


def _await_go(control: Any, wait_s: float) -> tuple[Any, str, int] | None:
    """The writer's ``(start, key_kind, first_seq)``, or ``None`` when it stops the reader instead."""
    try:
        return control.get(timeout=wait_s)
    except queue_mod.Empty:
        raise SourceError(f"the vector reader was not told where to start within {wait_s:g}s",
                          hint="the writer stalled while preparing the target; check the target database") from None


def _reader(spec: SourceSpec, out: Any, control: Any, page_size: int, parent: int | None, wait_s: float) -> None:
    """Open the source, send its header, wait for ``(start, key_kind, first_seq)`` on ``control``, then scroll
    from ``start`` and put batches and a final marker on ``out``.  ``None`` on ``control`` stops the reader."""
    if parent is not None:
        _die_with_parent()
        if os.getppid() != parent:
            return
    source = None
    try:
        source = spec.open()
        dim = source.dimension()
        out.put((_HEADER, {"dim": dim, "count": source.count(), "ready_at": time.monotonic()}))
        go = _await_go(control, wait_s)
        if go is None:
            return
        start, key_kind, first_seq = go
        seen: set[str] = set()
        seq = first_seq
        blocked = 0.0
        pages = source.pages(start, page_size)
        while True:
            t0 = time.perf_counter()
            step = next(pages, None)
            if step is None:
                break
            page, next_offset = step
            t1 = time.perf_counter()
            batch = screen_page(page, seq=seq, dim=dim, seen=seen, key_kind=key_kind, next_offset=next_offset)
            batch.scroll_s, batch.read_s, batch.blocked_s = t1 - t0, time.perf_counter() - t1, blocked
            if batch.size:
                t2 = time.perf_counter()
                out.put(batch)
                blocked = time.perf_counter() - t2
                seq += 1
            # keep the de-duplication window to recent ids: scroll is ordered by id, so a duplicate is adjacent
            if len(seen) > 4 * page_size:
                seen = set(batch.keys)
            if _stop_requested(control):
                return
        out.put((_DONE, {"blocked_s": blocked}))
    except SourceError as exc:
        out.put((_ERROR, str(exc)))
    except Exception as exc:  # report any reader failure to the writer, redacted, with where it happened
        out.put((_ERROR, redact(f"reader failed: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")))
    finally:
        if source is not None:
            source.close()


class _Reader:
    """The reader, as a child process or a thread: started at once, told where to start by :meth:`go`, read
    through one :meth:`get` with a deadline."""

    def __init__(self, job: VectorJob) -> None:
        self.job = job
        if job.reader == "process":
            ctx = mp.get_context("spawn")
            self.queue: Any = ctx.Queue(maxsize=job.queue_depth)
            self.control: Any = ctx.Queue()
            parent: int | None = os.getpid()
            make: Any = ctx.Process
        elif job.reader == "thread":
            self.queue = queue_mod.Queue(maxsize=job.queue_depth)
            self.control = queue_mod.Queue()
            parent, make = None, threading.Thread
        else:
            raise MigrationError(f"unknown reader mode {job.reader!r}", hint="use 'process' or 'thread'")
        self.worker: Any = make(target=_reader, name="cutover-vector-reader", daemon=True,
                                args=(job.source, self.queue, self.control, job.batch_size, parent,
                                      job.read_timeout_s))
        self.worker.start()

    def go(self, start: Any, key_kind: str, first_seq: int) -> None:
        """Tell the waiting reader where to start and how the target's keys look."""
        self.control.put((start, key_kind, first_seq))

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
            self.control.put(None)  # a reader waiting to start, or between pages, stops
            deadline = time.monotonic() + 5
            while self.worker.is_alive() and time.monotonic() < deadline:
                with contextlib.suppress(queue_mod.Empty):  # unblock a reader waiting on a full queue
                    while True:
                        self.queue.get_nowait()
                self.worker.join(timeout=0.05)
            return
        if self.worker.is_alive():
            self.worker.terminate()
        self.worker.join(timeout=10)
        if self.worker.is_alive():  # pragma: no cover - terminate ignored
            self.worker.kill()
            self.worker.join(timeout=5)
        for q in (self.queue, self.control):
            q.close()
            q.cancel_join_thread()


async def migrate_vectors(job: VectorJob, *, on_progress: Callable[[int, int | None], None] | None = None,
                          on_event: Callable[[str, dict[str, Any]], None] | None = None) -> VectorResult:
    """Run (or resume) one vector migration; see the module docstring.

    ``on_progress(points_done, points_total)`` drives a progress bar; ``on_event(name, data)`` receives
    ``target-prepared`` (the target is ready; the reader may still be starting), ``index-dropped``, ``copy``
    (before a batch is sent) and ``commit`` (after it is durable) events.
    """
    emit = on_event or (lambda name, data: None)
    started = time.monotonic()
    result = VectorResult(accounting=Accounting(), dry_run=job.dry_run)

    def mark(name: str, at: float | None = None) -> None:
        result.timeline[name] = round((time.monotonic() if at is None else at) - started, 6)

    refuse_pooler(job.target_dsn, job.app_database_url)  # before the reader starts: a refused run reads nothing
    reader = _Reader(job)  # opens the source while the target is prepared below
    mark("reader_started")
    conn = None
    try:
        mark("connect_start")
        conn = await connect_target(job.target_dsn, timeout=job.connect_timeout_s,
                                    app_database_url=job.app_database_url)
        mark("connected")
        loop = asyncio.get_running_loop()
        sink = VectorSink(conn, job.schema, job.run_id, dry_run=job.dry_run)
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
        busy = result.busy
        for name in ("scroll_s", "screen_s", "reader_blocked_s", "writer_waiting_s", "writing_s"):
            busy[name] = 0.0
        if not result.already_done:
            await sink.prepare()
            mark("prepared")
            emit("target-prepared", {})
            item = await loop.run_in_executor(None, reader.get)
            if item[0] == _ERROR:
                raise SourceError(item[1])
            mark("reader_ready", item[1]["ready_at"])
            result.reader_ready_s = result.timeline["reader_ready"]
            result.dim = int(item[1]["dim"])
            total = int(item[1]["count"])
            sink.check_dimension(result.dim)
            if not job.dry_run:
                # An HNSW index turns each batch's UPDATE into thousands of graph inserts (measured: 14 s per
                # 2000 rows instead of 0.15 s): drop it for the load; the caller builds it once afterwards.
                from pytest_cutover.migrate.verify import drop_hnsw

                result.dropped_indexes = await drop_hnsw(conn, job.schema)
                if result.dropped_indexes:
                    emit("index-dropped", {"names": result.dropped_indexes})
            reader.go(offset_from_text(checkpoint.next_offset) if checkpoint else None, key_kind, batches_done)
            mark("go")
            if on_progress:
                on_progress(accounting.points, total)
            while True:
                t0 = time.monotonic()
                item = await loop.run_in_executor(None, reader.get)
                busy["writer_waiting_s"] += time.monotonic() - t0
                if isinstance(item, tuple):
                    if item[0] == _ERROR:
                        raise SourceError(item[1])
                    busy["reader_blocked_s"] += float((item[1] or {}).get("blocked_s", 0.0))
                    break
                batch: Batch = item
                if "first_batch" not in result.timeline:
                    mark("first_batch")
                busy["scroll_s"] += batch.scroll_s
                busy["screen_s"] += batch.read_s
                busy["reader_blocked_s"] += batch.blocked_s
                emit("copy", {"seq": batch.seq, "points": batch.size, "last_key": batch.last_key})

                def books(refused: list[tuple[str, str]], batch: Batch = batch) -> dict[str, Any]:
                    for key, reason in [*batch.unstaged, *refused]:
                        accounting.reject(reason, key)
                    accounting.add_migrated(len(batch.keys) - len(refused))
                    return {**accounting.to_state(), "written": result.written}

                t0 = time.monotonic()
                refused, written = await sink.write(batch, batches_done + 1, offset_to_text(batch.next_offset),
                                                    batch.next_offset is None, books)
                busy["writing_s"] += time.monotonic() - t0
                batches_done += 1
                result.batches_sent += 1
                result.points_read_this_run += batch.size
                result.written += written
                emit("commit", {"seq": batch.seq, "points": batch.size, "refused": len(refused) + len(batch.unstaged)})
                if on_progress:
                    on_progress(accounting.points, total)
                if job.pace_s:
                    await asyncio.sleep(job.pace_s)
            mark("read_done")
            await sink.mark_done(batches_done, {**accounting.to_state(), "written": result.written})
        missing, sample = await sink.missing()
        accounting.set_missing(missing, sample)
        result.batches_total = batches_done
        result.duration_s = time.monotonic() - started
        mark("done")
        await sink.drop_staging()
        result.busy = {name: round(value, 6) for name, value in busy.items()}
        return result
    finally:
        reader.stop()
        if conn is not None:
            await conn.close()


async def _key_kind(conn: Any, schema: VectorSchema) -> str:
    """How point ids must look to match the target's key column: ``uuid``, ``int`` or ``text``."""
    key_type = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass($1) "
        "AND attname = $2 AND attnum > 0 AND NOT attisdropped", quote_ident(schema.table),
        schema.key)
    if key_type is None:
        raise TargetError(f"target column {schema.table}.{schema.key} does not exist",
                          hint="check schema.fragments_table and schema.vector_id_column, and that the relational "
                               "data was restored into the target")
    return "uuid" if key_type == "uuid" else ("int" if key_type in ("bigint", "integer", "smallint") else "text")
