"""Runbook "Rollback plan documented": the plan is a committed document that names what a rollback needs.

``[app] rollback_plan`` is the document's path (relative to the config file, like ``env_file``).  It
must exist, be committed in the git checkout that holds it (not untracked, ignored or modified), and
name the two facts someone rolling back at 3 a.m. must not have to look up: the host the app's
``DATABASE_URL`` goes back to (from the app's ``.env`` before the switch, else ``[source]
database_url``) and the app's restart command (``[app] restart_command``, else its stop and start
commands).  Only the host is ever read out of the URL; a plan that contains the database password
fails (without printing it).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pytest_cutover.checks.base import CheckResult, config_relative, result
from pytest_cutover.errors import CutoverError
from pytest_cutover.redact import reveal
from pytest_cutover.util.git import git_or_none

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["PreviousDatabase", "check_rollback_plan", "git_state", "mentions", "previous_database"]

_KEY = "DATABASE_URL"
_GIT_TIMEOUT_S = 30


@dataclass(frozen=True)
class PreviousDatabase:
    """Where the app's ``DATABASE_URL`` points before the switch: the host (safe to print), where it was read,
    and the URL's password (never printed; only used to check that the plan does not contain it)."""

    host: str
    port: int | None
    source: str
    password: str | None

    def __repr__(self) -> str:
        return f"PreviousDatabase(host={self.host!r}, port={self.port!r}, source={self.source!r})"


def _parse(url: str, source: str) -> PreviousDatabase | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    password = unquote(parts.password) if parts.password else None
    return PreviousDatabase(parts.hostname, port, source, password)


def previous_database(config: CutoverConfig) -> PreviousDatabase | None:
    """The previous ``DATABASE_URL``'s host: the app's ``.env`` (what a rollback restores), else
    ``[source] database_url``; ``None`` when neither names a host."""
    if config.app.env_file:
        from pytest_cutover.actions.envfile import read_value

        try:
            value = read_value(config_relative(config, config.app.env_file), _KEY)
        except CutoverError:  # missing, unreadable or ambiguous .env: the source URL still names the database
            value = None
        found = _parse(value, f"{_KEY} in app.env_file") if value else None
        if found is not None:
            return found
    source = reveal(config.source.database_url)
    return _parse(source, "source.database_url") if source else None


def mentions(text: str, needle: str) -> bool:
    """``needle`` occurs in ``text`` as a whole word (case-insensitive; ``old-db`` is not in ``old-db-2``)."""
    return re.search(rf"(?<![\w.-]){re.escape(needle)}(?![\w-])", text, re.IGNORECASE) is not None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    # The checkout may belong to the deploy user while the suite runs as another (root in CI): trust exactly
    # the folders on the way up to it (git's safe.directory), nothing else.
    return git_or_none(folder, *args, trust_parents=True, timeout=_GIT_TIMEOUT_S)


def git_state(path: Path) -> tuple[str, str]:
    """``(state, detail)`` of ``path`` in its git checkout: ``committed`` (detail: short revision),
    ``modified``, ``untracked``, ``ignored`` or ``no-git`` (detail says why)."""
    folder = path.parent
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top is None:
        return "no-git", "git is not installed or did not answer"
    if top.returncode != 0:
        return "no-git", f"{folder} is not inside a git checkout"
    root = Path(top.stdout.strip())
    tracked = _git(root, "ls-files", "--error-unmatch", "--", str(path))
    if tracked is None or tracked.returncode != 0:
        ignored = _git(root, "check-ignore", "-q", "--", str(path))
        if ignored is not None and ignored.returncode == 0:
            return "ignored", f"{path} is git-ignored in {root}"
        return "untracked", f"{path} is not tracked in {root}"
    status = _git(root, "status", "--porcelain=v1", "--", str(path))
    if status is None or status.returncode != 0:
        return "no-git", f"git status failed in {root}"
    if status.stdout.strip():
        return "modified", f"{path} has uncommitted changes in {root} ({status.stdout.strip()[:2].strip()})"
    rev = _git(root, "log", "-1", "--format=%h %cI", "--", str(path))
    return "committed", (rev.stdout.strip() if rev is not None and rev.returncode == 0 else "") or "HEAD"


