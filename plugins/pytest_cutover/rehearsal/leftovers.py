"""What a killed rehearsal left on this machine: its stack folder and the processes still running from it.

Why: a stack stops its processes and removes its folder on success, failure, Ctrl-C, SIGTERM and at exit,
but a SIGKILL (a CI timeout, the OOM killer, ``kill -9``) skips all of that: PostgreSQL, PgBouncer, the
storage service and the app keep running and holding ports and memory, and the folder stays in the temporary
directory.  Each stack records its owner (pid and start time) in ``stack-state.json`` from the moment its
folder exists, and at each start :func:`sweep_stale_stacks` looks for folders of this kind whose owner is
gone: it stops what still runs from them (the recorded parts through ``ctl.stop_all``, then any server of the
stack whose command line names the folder: :func:`is_stack_part`) and removes the folder, unless the stack was
asked to keep it.  A folder with a live owner (another rehearsal running now), without a readable state file
(one being created), or of another user is never touched.  Docker objects are swept by
:mod:`pytest_cutover.rehearsal.sweep`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_cutover.redact import redact

__all__ = ["FOLDER_PREFIX", "StaleStack", "is_stack_part", "owner_record", "stale_stacks", "sweep_stale_stacks"]

FOLDER_PREFIX = "cutover-stack-"
_TERM_WAIT_S = 10.0


@dataclass(frozen=True)
class StaleStack:
    """A stack folder whose owner process is gone."""

    path: Path
    keep: bool  # the stack was asked to keep its folder: stop what runs, leave the folder


def owner_record(*, keep: bool) -> dict[str, Any]:
    """The fields of ``stack-state.json`` that say who owns the stack (this process) and whether its folder
    is to be kept."""
    import psutil

    return {"stack_pid": os.getpid(), "stack_start": psutil.Process().create_time(), "keep": keep}


def _owner_alive(state: dict[str, Any]) -> bool:
    from pytest_cutover.rehearsal.ctl import _process_if_same

    return _process_if_same(state.get("stack_pid"), state.get("stack_start")) is not None


def stale_stacks(folders: Iterable[Path], *, uid: int | None = None,
                 alive: Callable[[dict[str, Any]], bool] = _owner_alive) -> list[StaleStack]:
    """The folders among ``folders`` whose owner is gone: this user's, with a readable state file naming an
    owner that ``alive`` says is not running.  Anything else is kept."""
    from pytest_cutover.rehearsal.ctl import read_state
    from pytest_cutover.rehearsal.errors import RehearsalError

    uid = os.getuid() if uid is None else uid
    found = []
    for folder in folders:
        try:
            if not folder.is_dir() or folder.stat().st_uid != uid:
                continue
            state = read_state(folder)
        except (OSError, RehearsalError):
            continue  # not ours, or being created right now
        if not isinstance(state, dict) or not state.get("stack_pid") or alive(state):
            continue
        found.append(StaleStack(folder, bool(state.get("keep"))))
    return found


#: What a stack runs: PostgreSQL and PgBouncer (by executable), the app (uvicorn) and the storage service (by module).
_PART_EXECUTABLES = ("postgres", "pgbouncer")
_PART_MODULES = ("uvicorn", "pytest_cutover.rehearsal.storage")


def is_stack_part(cmdline: Iterable[str], folder: Path) -> bool:
    """Whether a command line is one of a stack's servers started from ``folder``: it names the folder and its
    executable (or ``python -m`` module) is a server the stack runs; never an operator's shell, editor or
    ``rehearsal.ctl`` looking at the folder."""
    words, path = [str(w) for w in cmdline], str(folder)
    if not any(w.endswith(path) or path + "/" in w for w in words):  # the folder itself, not a longer name
        return False
    if os.path.basename(words[0]) in _PART_EXECUTABLES:
        return True
    module = words[words.index("-m") + 1] if "-m" in words[:-1] else None
    return module in _PART_MODULES


def _processes_naming(folder: Path) -> list[Any]:
    """The stack's parts still running from ``folder`` (any user: PostgreSQL runs as its own system user)."""
    import psutil

    victims = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error, TypeError):
            if proc.pid != os.getpid() and is_stack_part(proc.info["cmdline"] or (), folder):
                victims.append(proc)
    return victims


def _stop_processes(folder: Path, running: list[Any]) -> list[str]:
    """Stop what still runs from ``folder``: the parts it recorded, then those of ``running`` still alive."""
    import psutil

    from pytest_cutover.rehearsal.ctl import stop_all

    said = []
    with contextlib.suppress(Exception):  # a half-written record: the command-line search found them anyway
        said.append(stop_all(folder))
    victims = [proc for proc in running if proc.is_running()]  # is_running() also rules out a recycled pid
    if victims:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in victims:
                with contextlib.suppress(psutil.Error):
                    proc.send_signal(sig)
            _, victims = psutil.wait_procs(victims, timeout=_TERM_WAIT_S)
            if not victims:
                break
        said.append(f"stopped processes naming the folder{'' if not victims else ' (some would not stop)'}")
    return said


def sweep_stale_stacks(say: Callable[[str], None], *, root: Path | None = None) -> list[StaleStack]:
    """Clean up after killed rehearsals on this machine (see the module docstring); one line through ``say``
    per folder cleaned.  A kept folder with nothing running from it is left as it is, silently.  Returns
    the stacks cleaned."""
    root = Path(tempfile.gettempdir()) if root is None else root
    cleaned = []
    for stack in stale_stacks(sorted(root.glob(FOLDER_PREFIX + "*"))):
        running = _processes_naming(stack.path)
        if stack.keep and not running:
            continue
        stopped = _stop_processes(stack.path, running) if running else ["nothing was running from it"]
        if not stack.keep:
            shutil.rmtree(stack.path, ignore_errors=True)
        what = "kept its folder (asked to keep it)" if stack.keep else "removed its folder"
        say(redact(f"stack: cleaned up after a rehearsal whose process is gone: {stack.path}: "
                   f"{'; '.join(stopped)}; {what}"))
        cleaned.append(stack)
    return cleaned
