"""Who, where and what a run is: run id, reports folder, host, user, suite revision.

Precedence is one function: flag > environment > config file > default.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cutover.config import CutoverConfig, config_hash
from pytest_cutover.errors import ConfigError
from pytest_cutover.ledger import LEDGER_NAME, Ledger, check_run_id, run_dir
from pytest_cutover.redact import redact
from pytest_cutover.util.git import git_or_none

__all__ = [
    "DEFAULT_RUN",
    "RunContext",
    "context_from_options",
    "git_revision",
    "given_run_id",
    "latest_run",
    "resolve_run_id",
]

DEFAULT_RUN = "default"


def given_run_id(flag: str | None, config: CutoverConfig | None,
                 env: dict[str, str] | None = None) -> tuple[str, str] | None:
    """``(run id, where it came from)`` when the operator named a run: ``--cutover-run``/``--run`` >
    ``$CUTOVER_RUN`` > ``[run] id``; ``None`` when nothing names one."""
    environ = os.environ if env is None else env
    for value, source in ((flag, "--run"), (environ.get("CUTOVER_RUN"), "$CUTOVER_RUN"),
                          (config.run.id if config else None, "[run] id")):
        if value:
            return check_run_id(value), source
    return None


def resolve_run_id(flag: str | None, config: CutoverConfig | None, env: dict[str, str] | None = None) -> str:
    """``--cutover-run`` > ``$CUTOVER_RUN`` > ``[run] id`` > ``default``."""
    given = given_run_id(flag, config, env)
    return given[0] if given else DEFAULT_RUN


def latest_run(reports_dir: str | os.PathLike[str]) -> str | None:
    """The run in ``reports_dir`` whose ledger was written last (file mtime; the name breaks a tie), or ``None``.

    Why: right after ``cutover rehearse`` or a night's ``pytest -m ...`` the operator wants *that* run's
    status without retyping its id.  Folders whose name is not a run id (``.secrets``) are ignored.
    """
    found: list[tuple[int, str]] = []
    try:
        folders = list(Path(reports_dir).iterdir())
    except OSError:
        return None
    for folder in folders:
        ledger = folder / LEDGER_NAME
        try:
            found.append((ledger.stat().st_mtime_ns, check_run_id(folder.name)))
        except (OSError, ConfigError):
            continue
    return max(found)[1] if found else None


def git_revision(path: str | os.PathLike[str]) -> str | None:
    """The suite's git revision (``+dirty`` when it has uncommitted changes), or ``None``."""
    rev = git_or_none(path, "rev-parse", "HEAD", timeout=10)
    dirty = git_or_none(path, "status", "--porcelain", "--untracked-files=no", timeout=10) if rev else None
    if rev is None or rev.returncode != 0 or dirty is None:
        return None
    return rev.stdout.strip()[:12] + ("+dirty" if dirty.stdout.strip() else "")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry in a container
        return str(os.getuid())


@dataclass
class RunContext:
    """The facts stamped on every ledger record of one invocation."""

    run: str
    reports_dir: Path
    config: CutoverConfig | None
    suite_dir: Path
    args: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=_user)
    git_rev: str | None = None
    config_hash: str | None = None

    def __post_init__(self) -> None:
        self.run = check_run_id(self.run)
        if self.git_rev is None:
            self.git_rev = git_revision(self.suite_dir)
        if self.config_hash is None:
            self.config_hash = config_hash(self.config)

    @property
    def run_dir(self) -> Path:
        return run_dir(self.reports_dir, self.run)

    @property
    def ledger(self) -> Ledger:
        return Ledger.for_run(self.reports_dir, self.run)

    def stamp(self) -> dict[str, Any]:
        """The fields every record of this invocation carries."""
        return {
            "run": self.run,
            "host": self.host,
            "user": self.user,
            "git_rev": self.git_rev,
            "config_hash": self.config_hash,
            "args": [redact(a) for a in self.args],
        }


def context_from_options(config_path: str | os.PathLike[str] | None = None, run: str | None = None,
                         reports_dir: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> RunContext:
    """The :class:`RunContext` for a CLI command, with the same precedence as the plugin."""
    from pytest_cutover.config import load_config

    base = cwd or Path.cwd()
    config = load_config(config_path, cwd=base)
    reports = reports_dir or os.environ.get("CUTOVER_REPORTS_DIR") or "reports"
    return RunContext(run=resolve_run_id(run, config), reports_dir=(base / reports).resolve(), config=config,
                      suite_dir=base, args=_invocation_args())


def _invocation_args() -> list[str]:
    """The command line of the running ``cutover`` command, which :func:`pytest_cutover.cli.main` hands to
    click; empty outside one.  Every ledger record stamps it (redacted), so a record says what ran it."""
    import click

    current = click.get_current_context(silent=True)
    obj = current.find_root().obj if current is not None else None
    return [str(a) for a in obj.get("argv", [])] if isinstance(obj, dict) else []
