"""After a SIGKILLed rehearsal: the next stack start stops what still runs from the dead stack's folder and
removes the folder; a live owner's stack, a folder being created, and a kept folder are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_cutover.rehearsal.ctl import write_state
from pytest_cutover.rehearsal.leftovers import is_stack_part, owner_record, stale_stacks, sweep_stale_stacks

FOLDER = Path("/tmp/cutover-stack-abc123")


@pytest.mark.parametrize(("cmdline", "part"), [
    (["/opt/pginstall/bin/postgres", "-D", f"{FOLDER}/pg/pgdata", "-p", "5432"], True),
    (["/usr/sbin/pgbouncer", f"{FOLDER}/pgbouncer/transaction.ini"], True),
    (["python3", "-m", "uvicorn", "app.main:app", "--ssl-certfile", f"{FOLDER}/tls/api.pem"], True),
    (["python3", "-m", "pytest_cutover.rehearsal.storage", "--data-dir", f"{FOLDER}/storage"], True),
    (["python3", "-m", "uvicorn", "other.app:app"], False),  # not started from this folder
    (["less", f"{FOLDER}/stack.env"], False),  # an operator reading the dead stack's files
    (["vim", f"{FOLDER}/pg/postgresql.conf"], False),
    (["python3", "-m", "pytest_cutover.rehearsal.ctl", "status", str(FOLDER)], False),
    (["/opt/pginstall/bin/postgres", "-D", "/tmp/cutover-stack-other/pg/pgdata"], False),  # another stack's
    (["/opt/pginstall/bin/postgres", "-D", f"{FOLDER}9/pg/pgdata"], False),  # a longer folder name
    ([], False),
])
def test_only_a_stacks_own_servers_count_as_its_parts(cmdline: list[str], part: bool) -> None:
    assert is_stack_part(cmdline, FOLDER) is part


def _dead_owner() -> dict[str, object]:
    """The owner record of a process that has exited (its pid not reused yet, nor alive)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = psutil.Process(proc.pid).create_time()
    proc.wait(timeout=30)
    return {"stack_pid": proc.pid, "stack_start": start, "keep": False}


def _folder(root: Path, name: str, owner: dict[str, object] | None) -> Path:
    folder = root / f"cutover-stack-{name}"
    folder.mkdir()
    if owner is not None:
        write_state(folder, {"app": None, "pids": {}, **owner})
    return folder


def test_stale_stacks_are_those_whose_owner_is_gone(tmp_path: Path) -> None:
    dead = _folder(tmp_path, "dead", _dead_owner())
    kept = _folder(tmp_path, "kept", {**_dead_owner(), "keep": True})
    _folder(tmp_path, "live", owner_record(keep=False))  # this process: another rehearsal running now
    _folder(tmp_path, "creating", None)  # no state file yet
    recycled = _folder(tmp_path, "recycled", {**owner_record(keep=False), "stack_start": 1.0})  # pid reused
    found = {s.path.name: s.keep for s in stale_stacks(sorted(tmp_path.iterdir()))}
    assert found == {dead.name: False, kept.name: True, recycled.name: False}
    assert stale_stacks(sorted(tmp_path.iterdir()), uid=os.getuid() + 1) == []  # another user's: never


def _part(folder: Path) -> subprocess.Popen[bytes]:
    """A stand-in for the app's uvicorn left running from ``folder`` (its command line reads as one)."""
    code = "import time; time.sleep(120)"
    return subprocess.Popen([sys.executable, "-c", code, "-m", "uvicorn", "--ssl-certfile", str(folder / "tls")])


def test_the_sweep_stops_what_runs_from_a_dead_stack_and_removes_its_folder(tmp_path: Path) -> None:
    dead = _folder(tmp_path, "dead", _dead_owner())
    kept = _folder(tmp_path, "kept", {**_dead_owner(), "keep": True})
    idle_kept = _folder(tmp_path, "idle", {**_dead_owner(), "keep": True})
    live = _folder(tmp_path, "live", owner_record(keep=False))
    parts = [_part(dead), _part(kept), _part(live)]
    try:
        time.sleep(0.5)  # let the stand-ins exec
        lines: list[str] = []
        cleaned = sweep_stale_stacks(lines.append, root=tmp_path)
        assert sorted(s.path.name for s in cleaned) == [dead.name, kept.name]
        assert not dead.exists() and kept.exists() and idle_kept.exists() and live.exists()
        assert parts[0].wait(timeout=15) is not None and parts[1].wait(timeout=15) is not None
        assert parts[2].poll() is None, "a live owner's stack must not be touched"
        assert len(lines) == 2 and all("whose process is gone" in line for line in lines), lines
        assert any(str(dead) in line and "removed its folder" in line for line in lines), lines
        assert any(str(kept) in line and "kept its folder" in line for line in lines), lines
        assert sweep_stale_stacks(lines.append, root=tmp_path) == [] and len(lines) == 2  # nothing twice
    finally:
        for proc in parts:
            proc.kill()
            proc.wait(timeout=15)
