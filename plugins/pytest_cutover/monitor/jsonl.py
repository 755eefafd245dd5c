"""Append-only JSON lines with the ledger's discipline, as a tiny reusable helper.

One record is one ``os.write`` on an ``O_APPEND`` descriptor under an exclusive
``flock``, so a sampler and a reader in another terminal never see a torn line.
Reading is strict: a bad line raises naming the file and line number (nothing is
repaired silently).  :class:`~pytest_cutover.ledger.Ledger` does the same inline;
it could delegate to :func:`append_record` / :func:`read_records` later.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["append_record", "read_records"]


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any], *,
                  error: Callable[[str], Exception] = OSError, fsync: bool = True) -> None:
    """Write ``record`` as one JSON line at the end of ``path``, atomically."""
    line = (json.dumps(record, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - a full disk
                raise error(f"{target}: short write ({written} of {len(line)} bytes)")
            if fsync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike[str], *, error: Callable[..., Exception] = ValueError) -> list[dict[str, Any]]:
    """Every JSON object in ``path``, in order (``[]`` when the file does not exist).

    ``error(message, hint=...)`` builds the exception for a bad or truncated line.
    """
    target = Path(path)
    if not target.exists():
        return []
    with open(target, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            data = fh.read()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    lines = data.split(b"\n")
    if lines[-1].strip():
        raise error(f"{target} line {len(lines)} is truncated (no newline at the end): a write was cut off",
                    hint="inspect that line and move it aside; the file is never repaired silently")
    out: list[dict[str, Any]] = []
    for number, raw in enumerate(lines[:-1], start=1):
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise error(f"{target} line {number} is not valid JSON ({exc.__class__.__name__}: {exc})",
                        hint="inspect that line; the file is append-only JSON lines") from None
        if not isinstance(record, dict):
            raise error(f"{target} line {number} is not a JSON object", hint="the file is append-only JSON lines")
        out.append(record)
    return out
