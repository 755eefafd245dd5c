"""Child processes of the rehearsal stack: started in their own process group, stopped by pid.

Why a class of our own rather than bare ``subprocess``: every part of the stack (PgBouncer, the app,
the storage service) must be waited for with a deadline, must report *why* it did not come up (its
last log lines, redacted), and must be stopped without leaving orphans or stray ports behind, also
when the run is interrupted.  Each process gets its own session (``start_new_session``), so SIGTERM
and then SIGKILL go to the whole group it may have spawned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, NoReturn

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.util.wait import wait_until

__all__ = ["ManagedProcess", "free_port", "port_is_free"]

_POLL_FIRST_S = 0.05
_POLL_MAX_S = 0.5


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel picks it; a tiny race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now (a stopped stack must leave its ports free)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tail(path: Path, n: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    return redact("\n".join(lines[-n:]))


class ManagedProcess:
    """A child process started in its own process group, stopped by pid with SIGTERM then SIGKILL.

    ``user`` runs the child as that system user (when we are root), for programs that refuse to
    run as root or must reach a socket only that user can open.  stdout and stderr go to ``log_path``.
    """

    def __init__(self, name: str, argv: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 log_path: Path, user: str | None = None) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.cwd = Path(cwd) if cwd is not None else None
        self.env = dict(env) if env is not None else None
        self.log_path = Path(log_path)
        self.user = user
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, running={self.running})"

    @property
    def running(self) -> bool:
        """True while the child has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines of the process log, redacted."""
        return _tail(self.log_path, n)

    def _popen_user_kwargs(self) -> dict[str, object]:
        if self.user is None:
            return {}
        import pwd

        try:
            entry = pwd.getpwnam(self.user)
        except KeyError:
            raise RehearsalError(f"{self.name}: system user {self.user} does not exist",
                                 hint=f"create it (useradd --system {self.user}) or start without user=") from None
        if os.geteuid() not in (0, entry.pw_uid):
            raise RehearsalError(f"{self.name}: cannot run as user {self.user} without root (euid {os.geteuid()})",
                                 hint="run as root or drop the user= argument")
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Start the process and poll ``ready()`` until it returns True.

        Raises :class:`RehearsalError` naming the process, with its last log lines, when the process
        exits first or ``timeout`` seconds pass (the process is stopped in both cases).
        Calling ``start`` on a running process does nothing.
        """
        if self.running:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._stopped = False
        try:
            self._proc = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, **self._popen_user_kwargs(),
            )
        except OSError as exc:
            self._close_log()
            raise RehearsalError(f"{self.name}: cannot execute {self.argv[0]}: {exc.strerror}",
                                 hint="check that the program is installed and on PATH") from None
        except RehearsalError:
            self._close_log()
            raise
        self.pid = self._proc.pid
        proc = self._proc
        last_problem = "ready check never returned true"

        def up() -> bool:
            nonlocal last_problem
            code = proc.poll()
            if code is not None:
                self._give_up(f"exited with code {code} before it was ready (pid {self.pid}, log {self.log_path})",
                              f"read {self.log_path} for the full output")
            try:
                return bool(ready())
            except Exception as exc:  # any failure of the probe means "not ready yet"
                last_problem = f"{type(exc).__name__}: {exc}"
                return False

        if not wait_until(up, timeout, pause=_POLL_FIRST_S, max_pause=_POLL_MAX_S):
            self._give_up(f"not ready after {timeout:.1f}s (pid {self.pid}, last probe: {last_problem}, "
                          f"log {self.log_path})", f"read {self.log_path}; raise the timeout if the machine is slow")

    def _give_up(self, what: str, hint: str) -> NoReturn:
        """Stop the process and raise with ``what`` went wrong and its last log lines."""
        tail = self.log_tail()
        self.stop()
        raise RehearsalError(f"{self.name} {what}; last log lines:\n{tail}", hint=hint)

    def _descendants(self) -> list[int]:
        try:
            import psutil
        except ImportError:
            return []
        try:
            return [p.pid for p in psutil.Process(self.pid).children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
            return []

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL what is left.

        Idempotent; also kills descendants that left the group (recorded before the signal).
        """
        proc = self._proc
        if proc is None or self._stopped:
            self._close_log()
            return
        if proc.poll() is None:
            stragglers = self._descendants()
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            for pid in stragglers:
                _kill_pid(pid)
        # Whatever is still in the group after the leader exited is an orphan: kill it too (Linux does not
        # reuse a pid while it is still some group's id, so this cannot hit an unrelated process group).
        _signal_group(proc.pid, signal.SIGKILL)
        self._stopped = True
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
