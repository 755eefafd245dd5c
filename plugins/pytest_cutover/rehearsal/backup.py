"""The pre-cutover backup of the old database: ``pg_dump -Fc`` with the wheel's own ``pg_dump``.

The rehearsal takes it at start so the runbook's "backup exists and is recent" check runs against a real archive.
The password goes to ``pg_dump`` through ``PGPASSWORD`` (never on its command line, where ``ps`` would show it);
the dump is written to ``<dest>.partial`` and renamed only when ``pg_restore --list`` can read it back, so a file at
``dest`` is always a complete, readable custom-format archive.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pytest_cutover.dsn import split_password
from pytest_cutover.redact import Secret, redact, reveal
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.postgres import pg_bin

__all__ = ["BackupResult", "dump_database"]


@dataclass(frozen=True)
class BackupResult:
    """Where the archive is, how big, when it was written, and how many TOC entries it lists."""

    path: Path
    size_bytes: int
    mtime: datetime
    seconds: float
    toc_entries: int


def _discard(partial: Path, message: str, *, hint: str) -> RehearsalError:
    """Remove the half-written archive (a later run must not take it for a backup); the error to raise."""
    with contextlib.suppress(OSError):
        partial.unlink()
    return RehearsalError(message, hint=hint)


def dump_database(dsn: str | Secret, dest: Path, *, timeout: float = 300.0) -> BackupResult:
    """Dump the database at ``dsn`` to ``dest`` in pg_dump's custom format and verify the archive reads back."""
    started = time.monotonic()
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    plain_dsn, password = split_password(reveal(dsn) or "")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGCONNECT_TIMEOUT": "10",
           "PGAPPNAME": "pytest-cutover-backup"}
    if password:
        env["PGPASSWORD"] = password
    argv = [str(pg_bin("pg_dump")), "--format=custom", "--no-password", f"--file={partial}", f"--dbname={plain_dsn}"]
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise _discard(partial, f"backup: pg_dump of {Secret(plain_dsn)} did not finish within {timeout:.0f}s",
                       hint="raise the timeout or check that the database is reachable and not locked") from None
    if done.returncode != 0:
        raise _discard(partial, f"backup: pg_dump of {Secret(plain_dsn)} failed (exit {done.returncode}): "
                                f"{redact(done.stderr.decode('utf-8', 'replace').strip())}",
                       hint="check the DSN, the role's password and that it may read every table")
    listed = subprocess.run([str(pg_bin("pg_restore")), "--list", str(partial)], capture_output=True,
                            timeout=timeout, check=False)
    if listed.returncode != 0:
        raise _discard(partial, f"backup: pg_restore cannot read the archive {partial}: "
                                f"{listed.stderr.decode('utf-8', 'replace').strip()}",
                       hint="the dump is corrupt; take it again")
    entries = sum(1 for line in listed.stdout.decode("utf-8", "replace").splitlines()
                  if line.strip() and not line.startswith(";"))
    os.replace(partial, dest)
    st = dest.stat()
    return BackupResult(path=dest, size_bytes=st.st_size, mtime=datetime.fromtimestamp(st.st_mtime, UTC),
                        seconds=round(time.monotonic() - started, 3), toc_entries=entries)
