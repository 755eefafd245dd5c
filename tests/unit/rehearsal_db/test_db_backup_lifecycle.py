"""pg_dump backup of the old database; server start/stop is idempotent and leaves no process behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import psutil
import pytest

from pytest_cutover.rehearsal.backup import dump_database
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


def test_pg_dump_of_the_old_database_is_a_readable_custom_archive(seeded, tmp_path) -> None:
    result = dump_database(seeded.pg.old_dsn, tmp_path / "old_app.dump", timeout=120)
    assert result.path == tmp_path / "old_app.dump" and result.path.exists()
    assert result.size_bytes == result.path.stat().st_size > 0
    assert result.path.read_bytes()[:5] == b"PGDMP"  # custom-format magic
    assert result.toc_entries >= 6 * 2  # at least a TABLE and a TABLE DATA entry per table
    assert datetime.now(UTC) - result.mtime < timedelta(minutes=5)
    assert not (tmp_path / "old_app.dump.partial").exists()


def test_pg_dump_failure_is_reported_without_the_password(seeded, tmp_path) -> None:
    secret = "wrong-password-3f9a"
    dsn = seeded.pg.dsn("old_app", "old_app", password=secret)
    with pytest.raises(RehearsalError, match=r"backup: pg_dump of .* failed") as err:
        dump_database(dsn, tmp_path / "x.dump", timeout=60)
    assert secret not in str(err.value)
    assert not list(tmp_path.iterdir())


def _server_processes(pgdata: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "postgres" and pgdata in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_start_stop_is_idempotent_and_leaves_no_process(pg_workdir) -> None:
    pg = EmbeddedPostgres(pg_workdir / "pg")
    pg.start()
    try:
        pid, socket_dir = pg.pid, pg.socket_dir
        assert socket_dir is not None and (socket_dir / f".s.PGSQL.{pg.port}").is_socket()
        pg.start()  # idempotent
        assert pg.pid == pid and pg.running
        children = psutil.Process(pid).children(recursive=True)
        assert children, "a running postmaster has background workers"
        assert psutil.Process(pid).username() == pg.run_as_user
    finally:
        pg.stop()
    pg.stop()  # idempotent
    assert not pg.running and pg.pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not [c for c in children if c.is_running()]
    assert _server_processes(str(pg.pgdata)) == []
    assert not socket_dir.exists()

    # A kept cluster restarts with the same roles and passwords (read back from credentials.json).
    again = EmbeddedPostgres(pg_workdir / "pg")
    again.start()
    try:
        async def who() -> str:
            conn = await asyncpg.connect(again.app_role_dsn.get(), timeout=10)
            try:
                return await conn.fetchval("select current_user")
            finally:
                await conn.close()

        assert asyncio.run(who()) == "app_user"
    finally:
        again.stop()
    assert _server_processes(str(again.pgdata)) == []


def test_a_server_left_by_a_killed_run_is_stopped_on_restart(pg_workdir) -> None:
    """SIGKILL the owner process: no atexit runs, the server is orphaned; the next start stops it and goes on."""
    import subprocess
    import sys

    script = (
        "import os, signal, sys\n"
        "from pytest_cutover.rehearsal.postgres import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(sys.argv[1]); pg.start(); print(pg.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(pg_workdir / "pg")], capture_output=True, text=True,
                          timeout=120)
    orphan = int(done.stdout.split()[0])
    assert psutil.pid_exists(orphan), "the killed run should have left its server behind"
    pg = EmbeddedPostgres(pg_workdir / "pg")
    pg.start()
    try:
        assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == psutil.STATUS_ZOMBIE
        assert pg.running and pg.pid != orphan
    finally:
        pg.stop()
    assert _server_processes(str(pg.pgdata)) == []
