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

Pre-sync and delta (issue 17): a pre-sync (Day 7, the app live) is a full load under its own checkpoint
kind (``vectors-presync``) whose seen rows keep, per key, the read-time digest and the payload org.  The
final sync of the same run then reads every point again but sends only those that are new or whose digest or
org differ (the others are recorded as seen with the digest just read, in the same transaction as the
checkpoint), keeps the HNSW index, clears the rows of points refused now or deleted since, and is verified
bit for bit like a full load: every recorded digest against the server's.  Reading stays proportional to the
collection (Qdrant keeps no change log); writing, indexing and round trips become proportional to the change.
The hashing that verification needs is moved off the critical path too: while the reader opens the source, a
second connection pins every target row's tuple version with the digest of its vector
(:func:`~pytest_cutover.migrate.verify.pin_target`), so the final check hashes only rows written since.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_cutover.migrate.accounting import Accounting
from pytest_cutover.migrate.batch import Batch, RawPoint, screen_page
from pytest_cutover.migrate.errors import MigrationError, SourceError, TargetError
from pytest_cutover.migrate.sink import (
    Checkpoint,
    CountingConnection,
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

__all__ = ["KIND_FULL", "KIND_PRESYNC", "VectorJob", "VectorResult", "migrate_vectors"]

KIND_FULL = "vectors"  # the final sync (full or delta): its checkpoint and seen rows
KIND_PRESYNC = "vectors-presync"  # the Day-7 pre-sync: kept apart, so the final sync can compare with it

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
    batch_size: int = 2000  # points per transaction (and checkpoint)
    scroll_size: int = 10000  # points per source call, split into batches (see :func:`_chunks`)
    queue_depth: int = 3
    dry_run: bool = False
    resume: bool = False
    reader: str = "process"  # "process" (default) or "thread" (tests, comparisons)
    pace_s: float = 0.0  # pause between batches: throttles the load on a live target
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    mode: Literal["auto", "full", "presync"] = "auto"  # see :func:`migrate_vectors`

    @property
    def kind(self) -> str:
        """The checkpoint kind this job writes under."""
        return KIND_PRESYNC if self.mode == "presync" else KIND_FULL


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
    mode: str = "full"  # full, presync or delta (a final sync that found this run's pre-sync)
    presync_at: str | None = None  # a delta: when its pre-sync finished (ISO UTC)
    delta: dict[str, int] = field(default_factory=dict)  # added, changed_vector, changed_payload, retried,
    #                                                       unchanged, deleted, cleared (rows that lost a vector)
    deleted_sample: list[str] = field(default_factory=list)
    points_sent: int = 0  # points staged and sent to the target this run (a delta: only the changed ones)
    round_trips: int = 0  # exchanges with the target database (see CountingConnection)
    notes: list[str] = field(default_factory=list)
    pinned: int = 0  # a delta: target rows hashed with their tuple version while the reader opened the source
    pin_s: float = 0.0

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


def _chunks(pages: Iterator[tuple[list[RawPoint], Any]], size: int) -> Iterator[tuple[list[RawPoint], Any]]:
    """Split each scrolled page into batches of ``size`` points, each with the cursor that resumes after it.

    Scroll's cursor is the id of the first point to return (``next_page_offset`` is the next page's first
    id), so the cursor after a chunk is the id of the next chunk's first point, and the page's own cursor
    after its last chunk: a checkpoint still resumes exactly after the batch it committed.  Why: in local
    mode every ``scroll`` call sorts all the collection's ids (qdrant-client 1.x ``_scroll_by_id``), so
    reading costs calls x collection size; pages larger than a batch cut the calls without making the
    transactions (and what a kill loses) larger.
    """
    for page, next_offset in pages:
        if len(page) <= size:
            yield page, next_offset
            continue
        for i in range(0, len(page), size):
            yield page[i:i + size], (page[i + size][0] if i + size < len(page) else next_offset)


def _reader(spec: SourceSpec, out: Any, control: Any, page_size: int, parent: int | None, wait_s: float,
            scroll_size: int = 0) -> None:
    """Open the source, send its header, wait for ``(start, key_kind, first_seq)`` on ``control``, then scroll
    from ``start`` (pages of ``scroll_size``, batches of ``page_size``) and put batches and a final marker on
    ``out``.  ``None`` on ``control`` stops the reader."""
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
        pages = _chunks(source.pages(start, max(page_size, scroll_size)), page_size)
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
                                      job.read_timeout_s, job.scroll_size))
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


