"""Run an operator's command (``systemctl restart ...``, ``docker compose up -d backend``) with a timeout.

Commands run without a shell when they are a plain argument list (``shlex.split``);
only a command that uses shell syntax (pipes, ``&&``, redirections, ``$VAR``) is
handed to ``/bin/sh -c``.  Output goes to a temporary file rather than a pipe, so
a start command that leaves a daemon behind (which inherits the descriptors)
does not hang us until the timeout.  Output is redacted before anyone sees it.
On timeout the command's whole process group is terminated.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_cutover.redact import redact

__all__ = ["CommandResult", "file_tail", "run_command", "to_argv"]

_SHELL_SYNTAX = set("|&;<>()$`*?~{}\n")


@dataclass(frozen=True)
class CommandResult:
    """A finished (or killed) command; ``output`` is stdout+stderr, redacted."""

    command: str
    returncode: int | None
    output: str
    duration_s: float
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


def to_argv(command: str) -> list[str]:
    """``shlex.split`` for plain commands; ``/bin/sh -c`` only when the command needs a shell."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return ["/bin/sh", "-c", command]
    if any(ch in _SHELL_SYNTAX for ch in command) or (argv and "=" in argv[0] and not argv[0].startswith("/")):
        return ["/bin/sh", "-c", command]
    return argv


def run_command(command: str, *, timeout: float, cwd: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> CommandResult:
    """Run ``command`` and wait at most ``timeout`` seconds; never raises for a failing command."""
    argv = to_argv(command)
    start = time.monotonic()
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=None if env is None else dict(env), start_new_session=True)
        except OSError as exc:
            return CommandResult(redact(command), None, redact(f"cannot start: {exc}"),
                                 round(time.monotonic() - start, 3), False)
        timed_out = False
        try:
            code: int | None = proc.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            code = proc.returncode
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return CommandResult(redact(command), code, redact(text), round(time.monotonic() - start, 3), timed_out)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM then SIGKILL to the process group this module created (and nothing else)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def file_tail(path: str | os.PathLike[str] | None, lines: int = 15, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a log file, redacted; a short note when it cannot be read."""
    if not path:
        return "(no [app] log_file configured)"
    try:
        with open(Path(path), "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc.strerror})"
    return redact("\n".join(data.rstrip().splitlines()[-lines:]))
