"""Follow the app's log (a file, or a command such as ``journalctl -u x -f``) and count it.

Two sources with one interface, ``read_lines()`` (never blocks) and ``close()``:

- :class:`FileFollower` tails a file by polling: it starts at the end (only
  lines written during the window count; ``from_start=True`` reads it all),
  follows rotation (the path now names another inode: the rest of the old file
  is read, then the new one from its start) and truncation (the file is shorter
  than the offset: read again from the start), and holds back a partial last
  line until its newline arrives.  A file truncated and refilled past the old
  offset between two polls is not noticed (polling cannot tell).
- :class:`CommandFollower` runs ``log_command`` in its own process group (the
  runbook's ``docker compose logs -f``, ``journalctl -f``, ``pm2 logs``,
  ``kubectl logs -f``), reads its output on a thread, and stops it by pid with
  SIGTERM then SIGKILL.

:class:`LogWatcher` drains a source into :class:`~pytest_cutover.monitor.samples.LogCounts`,
keeping a few redacted lines as evidence.
"""

from __future__ import annotations

import os
import queue
import shlex
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Protocol

from pytest_cutover.monitor.classify import parse_line
from pytest_cutover.monitor.errors import MonitorError
from pytest_cutover.monitor.samples import LogCounts
from pytest_cutover.redact import redact
from pytest_cutover.util.wait import wait_until

__all__ = ["CommandFollower", "FileFollower", "LogSource", "LogWatcher", "log_source_from_config",
           "wait_for_lines"]

_READ_LIMIT = 4 * 1024 * 1024
_EVIDENCE_PER_SAMPLE = 5
_EVIDENCE_CHARS = 500


class LogSource(Protocol):
    """Where log lines come from."""

    def read_lines(self) -> list[str]: ...

    def close(self) -> None: ...


class FileFollower:
    """Tail ``path`` across rotation and truncation, by polling (no inotify needed)."""

    def __init__(self, path: str | os.PathLike[str], *, from_start: bool = False) -> None:
        self.path = Path(path)
        self._fh = None
        self._inode: int | None = None
        self._buffer = b""
        self._from_start = from_start
        self._open(initial=True)

    def _open(self, *, initial: bool = False) -> None:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - held open across reads to survive rotation
        except FileNotFoundError:
            self._fh, self._inode = None, None
            return
        self._fh = fh
        self._inode = os.fstat(fh.fileno()).st_ino
        if initial and not self._from_start:
            fh.seek(0, os.SEEK_END)

    @property
    def offset(self) -> int:
        """How far into the current file the follower has read."""
        return self._fh.tell() if self._fh else 0

    def _drain(self) -> bytes:
        assert self._fh is not None
        return self._fh.read(_READ_LIMIT)

    def read_lines(self) -> list[str]:
        """The complete lines written since the last call."""
        chunks: list[bytes] = []
        if self._fh is None:
            self._open()  # created after we started: read it from its start
        if self._fh is not None:
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_ino != self._inode:
                chunks.append(self._drain())  # rotated: finish the old file, then follow the new one
                self._fh.close()
                self._open()
                if self._fh is not None:
                    chunks.append(self._drain())
            elif current is not None and current.st_size < self._fh.tell():
                self._fh.seek(0)  # truncated in place (copytruncate, > file)
                self._buffer = b""
                chunks.append(self._drain())
            else:
                chunks.append(self._drain())
        data = self._buffer + b"".join(chunks)
        *complete, self._buffer = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class CommandFollower:
    """Run a log command for the window and collect its output lines."""

    def __init__(self, command: str | list[str], *, start_timeout_s: float = 10.0, env: dict[str, str] | None = None,
                 ) -> None:
        if isinstance(command, str):
            if not command.strip():
                raise MonitorError("log command is empty", hint="set app.log_command, or app.log_file instead")
            # Through the shell, so that the runbook's pipelines work (`docker compose logs -f backend | ...`);
            # the whole pipeline shares one process group and stops together.
            self.argv = ["/bin/sh", "-c", command]
        else:
            self.argv = list(command)
        if not self.argv:
            raise MonitorError("log command is empty", hint="set app.log_command, or app.log_file instead")
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.error: str | None = None
        try:
            self._proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        except OSError as exc:
            raise MonitorError(f"log command {redact(shlex.join(self.argv))!r} cannot start: {exc.strerror}",
                               hint="check app.log_command; it must run on this host") from None
        self._reader = threading.Thread(target=self._read, name="cutover-log-command", daemon=True)
        self._reader.start()
        self._start_timeout_s = start_timeout_s

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in iter(self._proc.stdout.readline, b""):
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._lines.put(None)

    def read_lines(self) -> list[str]:
        """The lines printed since the last call; notes (once) if the command has ended."""
        out: list[str] = []
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                code = self._proc.wait(timeout=self._start_timeout_s)
                self.error = f"log command exited with status {code}"
                continue
            out.append(line)
        return out

    def close(self, timeout: float = 5.0) -> None:
        """SIGTERM the command's process group, then SIGKILL after ``timeout``; idempotent."""
        if self._proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
                try:
                    os.killpg(self._proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self._proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._reader.join(timeout=timeout)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class LogWatcher:
    """Turn a log source into per-interval counts by level and runbook category."""

    def __init__(self, source: LogSource, *, evidence_per_sample: int = _EVIDENCE_PER_SAMPLE,
                 maintenance_paths: tuple[str, ...] = ()) -> None:
        self.source = source
        self.evidence_per_sample = evidence_per_sample
        # A 503 on these paths is the app answering "maintenance" on purpose, not a failed request.
        self.maintenance_paths = maintenance_paths

    def drain(self) -> LogCounts:
        """Count every line read since the last drain."""
        try:
            lines = self.source.read_lines()
        except OSError as exc:
            return LogCounts(source_error=redact(f"log source unreadable: {exc}"))
        levels: Counter[str] = Counter()
        categories: Counter[str] = Counter()
        evidence: list[str] = []
        requests = request_errors = 0
        for line in lines:
            if not line.strip():
                continue
            event = parse_line(line)
            levels[event.level or "UNKNOWN"] += 1
            if event.category:
                categories[event.category] += 1
            if event.status is not None:
                requests += 1
                deliberate = event.status == 503 and event.path in self.maintenance_paths
                request_errors += event.status >= 500 and not deliberate
            if (event.category or event.is_error) and len(evidence) < self.evidence_per_sample:
                evidence.append(redact(line.strip())[:_EVIDENCE_CHARS])
        return LogCounts(lines=sum(levels.values()), levels=dict(levels), categories=dict(categories),
                         requests=requests, request_errors=request_errors, evidence=tuple(evidence),
                         source_error=getattr(self.source, "error", None))

    def close(self) -> None:
        self.source.close()


def log_source_from_config(log_file: str | None, log_command: str | None, *, base: Path | None = None,
                           timeout_s: float = 10.0) -> LogSource | None:
    """``app.log_command`` if set, else ``app.log_file`` (relative to the config's folder), else ``None``."""
    if log_command:
        return CommandFollower(log_command, start_timeout_s=timeout_s)
    if log_file:
        path = Path(log_file)
        if not path.is_absolute() and base is not None:
            path = base / path
        return FileFollower(path)
    return None


def wait_for_lines(source: LogSource, count: int, timeout_s: float) -> list[str]:
    """Read until ``count`` lines arrived or ``timeout_s`` passed (used by tests and the stage's warm-up)."""
    lines: list[str] = []

    def enough() -> bool:
        lines.extend(source.read_lines())
        return len(lines) >= count

    wait_until(enough, timeout_s, pause=0.02)
    return lines
