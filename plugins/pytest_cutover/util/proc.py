"""Running a helper program with a deadline and turning its failure into one of our errors.

Why: the pooler check (``SHOW CONFIG``), the monitor (``SHOW POOLS``, the RSS command) each ran a
program, caught the timeout and checked the exit status with the same few lines; here they are once,
with the error class and the hints left to the caller.  Output and stderr are redacted in messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from pytest_cutover.dsn import split_password
from pytest_cutover.errors import CutoverError
from pytest_cutover.redact import Secret, redact, reveal

__all__ = ["run_checked", "run_psql"]


def run_checked(argv: str | Sequence[str], *, what: str, timeout: float, error: type[CutoverError] = CutoverError,
                hint: str | None = None, failure_hint: str | None = None, shell: bool = False,
                env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (a shell command with ``shell=True``); raise ``error`` naming ``what`` when it does not
    finish within ``timeout`` seconds (``hint``) or exits non-zero (``failure_hint``, else ``hint``)."""
    try:
        done = subprocess.run(argv, shell=shell, capture_output=True, text=True, timeout=timeout, check=False,
                              env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired:
        raise error(f"{what} timed out after {timeout:g} s", hint=hint) from None
    if done.returncode != 0:
        raise error(f"{what} failed with exit status {done.returncode}: {redact(done.stderr.strip()[:300])}",
                    hint=failure_hint or hint)
    return done


def run_psql(url: Secret | str, sql: str, *, timeout: float, error: type[CutoverError] = CutoverError,
             hint: str | None = None, failure_hint: str | None = None, tuples_only: bool = False,
             psql: str | None = None) -> str:
    """``psql -c sql`` against ``url`` (the password through ``PGPASSWORD``, never on the command line):
    unaligned, ``|``-separated, no footer (``tuples_only``: no header either); its output."""
    exe = psql or shutil.which("psql")
    if not exe:
        raise error(f"psql is not installed: cannot run {sql}",
                    hint="install the PostgreSQL client (apt-get install postgresql-client)")
    plain, password = split_password(reveal(url) or "")
    env = {**os.environ, "PGCONNECT_TIMEOUT": str(max(1, int(timeout)))}
    if password is not None:
        env["PGPASSWORD"] = password
    argv = [exe, "-X", "-A", "-F", "|", "-P", "footer=off", *(["-t"] if tuples_only else []), "-d", plain, "-c", sql]
    return run_checked(argv, what=f"{sql} on {redact(plain)}", timeout=timeout, error=error, hint=hint,
                       failure_hint=failure_hint, env=env).stdout
