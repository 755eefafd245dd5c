"""SIGKILL the ``cutover migrate vectors`` process at several points and resume to the same verified result."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_cutover.migrate.digest import encode_vector, vector_digest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 50
POINTS = 500


def _events(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _start(toml: Path, events: Path, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pytest_cutover", "migrate", "vectors", "--config", str(toml), "--run", "killed",
            "--reports-dir", str(toml.parent / "reports"), "--batch-size", str(BATCH), "--pace", "0.15",
            "--events", str(events), "--no-index", "--no-search-parity", "--no-progress", "--json", *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=toml.parent)


def _kill_when(proc: subprocess.Popen, events: Path, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [e for e in _events(events) if e["pid"] == proc.pid]
        if ready(mine):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return
        if proc.poll() is not None:
            raise AssertionError(f"migration exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"no kill point reached within {timeout}s; events: {_events(events)[-5:]}")


def test_kill_at_several_points_then_resume_to_an_identical_verified_result(make_world):
    world = make_world(POINTS)
    toml = world.write_toml()
    events = world.root / "events.jsonl"
    kill_points = [
        lambda ev: any(e["event"] == "copy" for e in ev),                          # during the first batch
        lambda ev: sum(e["event"] == "commit" for e in ev) >= 3,                   # right after a commit
        lambda ev: sum(e["event"] == "commit" for e in ev) >= 2 and ev[-1]["event"] == "copy",  # mid-batch
    ]
    pids = []
    for i, when in enumerate(kill_points):
        proc = _start(toml, events, *(["--resume"] if i else []))
        pids.append(proc.pid)
        _kill_when(proc, events, when)
    final = _start(toml, events, "--resume")
    pids.append(final.pid)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()[-3000:]
    figures = json.loads(out)["figures"]
    assert (figures["points"], figures["migrated"], figures["rejected"], figures["missing"]) == (POINTS, POINTS, 0, 0)
    assert figures["bit_exact"] == POINTS and figures["batches"] == POINTS // BATCH

    # at most one batch re-sent per kill (a "commit" event is written after COMMIT returns, so a kill between
    # the two may leave a committed batch without its event: the database's books are the judge of duplicates)
    log = _events(events)
    copies = {p: [e["seq"] for e in log if e["pid"] == p and e["event"] == "copy"] for p in pids}
    commits = {p: {e["seq"] for e in log if e["pid"] == p and e["event"] == "commit"} for p in pids}
    for before, after in itertools.pairwise(pids):
        resent = set(copies[before]) & set(copies[after])
        assert len(resent) <= 1 and not (resent & commits[before]), (before, copies, commits)
    assert sorted(set().union(*map(set, copies.values()))) == list(range(POINTS // BATCH))
    assert sum(len(c) for c in copies.values()) <= POINTS // BATCH + len(kill_points)
    checkpoint = world.sql("SELECT batches, done FROM public.cutover_migration_checkpoint WHERE run_id = 'killed'")
    assert [tuple(r) for r in checkpoint] == [(POINTS // BATCH, True)]

    # identical to what qdrant holds, bit for bit
    expected = {k: vector_digest(encode_vector(v)) for k, v in zip(world.ids, world.vectors, strict=True)}
    rows = world.sql("SELECT vector_id::text AS k, sha256(vector_send(embedding)) AS d FROM memory_fragments")
    assert {r["k"]: bytes(r["d"]) for r in rows} == expected


def test_rows_sharing_a_vector_id_are_accounted_once_across_a_kill_and_resume(make_world):
    world = make_world(200, dup_rows=3)
    dup = world.planted["duplicate-row-key"]
    toml = world.write_toml()
    events = world.root / "events.jsonl"
    first = _start(toml, events)
    _kill_when(first, events, lambda ev: sum(e["event"] == "commit" for e in ev) >= 1 and ev[-1]["event"] == "copy")
    final = _start(toml, events, "--resume")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 1, err.decode()[-3000:]  # rejections fail the default 100% tolerance
    result = json.loads(out)
    figures = result["figures"]
    assert figures["rejected_by_reason"] == {"duplicate-row-key": 3}
    assert (figures["points"], figures["migrated"], figures["missing"]) == (200, 197, 0)
    assert figures["bit_exact"] == 197 and sorted(figures["samples"]["duplicate-row-key"]) == dup
    assert any(line.startswith("duplicate-row-key: 3 points; first point ids: ") and all(k in line for k in dup)
               for line in result["messages"]), result["messages"]
    seen = world.sql("SELECT key, reason FROM public.cutover_migration_seen WHERE run_id = 'killed' "
                     "AND reason IS NOT NULL ORDER BY key")
    assert [(r["key"], r["reason"]) for r in seen] == [(k, "duplicate-row-key") for k in dup]
