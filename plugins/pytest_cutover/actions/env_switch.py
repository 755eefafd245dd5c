"""Step 3a: point the app's ``DATABASE_URL`` at the transaction pooler, reversibly.

Only the ``DATABASE_URL`` line of the app's ``.env`` changes (see
:mod:`~pytest_cutover.actions.envfile`).  Before the edit, the previous URL is
saved to ``reports/.secrets/<run>/env-backup.json`` (mode 0600 in a 0700 folder: it is a
secret, stored but never printed, and kept out of ``reports/<run>/``, which people attach)
so :func:`restore_database_url` and the rollback can put it back.
The new URL must be the transaction pooler: the runbook's warning ("Use port
6543, NOT 5432: port 5432 loses context between requests") is enforced here,
not left to the operator.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.base import ActionError, ActionResult, config_path, recorded, require
from pytest_cutover.actions.envfile import atomic_write, find_line, set_value
from pytest_cutover.actions.pg import endpoint
from pytest_cutover.ledger import iso_utc
from pytest_cutover.redact import Secret, redact, reveal

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig
    from pytest_cutover.context import RunContext

__all__ = [
    "BACKUP_NAME",
    "KEY",
    "TRANSACTION_POOLER_PORT",
    "EnvBackup",
    "backup_path",
    "check_transaction_pooler",
    "current_database_url",
    "env_file_path",
    "load_backup",
    "restore_database_url",
    "secrets_folder",
    "switch_database_url",
]

KEY = "DATABASE_URL"
BACKUP_NAME = "env-backup.json"
SECRETS_DIR = ".secrets"
TRANSACTION_POOLER_PORT = 6543
SESSION_PORT = 5432


@dataclass(frozen=True)
class EnvBackup:
    """The previous ``DATABASE_URL`` saved by the switch (``previous`` is the secret value)."""

    path: Path
    env_file: Path
    previous: Secret
    new_sha256: str
    created: str

    def describe(self) -> str:
        return f"{self.path} (previous {KEY} {self.previous}, saved {self.created})"


def env_file_path(ctx: RunContext) -> Path:
    """The app's ``.env`` from ``[app] env_file`` (relative paths are relative to the config file)."""
    return config_path(ctx, require(ctx, "app.env_file", f"edit the app's {KEY}"))


def current_database_url(ctx: RunContext, env_file: Path | None = None) -> Secret | None:
    """The app's ``DATABASE_URL`` as it is in the ``.env`` now (``None`` when the line is missing)."""
    line = find_line(env_file or env_file_path(ctx), KEY)
    return None if line is None else Secret(line.value)


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_transaction_pooler(url: Secret | str, config: CutoverConfig | None) -> str:
    """Why ``url`` is the transaction pooler, or :class:`ActionError` saying why it is not.

    Accepted: the configured ``[target] app_database_url`` or any URL on port 6543.
    Refused: the session pooler / direct connection (``[target] session_pooler_url``,
    ``[target] database_url``, or port 5432), and anything else.
    """
    ep = endpoint(url)
    target = config.target if config is not None else None
    hint = (f"use the transaction pooler on port {TRANSACTION_POOLER_PORT} ([target] app_database_url): through "
            "the session pooler or a direct connection on 5432 the RLS context set with SET LOCAL is not what the "
            "runbook's checks were made for, and connections are held per client")
    if target and target.session_pooler_url and endpoint(target.session_pooler_url).same_place(ep):
        raise ActionError(f"refusing to switch {KEY} to {redact(reveal(url))}: it is target.session_pooler_url "
                          "(the session pooler), not the transaction pooler", hint=hint)
    if target and target.database_url and endpoint(target.database_url).same_place(ep):
        raise ActionError(f"refusing to switch {KEY} to {redact(reveal(url))}: it is target.database_url "
                          "(the direct or session connection), not the transaction pooler", hint=hint)
    if ep.port == SESSION_PORT:
        raise ActionError(f"refusing to switch {KEY} to {redact(reveal(url))}: port {SESSION_PORT} is the session "
                          f"pooler or a direct connection, not the transaction pooler on {TRANSACTION_POOLER_PORT}",
                          hint=hint)
    if ep.port == TRANSACTION_POOLER_PORT:
        return f"port {TRANSACTION_POOLER_PORT} (transaction pooler)"
    if target and target.app_database_url and endpoint(target.app_database_url).same_place(ep):
        return "the configured target.app_database_url (transaction pooler)"
    raise ActionError(f"refusing to switch {KEY} to {redact(reveal(url))}: port {ep.port} is neither "
                      f"{TRANSACTION_POOLER_PORT} nor the configured target.app_database_url", hint=hint)


