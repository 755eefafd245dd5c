"""The reader's start-up (spawn, imports, opening the source) overlaps the target's preparation.

No timed assertions: the order of the engine's recorded moments, and a source that can only finish
opening after the writer has announced that the target is prepared (a writer that waited for the
reader before preparing would never release it, and the run would fail).
"""

from __future__ import annotations

import asyncio
import multiprocessing

import pytest

from pytest_cutover.migrate import engine
from pytest_cutover.migrate.engine import VectorJob, migrate_vectors
from pytest_cutover.migrate.errors import TargetError
from pytest_cutover.migrate.source import FakeSource, SourceSpec


@pytest.mark.integration
def test_the_target_is_prepared_while_the_reader_process_opens_the_source(make_world, tmp_path):
    world = make_world(6)
    gate = tmp_path / "source-may-open"
    points = [(world.ids[i], world.orgs[i], world.vectors[i]) for i in range(6)]
    source = FakeSource(1536, points, open_after=str(gate), open_timeout_s=15)
    job = VectorJob(source=SourceSpec(collection="fake", fake=source), target_dsn=world.target_dsn,
                    run_id="overlap", batch_size=4, reader="process", read_timeout_s=30)
    events: list[str] = []

    def on_event(name: str, data: dict) -> None:
        events.append(name)
        if name == "target-prepared":
            gate.touch()  # only now can the reader's source finish opening

    result = asyncio.run(migrate_vectors(job, on_event=on_event))
    t = result.timeline
    assert (result.accounting.migrated, result.batches_sent) == (6, 2)
    assert events[:2] == ["target-prepared", "copy"]
    order = ["reader_started", "connect_start", "connected", "prepared", "reader_ready", "go", "first_batch",
             "read_done", "done"]
    assert [name for name in sorted(t, key=t.get) if name in order] == order, t
    assert result.reader_ready_s == t["reader_ready"]


def test_a_pooler_dsn_is_refused_before_any_reader_starts(monkeypatch):
    started: list[object] = []

    class Spy:
        def __init__(self, job: VectorJob) -> None:
            started.append(job)

    monkeypatch.setattr(engine, "_Reader", Spy)
    spec = SourceSpec(collection="fake", fake=FakeSource(4, [("1", "org", [1.0, 0.0, 0.0, 0.0])]))
    with pytest.raises(TargetError, match=r"port 6543"):
        asyncio.run(migrate_vectors(VectorJob(source=spec, target_dsn="postgresql://u:pw@192.0.2.1:6543/db",
                                              run_id="r")))
    app = "postgresql://app:pw@127.0.0.1:6432/postgres"
    with pytest.raises(TargetError, match=r"target.app_database_url"):
        asyncio.run(migrate_vectors(VectorJob(source=spec, target_dsn=app, app_database_url=app, run_id="r")))
    assert started == []


def test_a_target_that_fails_stops_the_reader_already_started(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    never = tmp_path / "never"  # the source never opens: the reader is still starting when the target fails
    spec = SourceSpec(collection="fake", fake=FakeSource(4, [], open_after=str(never), open_timeout_s=30))
    job = VectorJob(source=spec, target_dsn=f"postgresql://u:pw@127.0.0.1:{port}/db", run_id="r",
                    reader="process", connect_timeout_s=2)
    with pytest.raises(TargetError, match="is unreachable"):
        asyncio.run(migrate_vectors(job))
    assert [p for p in multiprocessing.active_children() if p.name == "cutover-vector-reader"] == []
