"""ManagedProcess: readiness, errors that carry the log tail (redacted), and no orphans."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_cutover.errors import CutoverError
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.procs import ManagedProcess, free_port


def _py(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def test_rehearsal_error_is_a_cutover_error_and_a_runtime_error() -> None:
    assert issubclass(RehearsalError, CutoverError)
    assert issubclass(RehearsalError, RuntimeError)


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_waits_for_ready_then_stop_terminates(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    proc = ManagedProcess("writer", _py(f"import time, pathlib; time.sleep(0.3); pathlib.Path({str(flag)!r}).touch();"
                                        " time.sleep(60)"), log_path=tmp_path / "w.log")
    proc.start(flag.exists, timeout=10)
    assert proc.running and flag.exists()
    pid = proc.pid
    proc.stop()
    assert not proc.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    proc.stop()  # idempotent


def test_exit_before_ready_raises_with_redacted_log_tail(tmp_path: Path) -> None:
    code = "import sys; [print(f'line {i}') for i in range(30)]; print('db password=hunter2-secret'); sys.exit(3)"
    proc = ManagedProcess("crasher", _py(code), log_path=tmp_path / "c.log")
    with pytest.raises(RehearsalError) as info:
        proc.start(lambda: False, timeout=10)
    text = str(info.value)
    assert "crasher exited with code 3 before it was ready" in text
    assert "line 29" in text and "line 5\n" not in text  # the last 20 lines only
    assert "hunter2-secret" not in text and "password=***" in text
    assert not proc.running


def test_timeout_raises_names_process_and_stops_it(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", _py("print('still booting'); import time; time.sleep(60)"),
                          log_path=tmp_path / "s.log")

    def probe() -> bool:
        raise ConnectionRefusedError("nothing listens")

    started = time.monotonic()
    with pytest.raises(RehearsalError) as info:
        proc.start(probe, timeout=1.0)
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "sleeper not ready after 1.0s" in text
    assert "ConnectionRefusedError: nothing listens" in text
    assert "still booting" in text
    assert not proc.running


def test_stop_kills_the_whole_group_and_sigterm_ignoring_children(tmp_path: Path) -> None:
    child_pid_file = tmp_path / "child.pid"
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(child_pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("stubborn", _py(code), log_path=tmp_path / "g.log")
    proc.start(child_pid_file.exists, timeout=10)
    time.sleep(0.1)
    child = psutil.Process(int(child_pid_file.read_text()))
    started = time.monotonic()
    proc.stop(timeout=1.0)
    assert time.monotonic() - started < 5
    assert not proc.running
    child.wait(timeout=5)  # reaped by init or gone: raises if still alive
    assert not child.is_running()


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    proc = ManagedProcess("ghost", ["/nonexistent/bin/ghostd"], log_path=tmp_path / "x.log")
    with pytest.raises(RehearsalError, match="ghost: cannot execute /nonexistent/bin/ghostd"):
        proc.start(lambda: True)


def test_unknown_user_is_a_clear_error(tmp_path: Path) -> None:
    proc = ManagedProcess("as-nobody", _py("pass"), log_path=tmp_path / "u.log", user="no_such_user_xyz")
    with pytest.raises(RehearsalError, match="system user no_such_user_xyz does not exist"):
        proc.start(lambda: True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="running as another user needs root")
def test_user_runs_the_child_as_that_user(tmp_path: Path) -> None:
    import pwd

    user = "nobody"
    uid = pwd.getpwnam(user).pw_uid
    log = tmp_path / "who.log"
    # /bin/sh, not this interpreter: the user may not be able to traverse to a Python under /root.
    proc = ManagedProcess("as-nobody", ["/bin/sh", "-c", "echo uid $(id -u); exec sleep 30"], log_path=log,
                          user=user, cwd=Path("/"))
    proc.start(lambda: "uid" in log.read_text(), timeout=10)
    try:
        assert psutil.Process(proc.pid).uids().real == uid
        assert f"uid {uid}" in proc.log_tail()
    finally:
        proc.stop()
