"""Runbook "Database backups taken": a recent backup exists (a dump file within the age limit, or a command).

``backup.path`` may name a file, a folder (its newest file counts) or a glob pattern (the newest match
counts).  ``backup.command`` is for backups that live elsewhere (a provider's API, a bucket listing): it
must exit 0 within the timeout; its last output line is the evidence.  Either way an empty or missing
backup fails with what was looked at.
"""

from __future__ import annotations

import glob
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cutover.checks.base import CheckResult, config_relative, result
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import redact

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["check_backup", "newest_backup"]

_COMMAND_TIMEOUT_S = 120.0


def newest_backup(pattern: Path) -> Path | None:
    """The newest regular file at ``pattern`` (a file, a folder or a glob), or ``None``."""
    if pattern.is_file():
        return pattern
    if pattern.is_dir():
        candidates = [p for p in pattern.iterdir() if p.is_file()]
    else:
        candidates = [Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime, default=None)


def check_backup(config: CutoverConfig, now: float | None = None) -> CheckResult:
    """The newest backup is non-empty and younger than ``thresholds.backup_max_age_hours`` (or the command passes)."""
    limit = config.thresholds.backup_max_age_hours
    if config.backup.path:
        pattern = config_relative(config, config.backup.path)
        found = newest_backup(pattern)
        if found is None:
            return result("backup", [f"no backup file matches backup.path {pattern}: take a backup (pg_dump -Fc) "
                                     f"before the cutover"], f"looked at {pattern}")
        stat = found.stat()
        age_h = ((now or time.time()) - stat.st_mtime) / 3600.0
        problems = []
        if stat.st_size == 0:
            problems.append(f"the newest backup {found} is empty (0 bytes): take a new backup")
        if age_h > limit:
            problems.append(f"the newest backup {found} is {age_h:.1f} h old, over thresholds.backup_max_age_hours = "
                            f"{limit:g}: take a fresh backup before the cutover")
        evidence = f"newest backup {found}: {stat.st_size} bytes, {age_h:.2f} h old (limit {limit:g} h)"
        return result("backup", problems, evidence, {"backup_age_hours": round(age_h, 3),
                                                     "backup_bytes": stat.st_size})
    if config.backup.command:
        try:
            done = subprocess.run(config.backup.command, shell=True, capture_output=True, text=True,
                                  timeout=_COMMAND_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return result("backup", [f"backup.command did not finish within {_COMMAND_TIMEOUT_S:g}s: check it by "
                                     f"hand"], "timeout")
        last = redact((done.stdout.strip().splitlines() or [""])[-1])
        problems = [] if done.returncode == 0 else [
            f"backup.command exited {done.returncode}: {redact(done.stderr.strip()[-300:]) or last}: no recent "
            f"backup confirmed; take one"]
        return result("backup", problems, f"backup.command exit {done.returncode}: {last}",
                      {"backup_command_exit": done.returncode})
    raise ConfigError("missing config key backup.path (or backup.command)",
                      hint="set [backup] path to the dump file/folder or command to a check that exits 0")