class _Run:
    """One call of :func:`migrate_vectors`: the clock, the result, and the steps, each small enough to read."""

    def __init__(self, job: VectorJob, emit: Callable[[str, dict[str, Any]], None],
                 on_progress: Callable[[int, int | None], None] | None) -> None:
        self.job = job
        self.emit = emit
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.result = VectorResult(accounting=Accounting(), dry_run=job.dry_run,
                                   mode="presync" if job.mode == "presync" else "full")
        self.presync: dict[str, tuple[bytes | None, str | None]] | None = None  # a delta: what the pre-sync saw
        self.batches_done = 0
        self.total: int | None = None
        self.pin_task: asyncio.Task[Any] | None = None

    def mark(self, name: str, at: float | None = None) -> None:
        self.result.timeline[name] = round((time.monotonic() if at is None else at) - self.started, 6)

    def source_meta(self) -> dict[str, str]:
        """What a pre-sync was taken from; a delta against another collection or schema is refused."""
        sc, src = self.job.schema, self.job.source
        return {"collection": src.collection, "org_field": src.org_field, "table": sc.table, "key": sc.key,
                "org": sc.org, "embedding": sc.embedding}

    async def open(self, conn: Any) -> tuple[VectorSink, Checkpoint | None]:
        """The sink on ``conn``, this run's checkpoint (or a fresh start) and, for a final sync, the pre-sync."""
        job, result = self.job, self.result
        sink = VectorSink(conn, job.schema, job.run_id, dry_run=job.dry_run, kind=job.kind)
        if job.dry_run:
            return sink, None
        sink.use_state_schema(await ensure_state_schema(conn, job.schema.state_schema))
        await conn.execute(state_tables(sink.state_schema))
        checkpoint = await sink.load_checkpoint()
        if job.mode == "presync" and not job.resume:
            await sink.reset(KIND_FULL)  # a new pre-sync supersedes any final sync's state in this run
            checkpoint = None
        elif checkpoint is not None and not job.resume:
            await sink.reset()  # a fresh run: start over (updates are idempotent, so nothing is doubled)
            checkpoint = None
        if job.mode == "auto":
            await self._find_presync(sink)
        if checkpoint is not None:
            state = checkpoint.state or {}
            result.accounting = Accounting.from_state(state)
            result.resumed = True
            result.already_done = checkpoint.done
            result.written = int(state.get("written", 0))
            result.delta.update({k: int(v) for k, v in (state.get("delta") or {}).items()})
            self.batches_done = checkpoint.batches
        return sink, checkpoint

    async def _find_presync(self, sink: VectorSink) -> None:
        """A final sync with a complete, compatible pre-sync of this run becomes a delta."""
        found = await sink.checkpoint_of(KIND_PRESYNC)
        if found is None:
            return
        checkpoint, at = found
        if not checkpoint.done:
            self.result.notes.append(f"the pre-sync of run {self.job.run_id} did not finish (last written {at}): "
                                     "running a full sync")
            return
        was = (checkpoint.state or {}).get("source") or {}
        now = self.source_meta()
        differs = {k: (was.get(k), v) for k, v in now.items() if was.get(k) != v}
        if differs:
            what = ", ".join(f"{k} {a!r} then, {b!r} now" for k, (a, b) in sorted(differs.items()))
            raise MigrationError(f"refusing a delta final sync: the pre-sync of run {self.job.run_id} ({at}) was "
                                 f"taken from another collection or schema ({what})",
                                 hint="run `cutover migrate vectors --presync` again with this config, or "
                                      "`cutover migrate vectors --full` to copy everything")
        self.presync = await sink.seen_of(KIND_PRESYNC)
        self.result.mode = "delta"
        self.result.presync_at = at
        sink.clear_refused = True

    async def header(self, reader: _Reader, sink: VectorSink, conn: Any) -> None:
        """The reader's header (dimension, count); then, for a full load, drop the HNSW index."""
        result, job = self.result, self.job
        item = await asyncio.get_running_loop().run_in_executor(None, reader.get)
        if item[0] == _ERROR:
            raise SourceError(item[1])
        self.mark("reader_ready", item[1]["ready_at"])
        result.reader_ready_s = result.timeline["reader_ready"]
        result.dim = int(item[1]["dim"])
        self.total = int(item[1]["count"])
        sink.check_dimension(result.dim)
        if not job.dry_run and result.mode != "delta":
            # An HNSW index turns each batch's UPDATE into thousands of graph inserts (measured: 14 s per
            # 2000 rows instead of 0.15 s): drop it for a full load; the caller builds it once afterwards.
            # A delta writes few rows and keeps the index.
            from pytest_cutover.migrate.verify import drop_hnsw

            result.dropped_indexes = await drop_hnsw(conn, job.schema)
            if result.dropped_indexes:
                self.emit("index-dropped", {"names": result.dropped_indexes})

    def split(self, batch: Batch) -> tuple[Batch, list[tuple[str, bytes, str | None]]]:
        """A delta's batch: the points to send (new, changed, refused) and those read as the pre-sync saw them."""
        if self.presync is None:
            return batch, []
        send = Batch(seq=batch.seq, unstaged=batch.unstaged, next_offset=batch.next_offset, last_key=batch.last_key)
        same: list[tuple[str, bytes, str | None]] = []
        delta = self.result.delta
        for key, org, binary, digest, reason in zip(batch.keys, batch.orgs, batch.binaries, batch.digests,
                                                    batch.reasons, strict=True):
            was = self.presync.get(key)
            if was is not None and reason is None and digest is not None and was == (digest, org):
                same.append((key, digest, org))
                continue
            change = ("added" if was is None else "retried" if was[0] is None else
                      "changed_vector" if was[0] != digest else "changed_payload")
            delta[change] = delta.get(change, 0) + 1
            for values, value in ((send.keys, key), (send.orgs, org), (send.binaries, binary),
                                  (send.digests, digest), (send.reasons, reason)):
                values.append(value)
        delta["unchanged"] = delta.get("unchanged", 0) + len(same)
        return send, same

    def state(self) -> dict[str, Any]:
        """What each checkpoint commits: the books, rows written, the delta's counts, and the source it read."""
        return {**self.result.accounting.to_state(), "written": self.result.written, "delta": dict(self.result.delta),
                "source": self.source_meta()}

    async def write(self, sink: VectorSink, batch: Batch) -> None:
        """Send one batch (a delta: only its changed points) and commit it with its checkpoint."""
        result, accounting = self.result, self.result.accounting
        busy = result.busy
        busy["scroll_s"] += batch.scroll_s
        busy["screen_s"] += batch.read_s
        busy["reader_blocked_s"] += batch.blocked_s
        self.emit("copy", {"seq": batch.seq, "points": batch.size, "last_key": batch.last_key})
        send, same = self.split(batch)

        def books(refused: list[tuple[str, str]]) -> dict[str, Any]:
            for key, reason in [*send.unstaged, *refused]:
                accounting.reject(reason, key)
            accounting.add_migrated(len(send.keys) - len(refused) + len(same))
            return self.state()

        t0 = time.monotonic()
        refused, written = await sink.write(send, self.batches_done + 1, offset_to_text(batch.next_offset),
                                            batch.next_offset is None, books, same)
        busy["writing_s"] += time.monotonic() - t0
        self.batches_done += 1
        result.batches_sent += 1
        result.points_read_this_run += batch.size
        result.points_sent += len(send.keys)
        result.written += written
        self.emit("commit", {"seq": batch.seq, "points": batch.size, "refused": len(refused) + len(batch.unstaged)})
        if self.on_progress:
            self.on_progress(accounting.points, self.total)

    async def load(self, reader: _Reader, sink: VectorSink, conn: Any, checkpoint: Checkpoint | None) -> None:
        """Prepare the target, then take batches from the reader until it is done."""
        job, result = self.job, self.result
        await sink.prepare()
        self.mark("prepared")
        self.emit("target-prepared", {})
        await self.header(reader, sink, conn)
        key_kind = await _key_kind(conn, job.schema)
        reader.go(offset_from_text(checkpoint.next_offset) if checkpoint else None, key_kind, self.batches_done)
        self.mark("go")
        if self.on_progress:
            self.on_progress(result.accounting.points, self.total)
        loop = asyncio.get_running_loop()
        while True:
            t0 = time.monotonic()
            item = await loop.run_in_executor(None, reader.get)
            result.busy["writer_waiting_s"] += time.monotonic() - t0
            if isinstance(item, tuple):
                if item[0] == _ERROR:
                    raise SourceError(item[1])
                result.busy["reader_blocked_s"] += float((item[1] or {}).get("blocked_s", 0.0))
                break
            if "first_batch" not in result.timeline:
                self.mark("first_batch")
            await self.write(sink, item)
            if job.pace_s:
                await asyncio.sleep(job.pace_s)
        self.mark("read_done")
        await sink.mark_done(self.batches_done, self.state())

    def start_pin(self, state_schema: str) -> None:
        """A delta: pin the target's rows on a second connection while the reader opens the source."""
        if self.presync is not None and not self.job.dry_run:
            self.pin_task = asyncio.create_task(self._pin(state_schema))

    async def _pin(self, state_schema: str) -> Any:
        from pytest_cutover.migrate.verify import pin_target

        job = self.job
        conn = await connect_target(job.target_dsn, timeout=job.connect_timeout_s,
                                    app_database_url=job.app_database_url)
        try:
            return await pin_target(conn, job.schema, job.run_id, state_schema)
        finally:
            await conn.close()

    async def await_pin(self) -> None:
        """The pin's figures; a pin that failed only costs time: the verification then hashes every row."""
        if self.pin_task is None:
            return
        try:
            pin = await self.pin_task
        except Exception as exc:  # any driver or target error: fall back to hashing everything
            self.result.notes.append(f"pinning the target's rows failed ({type(exc).__name__}: {redact(exc)}): "
                                     "the verification hashes every row")
            return
        self.result.pinned, self.result.pin_s = pin.rows, round(pin.seconds, 3)
        self.mark("pinned")

    async def cancel_pin(self) -> None:
        """A run that ends early (an error, Ctrl-C) stops its pin: the pin's own outcome no longer matters."""
        if self.pin_task is not None and not self.pin_task.done():
            self.pin_task.cancel()
            try:
                await self.pin_task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():  # the caller itself is being cancelled
                    raise
            except Exception:  # the pin's own failure no longer matters
                pass

    async def finish(self, sink: VectorSink) -> None:
        """A delta clears the rows of points deleted since the pre-sync; then every row is accounted."""
        result = self.result
        await self.await_pin()
        if self.presync is not None:
            deleted, cleared, sample = await sink.clear_deleted(KIND_PRESYNC)
            result.delta.update(deleted=deleted, cleared=sink.cleared + cleared)
            result.deleted_sample = sample
        missing, sample = await sink.missing()
        result.accounting.set_missing(missing, sample)
        result.batches_total = self.batches_done
        result.duration_s = time.monotonic() - self.started
        self.mark("done")
        await sink.drop_staging()
        result.busy = {name: round(value, 6) for name, value in result.busy.items()}


