"""RSS by pid and by command, SHOW POOLS parsing, and a real PgBouncer admin console."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cutover.monitor.errors import MonitorError
from pytest_cutover.monitor.system import (
    SystemSampler,
    parse_show_pools,
    parse_size,
    pooler_figures,
    read_pid_file,
    rss_from_command,
    rss_of_pid,
)
from pytest_cutover.rehearsal.procs import free_port

SHOW_POOLS = """\
database|user|cl_active|cl_waiting|cl_active_cancel_req|cl_waiting_cancel_req|sv_active|sv_active_cancel|\
sv_being_canceled|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode
pgbouncer|pgbouncer|1|0|0|0|0|0|0|0|0|0|0|0|0|statement
postgres|app_user|4|2|0|0|3|0|0|1|0|0|0|0|120|transaction
postgres|postgres|1|0|0|0|1|0|0|0|0|0|0|0|0|transaction
"""


@pytest.mark.parametrize(("text", "expected"), [
    ("123456\n", 123456), ("512 kB", 512 * 1024), ("1.5G", int(1.5 * 1024**3)), ("VmRSS:	  20480 kB", 20480 * 1024),
    ("rss=200MiB", 200 * 1024**2), ("  42 bytes", 42),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_parse_size_rejects_text_without_a_number() -> None:
    with pytest.raises(ValueError, match="no size in 'n/a'"):
        parse_size("n/a")


def test_parse_show_pools() -> None:
    got = parse_show_pools(SHOW_POOLS)
    assert (got.clients, got.waiting, got.server_active, got.pools) == (7, 2, 4, 2)
    with pytest.raises(ValueError, match="SHOW POOLS has no column"):
        parse_show_pools("database|user\npostgres|x\n")


def test_rss_of_pid_counts_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; b = b'x' * (64 * 1024 * 1024); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while rss_of_pid(child.pid, children=False) < 60 * 1024 * 1024:  # 64 MiB written, every page resident
            assert time.monotonic() < deadline, "the child never reached 60 MiB"
            time.sleep(0.05)
        # other children of this test process (a module's stack) may come and go: compare with and without
        assert rss_of_pid(os.getpid()) - rss_of_pid(os.getpid(), children=False) >= 60 * 1024 * 1024
    finally:
        child.kill()
        child.wait()
    with pytest.raises(MonitorError, match=f"app process {child.pid} does not exist"):
        rss_of_pid(child.pid)


def test_rss_command_and_pid_file(tmp_path: Path) -> None:
    assert rss_from_command("echo '2048 kB'") == 2048 * 1024
    with pytest.raises(MonitorError, match="rss command failed with exit status 3"):
        rss_from_command("echo oops >&2; exit 3")
    with pytest.raises(MonitorError, match="rss command printed 'none'"):
        rss_from_command("echo none")
    with pytest.raises(MonitorError, match=r"rss command timed out after 0\.2 s"):
        rss_from_command("sleep 5", timeout_s=0.2)
    pid_file = tmp_path / "app.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert read_pid_file(pid_file) == os.getpid()
    with pytest.raises(MonitorError, match=r"pid file .*missing\.pid is unreadable"):
        read_pid_file(tmp_path / "missing.pid")


def test_system_sampler_turns_failures_into_notes(tmp_path: Path) -> None:
    sampler = SystemSampler(pid_file=str(tmp_path / "missing.pid"), pooler_admin_url="postgresql://u:pw-x-1@127.0.0.1:1/pgbouncer",
                            timeout_s=2)
    got = asyncio.run(sampler.sample())
    assert got.rss_bytes is None and got.pooler_connections is None and got.db_errors == 0
    assert len(got.notes) == 2
    assert "pid file" in got.notes[0] and "SHOW POOLS on postgresql://u@127.0.0.1:1/pgbouncer failed" in got.notes[1]
    assert "pw-x-1" not in " ".join(got.notes)


@pytest.fixture
def pgbouncer() -> Iterator[str]:
    """A real PgBouncer with an admin user (SCRAM password); no server behind it is needed for SHOW POOLS."""
    exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None)
    if exe is None:
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    if not shutil.which("psql"):
        pytest.skip("psql not installed (apt-get install postgresql-client)")
    work = Path(tempfile.mkdtemp(prefix="cutover-pgb-"))
    work.chmod(0o755)
    port = free_port()
    (work / "users.txt").write_text('"monitor" "monitor-pw-77"\n')
    (work / "pgbouncer.ini").write_text(
        f"[databases]\npostgres = host=127.0.0.1 port={free_port()} dbname=postgres\n\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_type = scram-sha-256\n"
        f"auth_file = {work / 'users.txt'}\nadmin_users = monitor\npool_mode = transaction\n"
        f"logfile = {work / 'pgbouncer.log'}\npidfile = {work / 'pgbouncer.pid'}\n")
    argv = [exe, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root (field notes)
        shutil.chown(work, "nobody")
        for f in work.iterdir():
            shutil.chown(f, "nobody")
        argv[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "pgbouncer did not listen within 10 s"
            time.sleep(0.05)
        yield f"postgresql://monitor:monitor-pw-77@127.0.0.1:{port}/pgbouncer?sslmode=disable"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def test_show_pools_on_a_real_pgbouncer(pgbouncer: str) -> None:
    figures = pooler_figures(pgbouncer, timeout_s=5)
    assert figures.pools == 0 and figures.clients == 0  # no client has used the postgres pool yet
    wrong = pgbouncer.replace("monitor-pw-77", "wrong-pw-88")
    shown = r"SHOW POOLS on postgresql://monitor@127\.0\.0\.1:\d+/pgbouncer\?sslmode=disable failed"
    with pytest.raises(MonitorError, match=shown) as err:
        pooler_figures(wrong, timeout_s=5)
    assert "wrong-pw-88" not in str(err.value)


def test_password_never_on_the_command_line(pgbouncer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real_run = subprocess.run

    def spy(argv, **kw):  # type: ignore[no-untyped-def]
        seen.append(list(argv))
        return real_run(argv, **kw)

    monkeypatch.setattr(subprocess, "run", spy)
    pooler_figures(pgbouncer, timeout_s=5)
    assert seen and all("monitor-pw-77" not in arg for arg in seen[0])
