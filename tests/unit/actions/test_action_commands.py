"""Operator commands: no shell unless needed, output redacted, a timeout that kills, no hang on daemons."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from pytest_cutover.actions.commands import file_tail, run_command, to_argv


@pytest.mark.parametrize(("command", "argv"), [
    ("systemctl restart syntra-backend", ["systemctl", "restart", "syntra-backend"]),
    ("kubectl rollout restart deployment/syntra-backend -n production",
     ["kubectl", "rollout", "restart", "deployment/syntra-backend", "-n", "production"]),
    ("docker compose restart backend && sleep 1", ["/bin/sh", "-c", "docker compose restart backend && sleep 1"]),
    ("pm2 logs syntra | grep ERROR", ["/bin/sh", "-c", "pm2 logs syntra | grep ERROR"]),
    ("FOO=1 run", ["/bin/sh", "-c", "FOO=1 run"]),
])
def test_a_shell_only_when_the_command_needs_one(command: str, argv: list[str]) -> None:
    assert to_argv(command) == argv


def test_output_is_captured_and_redacted() -> None:
    result = run_command("sh -c 'echo DB_PASSWORD=hunter22secret; echo postgresql://u:pw123456@h:5432/d >&2; exit 3'",
                         timeout=10)
    assert result.returncode == 3 and not result.ok
    assert "hunter22secret" not in result.output and "pw123456" not in result.output
    assert "DB_PASSWORD=***" in result.output and "postgresql://u:***@h:5432/d" in result.output


def test_a_missing_program_is_reported_not_raised() -> None:
    result = run_command("/nonexistent/restart-backend", timeout=5)
    assert result.returncode is None and "No such file or directory" in result.output


def test_a_hanging_command_is_killed_with_its_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    result = run_command(f"sh -c 'sleep 30 & echo $! > {pid_file}; wait'", timeout=0.5)
    assert result.timed_out and time.monotonic() - started < 8
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
            Path(f"/proc/{child}/stat").read_text().split()[2] != "Z":
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z", \
        "the background child of a timed-out command must be killed too"


def test_a_start_command_that_leaves_a_daemon_does_not_hang(tmp_path: Path) -> None:
    """Like `docker compose up -d`: the command exits while its daemon keeps the inherited descriptors."""
    pid_file = tmp_path / "daemon.pid"
    started = time.monotonic()
    result = run_command(f"sh -c 'sleep 30 & echo $! > {pid_file}; echo started'", timeout=20)
    try:
        assert result.ok and "started" in result.output
        assert time.monotonic() - started < 5
    finally:
        os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the daemon this test started


def test_file_tail_reads_the_last_lines_redacted(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "connect postgresql://a:secretpw99@db/x failed\n")
    tail = file_tail(log, lines=3)
    assert tail.splitlines() == ["line 98", "line 99", "connect postgresql://a:***@db/x failed"]
    assert file_tail(tmp_path / "missing.log").startswith("(cannot read ")
    assert file_tail(None) == "(no [app] log_file configured)"