def secrets_folder(reports_dir: Path, run: str) -> Path:
    """``reports/.secrets/<run>/`` (0700, as is ``.secrets``), made if missing: where the files that hold
    secrets live, beside the run's reports, never inside the folder people attach."""
    path = Path(reports_dir) / SECRETS_DIR / run
    for folder in (path.parent, path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    return path


def backup_path(ctx: RunContext) -> Path:
    """``reports/.secrets/<run>/env-backup.json``: beside the run's reports, never inside the attachable folder."""
    return ctx.reports_dir / SECRETS_DIR / ctx.run / BACKUP_NAME


def load_backup(ctx: RunContext) -> EnvBackup:
    """The switch's backup of the previous ``DATABASE_URL``, or an error saying it is missing."""
    path = backup_path(ctx)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return EnvBackup(path=path, env_file=Path(data["env_file"]), previous=Secret(data["previous"]),
                         new_sha256=data["new_sha256"], created=data["created"])
    except FileNotFoundError:
        raise ActionError(f"no env backup at {path}: the {KEY} switch was not recorded in run {ctx.run}",
                          hint=f"restore {KEY} by hand from your own notes, or pass the --run of the switch") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ActionError(f"env backup {path} is unreadable ({exc.__class__.__name__})",
                          hint="inspect the file; it holds the previous DATABASE_URL") from None


def _save_backup(ctx: RunContext, env_file: Path, previous: str, new: str) -> Path:
    path = backup_path(ctx)
    secrets_folder(ctx.reports_dir, ctx.run)
    payload: dict[str, Any] = {"env_file": str(env_file), "key": KEY, "previous": previous,
                               "previous_redacted": redact(previous), "new_sha256": _sha(new), "created": iso_utc()}
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode(), mode=0o600)
    return path


def _state(env_file: Path, value: str | None) -> dict[str, Any]:
    return {"env_file": str(env_file), "database_url": redact(value) if value is not None else None,
            "endpoint": str(endpoint(value)) if value else None}


def switch_database_url(ctx: RunContext, new_url: Secret | str | None = None, *,
                        env_file: Path | None = None) -> ActionResult:
    """Set the app's ``DATABASE_URL`` to ``new_url`` (default ``[target] app_database_url``), keeping a backup.

    Does not restart the app: that is :mod:`~pytest_cutover.actions.restart`.
    """
    env_file = Path(env_file) if env_file else env_file_path(ctx)
    new = reveal(new_url) if new_url is not None else reveal(require(ctx, "target.app_database_url",
                                                                      f"switch the app's {KEY}"))
    assert new is not None
    Secret(new)  # registers the password so that redact() masks it everywhere
    line = find_line(env_file, KEY)
    previous = None if line is None else line.value
    if previous is not None:
        Secret(previous)
    with recorded(ctx, "env-switch", before=_state(env_file, previous)) as rec:
        why = check_transaction_pooler(new, ctx.config)
        if line is None:
            raise ActionError(f"{env_file} has no {KEY} line: refusing to add one the app may not read",
                              hint=f"add the {KEY}=... line the app uses to {env_file}, then run the action again")
        if previous == new:
            rec.after = _state(env_file, new)
            rec.detail = f"{KEY} already points at {endpoint(new)}: {why}; nothing changed"
        else:
            backup = _save_backup(ctx, env_file, previous or "", new)
            set_value(env_file, KEY, new)
            after = find_line(env_file, KEY)
            if after is None or after.value != new:
                raise ActionError(f"{env_file}: {KEY} does not read back as the new value after the edit",
                                  hint=f"restore it with `cutover action env-restore` (backup {backup})")
            rec.after = {**_state(env_file, new), "backup": str(backup)}
            rec.detail = f"{KEY} switched from {endpoint(previous or '')} to {endpoint(new)} ({why}); backup {backup}"
    return rec.outcome()


def restore_database_url(ctx: RunContext) -> ActionResult:
    """Put the previous ``DATABASE_URL`` from the switch's backup back into the ``.env`` (rollback)."""
    backup = load_backup(ctx)
    env_file = backup.env_file
    line = find_line(env_file, KEY)
    current = None if line is None else line.value
    with recorded(ctx, "env-restore", before={**_state(env_file, current), "backup": str(backup.path)}) as rec:
        previous = backup.previous.get()
        if current == previous:
            rec.after = _state(env_file, current)
            rec.detail = f"{KEY} already points at {endpoint(previous)} (the value before the switch); nothing changed"
        else:
            set_value(env_file, KEY, previous)
            after = find_line(env_file, KEY)
            if after is None or after.value != previous:
                raise ActionError(f"{env_file}: {KEY} does not read back as the restored value",
                                  hint=f"edit {env_file} by hand; the previous value is in {backup.path}")
            rec.after = _state(env_file, previous)
            rec.detail = f"{KEY} restored to {endpoint(previous)} from {backup.path}"
    return rec.outcome()
