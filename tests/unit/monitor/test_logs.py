"""Following a log file across rotation and truncation, a log command, and counting lines."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_cutover.monitor.errors import MonitorError
from pytest_cutover.monitor.logs import CommandFollower, FileFollower, LogWatcher, wait_for_lines
from pytest_cutover.monitor.samples import DB_CONNECTION, STORAGE_ACCESS


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


def test_starts_at_the_end_and_reads_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "old line")
    follower = FileFollower(log)
    assert follower.read_lines() == []
    _append(log, "one", "two")
    assert follower.read_lines() == ["one", "two"]
    assert follower.read_lines() == []
    follower.close()


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    follower = FileFollower(log)
    with log.open("a") as fh:
        fh.write("half")
    assert follower.read_lines() == []
    with log.open("a") as fh:
        fh.write(" done\nnext")
    assert follower.read_lines() == ["half done"]
    follower.close()


def test_truncation_restarts_from_the_beginning(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "a" * 50, "b" * 50)
    follower = FileFollower(log)
    log.write_text("")  # copytruncate / `> app.log`
    _append(log, "after truncate")
    assert follower.read_lines() == ["after truncate"]
    follower.close()


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "before")
    follower = FileFollower(log)
    _append(log, "last of old")
    os.rename(log, tmp_path / "app.log.1")
    _append(tmp_path / "app.log.1", "written to old inode after rename")
    assert follower.read_lines() == ["last of old", "written to old inode after rename"]  # no new file yet
    _append(log, "first of new")
    assert follower.read_lines() == ["first of new"]
    _append(log, "second of new")
    assert follower.read_lines() == ["second of new"]
    follower.close()


def test_file_created_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    follower = FileFollower(log)
    assert follower.read_lines() == []
    _append(log, "hello")
    assert follower.read_lines() == ["hello"]
    follower.close()


def test_command_follower_reads_and_stops_cleanly(tmp_path: Path) -> None:
    script = ("import sys, time\n"
              "for i in range(3):\n    print(f'ERROR line {i}: connection refused', flush=True)\n"
              "while True:\n    time.sleep(0.05)\n")
    follower = CommandFollower([sys.executable, "-c", script])
    lines = wait_for_lines(follower, 3, timeout_s=10)
    assert lines == [f"ERROR line {i}: connection refused" for i in range(3)]
    pid = follower.pid
    started = time.monotonic()
    follower.close(timeout=5)
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    follower.close()  # idempotent


def test_command_follower_reports_exit() -> None:
    follower = CommandFollower([sys.executable, "-c", "print('only line')"])
    assert wait_for_lines(follower, 1, timeout_s=10) == ["only line"]
    deadline = time.monotonic() + 10
    while follower.error is None and time.monotonic() < deadline:
        follower.read_lines()
        time.sleep(0.02)
    assert follower.error == "log command exited with status 0"
    follower.close()


def test_command_that_cannot_start() -> None:
    with pytest.raises(MonitorError, match="log command 'no-such-command-xyz -f' cannot start"):
        CommandFollower(["no-such-command-xyz", "-f"])
    follower = CommandFollower("no-such-command-xyz -f")  # through the shell: it starts, then exits 127
    wait_for_lines(follower, 1, timeout_s=10)
    deadline = time.monotonic() + 10
    while follower.error is None and time.monotonic() < deadline:
        follower.read_lines()
        time.sleep(0.02)
    assert follower.error == "log command exited with status 127"
    follower.close()


def test_command_pipeline_runs_in_the_shell_and_stops_as_a_group(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    follower = CommandFollower(f"tail -n0 -F {log} | grep --line-buffered ERROR")
    deadline = time.monotonic() + 10
    got: list[str] = []
    while not got and time.monotonic() < deadline:  # tail may start after the first append: append again
        _append(log, "INFO fine", "ERROR connection refused")
        got = wait_for_lines(follower, 1, timeout_s=0.3)
    assert got and set(got) == {"ERROR connection refused"}
    follower.close(timeout=5)
    leftovers = [p.pid for p in psutil.process_iter(["cmdline"]) if str(log) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_watcher_counts_levels_categories_requests_and_redacts_evidence(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    watcher = LogWatcher(FileFollower(log))
    _append(log,
            json.dumps({"level": "INFO", "msg": "request", "path": "/api/threads", "status": 200}),
            json.dumps({"level": "ERROR", "msg": "request failed", "path": "/api/threads", "status": 500}),
            json.dumps({"level": "ERROR", "msg": "cannot connect to postgresql://app:s3cr3t-pw@db:6543/postgres: "
                        "connection refused"}),
            "WARNING storage download failed: 403 Forbidden for /storage/v1/object/attachments/org_0001/x",
            "")
    counts = watcher.drain()
    assert counts.lines == 4
    assert counts.levels == {"INFO": 1, "ERROR": 2, "WARNING": 1}
    assert counts.categories == {DB_CONNECTION: 1, STORAGE_ACCESS: 1}
    assert (counts.requests, counts.request_errors) == (2, 1)
    assert len(counts.evidence) == 3
    assert all("s3cr3t-pw" not in e for e in counts.evidence)
    assert "app:***@db:6543" in counts.evidence[1]
    assert watcher.drain().lines == 0
    watcher.close()