def _restart_needles(config: CutoverConfig) -> tuple[list[str], str]:
    app = config.app
    if app.restart_command and app.restart_command.strip():
        return [app.restart_command], "app.restart_command"
    both = [c for c in (app.stop_command, app.start_command) if c and c.strip()]
    return both, "app.stop_command and app.start_command"


def check_rollback_plan(config: CutoverConfig) -> CheckResult:
    """The plan exists, is committed, names the previous database host and the restart command, and holds
    no database password."""
    name = "rollback-plan"
    if not config.app.rollback_plan:
        return result(name, ["no rollback plan configured (app.rollback_plan): write the runbook's rollback steps "
                             "(maintenance on, previous DATABASE_URL host, restart command, health check, alert) "
                             "into a document, commit it with the app, and set [app] rollback_plan = \"PATH\""],
                      "app.rollback_plan: missing")
    path = config_relative(config, config.app.rollback_plan).resolve()
    if not path.is_file():
        return result(name, [f"rollback plan {path} does not exist (app.rollback_plan = {config.app.rollback_plan!r}, "
                             "relative to the config file): write it and commit it, or fix the path"], str(path))
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return result(name, [f"rollback plan {path} cannot be read: {exc.strerror}"], str(path))
    problems: list[str] = []
    state, detail = git_state(path)
    if state == "no-git":
        problems.append(f"rollback plan {path} is not committed anywhere ({detail}): keep it in the app's repository "
                        "and commit it, so the plan used on the night is the reviewed one")
    elif state == "untracked":
        problems.append(f"rollback plan {path} is untracked: git add and commit it (and push)")
    elif state == "ignored":
        problems.append(f"rollback plan {path} is git-ignored, so never committed: move it or un-ignore it, then "
                        "commit it")
    elif state == "modified":
        problems.append(f"rollback plan {path} has uncommitted changes: review and commit them (git commit -- "
                        f"{path.name}), so the plan on the night is the reviewed one")
    previous = previous_database(config)
    if previous is None:
        problems.append(f"cannot tell the previous {_KEY} host: set [app] env_file (its {_KEY} line) or [source] "
                        "database_url, so the plan can be checked against it")
    else:
        if not mentions(text, previous.host):
            port = f" (port {previous.port})" if previous.port else ""
            problems.append(f"rollback plan {path} does not name the previous {_KEY} host {previous.host}{port} "
                            f"(from {previous.source}): write where {_KEY} goes back to (the host, never the "
                            "password)")
        if previous.password and len(previous.password) >= 4 and previous.password in text:
            problems.append(f"rollback plan {path} contains the password of the previous {_KEY} (from "
                            f"{previous.source}): remove it (name the host only; the value is restored from the "
                            "switch's backup), commit, and rotate the password if the plan was shared")
    needles, restart_key = _restart_needles(config)
    if not needles:
        problems.append("no restart command configured (app.restart_command, or app.stop_command and "
                        "app.start_command): set it, and write it into the rollback plan")
    else:
        squashed = _squash(text)
        missing = [c for c in needles if _squash(c) not in squashed]
        problems += [f"rollback plan {path} does not contain the restart command {c!r} ({restart_key}): write "
                     "the exact command the rollback runs" for c in missing]
    host = previous.host if previous else None
    evidence = (f"{path}: {state}" + (f" at {detail}" if state == "committed" else "")
                + (f"; previous {_KEY} host {host} (from {previous.source})" if previous else "")
                + (f"; restart command from {restart_key}" if needles else ""))
    return result(name, problems, evidence, {"path": str(path), "git": state, "previous_database_host": host})
