"""Running git with a deadline and never a prompt, for the checks (clean tree, pushed, plan committed),
the run context (suite revision) and the rehearsal (its app checkout and the faults it commits).

Why one wrapper: every caller needs the same three things (a timeout, no credential prompt that would
hang an unattended run, and a clear error when git is missing), plus, for checkouts owned by another
user (the deploy user while the suite runs as root in CI), git's ``safe.directory`` for exactly the
folders given.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["GitError", "git_or_none", "git_or_raise", "run_git"]


class GitError(RuntimeError):
    """git was not found, did not finish in time, or (``check=True``) exited non-zero.

    ``returncode`` is ``None`` when git did not run to the end; ``stderr`` is git's own words.
    """

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


def run_git(cwd: str | os.PathLike[str], *args: str, timeout: float = 60, check: bool = False,
            trust: Iterable[str | os.PathLike[str]] = (), config: Mapping[str, str] | None = None,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``git -C cwd *args`` with text output.

    ``trust``: folders passed as ``-c safe.directory=...``; ``config``: more ``-c key=value`` (an identity
    to commit with); ``env``: variables added to the environment.  Raises :class:`GitError` when git is
    missing or exceeds ``timeout``, and with ``check=True`` when it exits non-zero.
    """
    options = [arg for folder in trust for arg in ("-c", f"safe.directory={folder}")]
    options += [arg for key, value in (config or {}).items() for arg in ("-c", f"{key}={value}")]
    argv = ["git", *options, "-C", str(cwd), *args]
    what = f"git {' '.join(args)}"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})})
    except FileNotFoundError:
        raise GitError(f"{what}: git is not installed") from None
    except NotADirectoryError:
        raise GitError(f"{what}: {cwd} is not a folder") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"{what} did not finish within {timeout:g}s in {Path(cwd)}") from None
    if check and done.returncode != 0:
        stderr = done.stderr.strip() or done.stdout.strip()
        raise GitError(f"{what} failed in {cwd}: {stderr}", returncode=done.returncode, stderr=stderr)
    return done


def git_or_raise(cwd: str | os.PathLike[str], *args: str, error: Callable[[GitError], Exception],
                 timeout: float = 60, check: bool = False, trust: Iterable[str | os.PathLike[str]] = (),
                 config: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """:func:`run_git` (same options) whose :class:`GitError` becomes the caller's own error, built by
    ``error`` from it: each caller (checks, rehearsal) names what to do in its own words and error type."""
    try:
        return run_git(cwd, *args, timeout=timeout, check=check, trust=trust, config=config, env=env)
    except GitError as exc:
        raise error(exc) from None


def git_or_none(cwd: str | os.PathLike[str], *args: str, timeout: float = 60, trust_parents: bool = False
                ) -> subprocess.CompletedProcess[str] | None:
    """:func:`run_git` for callers to whom "git is missing, too slow, or ``cwd`` is no folder" means "unknown":
    ``None`` then (a non-zero exit is returned as it is).  ``trust_parents``: trust ``cwd`` and every folder
    above it (a checkout owned by another user, anywhere below its top level)."""
    folder = Path(cwd)
    try:
        return run_git(folder, *args, timeout=timeout, trust=(folder, *folder.parents) if trust_parents else ())
    except (GitError, OSError):
        return None
