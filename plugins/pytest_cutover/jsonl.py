"""Append-only JSON lines: the one discipline the run ledger and the monitor series share.

One record is one ``os.write`` on an ``O_APPEND`` descriptor under an exclusive
``flock``, so concurrent writers (xdist workers, a second terminal, the sampler)
never tear a line.  Reading is strict: a truncated, empty or non-JSON line raises
naming the file and line number (nothing is repaired silently).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_cutover.errors import CutoverError

__all__ = ["JsonLinesError", "append_record", "parse_lines", "read_records"]


class JsonLinesError(CutoverError, ValueError):
    """A JSON-lines file has a bad line (the default error; callers pass their own, e.g. ``LedgerError``)."""



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


def parse_lines(path: str | os.PathLike[str], *, error: Callable[..., Exception] = JsonLinesError,
                what: str = "the file") -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON value)`` for every line of ``path`` (nothing when it does not exist).

    ``error(message, hint=...)`` builds the exception for a truncated, empty or non-JSON line.
    """
    target = Path(path)
    if not target.exists():
        return
    with open(target, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            data = fh.read()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if number == len(lines):
            if raw.strip():
                raise error(f"{target} line {number} is truncated (no newline at the end): a write was cut off",
                            hint="inspect that line and move it aside; the file is never repaired silently")
            return
        if not raw.strip():
            raise error(f"{target} line {number} is empty", hint=f"{what} is append-only JSON lines")
        try:
            value = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise error(f"{target} line {number} is not valid JSON ({exc.__class__.__name__}: {exc})",
                        hint=f"inspect that line; {what} is never repaired silently") from None
        yield number, value


def read_records(path: str | os.PathLike[str], *,
                 error: Callable[..., Exception] = JsonLinesError) -> list[dict[str, Any]]:
    """Every JSON object in ``path``, in order (``[]`` when the file does not exist)."""
    out: list[dict[str, Any]] = []
    for number, record in parse_lines(path, error=error):
        if not isinstance(record, dict):
            raise error(f"{path} line {number} is not a JSON object", hint="the file is append-only JSON lines")
        out.append(record)
    return out