async def migrate_vectors(job: VectorJob, *, on_progress: Callable[[int, int | None], None] | None = None,
                          on_event: Callable[[str, dict[str, Any]], None] | None = None) -> VectorResult:
    """Run (or resume) one vector migration; see the module docstring.

    ``job.mode``: ``presync`` loads everything under its own checkpoint kind (the app still live); ``auto``
    (the final sync) becomes a delta when this run has a complete pre-sync taken from the same collection and
    schema, and is a full load otherwise; ``full`` ignores any pre-sync.

    ``on_progress(points_done, points_total)`` drives a progress bar; ``on_event(name, data)`` receives
    ``target-prepared`` (the target is ready; the reader may still be starting), ``index-dropped``, ``copy``
    (before a batch is sent) and ``commit`` (after it is durable) events.
    """
    run = _Run(job, on_event or (lambda name, data: None), on_progress)
    refuse_pooler(job.target_dsn, job.app_database_url)  # before the reader starts: a refused run reads nothing
    reader = _Reader(job)  # opens the source while the target is prepared below
    run.mark("reader_started")
    conn = None
    try:
        run.mark("connect_start")
        conn = CountingConnection(await connect_target(job.target_dsn, timeout=job.connect_timeout_s,
                                                       app_database_url=job.app_database_url))
        run.mark("connected")
        sink, checkpoint = await run.open(conn)
        run.start_pin(sink.state_schema)
        for name in ("scroll_s", "screen_s", "reader_blocked_s", "writer_waiting_s", "writing_s"):
            run.result.busy[name] = 0.0
        if not run.result.already_done:
            await run.load(reader, sink, conn, checkpoint)
        await run.finish(sink)
        return run.result
    finally:
        await run.cancel_pin()
        reader.stop()
        if conn is not None:
            run.result.round_trips = conn.round_trips
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
