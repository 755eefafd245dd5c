"""The DATABASE_URL switch: only that line changes, atomically, with a restorable backup, never 5432."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.env_switch import (
    BACKUP_NAME,
    backup_path,
    check_transaction_pooler,
    load_backup,
    restore_database_url,
    switch_database_url,
)

from .action_helpers import NEW_PASSWORD, OLD_PASSWORD, OLD_URL, POOLER_URL, SESSION_URL, FakeBackend

ORIGINAL = (
    b"# production settings\r\n"
    b"export API_TOKEN='abc def'\n"
    b"# DATABASE_URL=postgresql://commented-out:5432/x\n"
    b"DATABASE_URL=\"" + OLD_URL.encode() + b"\"   # the old database\r\n"
    b"QDRANT_URL=http://qdrant:6333\n"
    b"\n"
    b"WEIRD=\xff\xfe bytes kept\n"
    b"LAST_LINE_WITHOUT_NEWLINE=1"
)


def _prepare(backend: FakeBackend, data: bytes = ORIGINAL, mode: int = 0o640) -> Path:
    backend.env_file.write_bytes(data)
    backend.env_file.chmod(mode)
    return backend.env_file


def test_switch_changes_only_the_database_url_line_and_restore_puts_every_byte_back(backend: FakeBackend) -> None:
    env = _prepare(backend)
    if os.getuid() == 0:  # the app's .env usually belongs to the service user: the owner must survive the edit
        os.chown(env, 65534, 65534)
    owner = (env.stat().st_uid, env.stat().st_gid)
    ctx = backend.ctx()
    inode_before = env.stat().st_ino

    result = switch_database_url(ctx)

    after = env.read_bytes()
    expected = ORIGINAL.replace(OLD_URL.encode(), POOLER_URL.encode())
    assert after == expected
    assert stat.S_IMODE(env.stat().st_mode) == 0o640 and (env.stat().st_uid, env.stat().st_gid) == owner
    assert env.stat().st_ino != inode_before, "the file must be replaced by rename, not rewritten in place"
    assert not [p for p in env.parent.iterdir() if p.name.endswith(".tmp")], "no temp file left behind"
    assert result.ok and result.action == "env-switch"
    assert "old-db.internal:5432" in result.before["endpoint"] and ":6543/" in result.after["endpoint"]

    backup = backup_path(ctx)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert json.loads(backup.read_text())["previous"] == OLD_URL
    assert load_backup(ctx).previous.get() == OLD_URL

    restored = restore_database_url(ctx)
    assert restored.ok and restored.action == "env-restore"
    assert env.read_bytes() == ORIGINAL
    assert stat.S_IMODE(env.stat().st_mode) == 0o640 and (env.stat().st_uid, env.stat().st_gid) == owner

    records = [r for r in ctx.ledger.records() if r["kind"] == "action"]
    assert [(r["action"], r["ok"]) for r in records] == [("env-switch", True), ("env-restore", True)]
    assert {"before", "after", "ok", "detail", "duration_s"} <= set(records[0])


def test_switching_twice_keeps_the_first_backup(backend: FakeBackend) -> None:
    _prepare(backend)
    ctx = backend.ctx()
    switch_database_url(ctx)
    again = switch_database_url(ctx)
    assert again.ok and "nothing changed" in again.detail
    assert load_backup(ctx).previous.get() == OLD_URL


@pytest.mark.parametrize(("url", "message"), [
    (SESSION_URL, "it is target.session_pooler_url (the session pooler), not the transaction pooler"),
    (f"postgresql+asyncpg://postgres:{NEW_PASSWORD}@db.ref.supabase.example:5432/postgres",
     "it is target.database_url (the direct or session connection)"),
    (f"postgresql+asyncpg://u:{NEW_PASSWORD}@elsewhere.example:5432/postgres",
     "port 5432 is the session pooler or a direct connection, not the transaction pooler on 6543"),
    (f"postgresql+asyncpg://u:{NEW_PASSWORD}@elsewhere.example/postgres", "port 5432 is the session pooler"),
    (f"postgresql+asyncpg://u:{NEW_PASSWORD}@elsewhere.example:7000/postgres",
     "port 7000 is neither 6543 nor the configured target.app_database_url"),
])
def test_switch_refuses_anything_but_the_transaction_pooler(backend: FakeBackend, url: str, message: str) -> None:
    env = _prepare(backend)
    ctx = backend.ctx()
    with pytest.raises(ActionError) as info:
        switch_database_url(ctx, url)
    assert message in str(info.value)
    assert "6543" in (info.value.hint or "")
    assert NEW_PASSWORD not in str(info.value)
    assert env.read_bytes() == ORIGINAL, "a refused switch must not touch the file"
    assert not (backup_path(ctx)).exists()
    (record,) = [r for r in ctx.ledger.records() if r["kind"] == "action"]
    assert record["ok"] is False and message in record["detail"]


def test_the_configured_app_database_url_is_accepted_on_any_port(backend: FakeBackend) -> None:
    url = f"postgresql+asyncpg://app_user:{NEW_PASSWORD}@127.0.0.1:16432/postgres"
    assert "target.app_database_url" in check_transaction_pooler(url, backend.config().model_copy(
        update={"target": backend.config().target.model_copy(update={"app_database_url": url})}))


@pytest.mark.parametrize(("content", "message"), [
    (b"API_TOKEN=x\n# DATABASE_URL=postgresql://a:b@c:6543/d\n", "has no DATABASE_URL line"),
    (b"DATABASE_URL=" + OLD_URL.encode() + b"\nFOO=1\nexport DATABASE_URL=" + OLD_URL.encode() + b"\n",
     "has 2 DATABASE_URL lines (lines 1, 3): refusing to guess which one the app reads"),
])
def test_switch_refuses_a_file_without_exactly_one_database_url_line(backend: FakeBackend, content: bytes,
                                                                     message: str) -> None:
    env = _prepare(backend, content)
    with pytest.raises(ActionError, match="DATABASE_URL") as info:
        switch_database_url(backend.ctx())
    assert message in str(info.value)
    assert env.read_bytes() == content


def test_restore_without_a_backup_says_the_switch_was_not_recorded(backend: FakeBackend) -> None:
    _prepare(backend)
    with pytest.raises(ActionError, match=r"no env backup at .*env-backup.json: the DATABASE_URL switch was not "
                                          r"recorded in run t1"):
        restore_database_url(backend.ctx())


def test_cli_switch_and_restore_never_print_a_password(backend: FakeBackend, capfd: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cutover.cli import main

    env = _prepare(backend)
    base = ["--config", str(backend.config_path), "--reports-dir", str(backend.reports), "--run", "t1"]
    assert main(["action", "env-switch", *base]) == 0
    assert main(["action", "env-switch", *base, "--json"]) == 0
    monkeypatch.setenv("BAD_URL", SESSION_URL)
    assert main(["action", "env-switch", *base, "--url-env", "BAD_URL"]) == 1
    assert main(["action", "env-switch", *base, "--url-env", "UNSET_VAR_X"]) == 2
    assert main(["action", "env-restore", *base]) == 0
    assert main(["action", "env-restore", *base, "--json"]) == 0
    out, err = capfd.readouterr()
    assert "env-switch: ok" in out and "env-restore: ok" in out and "refusing to switch" in err
    ledger = (backend.reports / "t1" / "ledger.jsonl").read_text()
    for text in (out, err, ledger):
        assert OLD_PASSWORD not in text and NEW_PASSWORD not in text
    assert "app_user:***@old-db.internal:5432" in ledger
    assert env.read_bytes() == ORIGINAL
    # the backup is the one place the previous URL is stored, readable by the owner only
    assert OLD_PASSWORD in (backend.reports / ".secrets" / "t1" / BACKUP_NAME).read_text()
    assert os.stat(backend.reports / ".secrets" / "t1" / BACKUP_NAME).st_mode & 0o077 == 0
