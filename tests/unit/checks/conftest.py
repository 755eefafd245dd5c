"""One embedded rehearsal stack for the checks' self-tests, and copies of its app checkout for source faults.

The stack is started once per session (about 15 s); database faults are planted on it and undone by
the test that planted them; source and file faults (``syntax-error``, ``merge-conflict``, ``dirty-git``,
``session-set``, ``statement-cache-on``, ``stale-backup``) are planted on a private copy of the checkout
or the backup, so the shared stack stays clean.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, load_config

#: Two orgs are enough for cross-tenant probes; three make org A a real org with rows everywhere.
TINY = dict(orgs=3, users_per_org=2, threads_per_user=2, messages_per_thread=2, fragments_per_org=30,
            attachments_per_org=2, attachment_bytes=2048, max_blob_bytes=16 * 1024, topics_per_org=2,
            subtopics_per_topic=2)


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    """A running EmbeddedStack (database, seed, backup, TLS poolers, storage, app) for the whole session."""
    from pytest_cutover.rehearsal.seed import SeedSize
    from pytest_cutover.rehearsal.stack import EmbeddedStack, services_available

    reason = services_available()
    if reason:
        pytest.skip(f"rehearsal services not available: {reason}")
    with EmbeddedStack(None, size=SeedSize(**TINY)) as running:
        yield running


@pytest.fixture
def stack_config(stack: Any) -> Callable[..., CutoverConfig]:
    """``stack_config(**section_updates)``: the stack's cutover.toml as loaded now (faults may rewrite it),
    with ``target.jwt_secret`` added and any ``section={key: value}`` overrides applied."""
    from pytest_cutover.redact import Secret
    from pytest_cutover.rehearsal.stack import read_env_file

    def load(**updates: dict[str, Any]) -> CutoverConfig:
        cfg = load_config(stack.config_path, env=read_env_file(stack.stack_env_path))
        target = {"jwt_secret": Secret(stack.urls.jwt_secret.get()), **updates.pop("target", {})}
        changes = {"target": cfg.target.model_copy(update=target)}
        for section, values in updates.items():
            attr = "schema_" if section == "schema" else section
            changes[attr] = getattr(cfg, attr).model_copy(update=values)
        return cfg.model_copy(update=changes)

    return load


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


@pytest.fixture
def checkout_copy(stack: Any) -> Iterator[SimpleNamespace]:
    """A private copy of the app checkout with its own bare origin: a fault target for source faults."""
    base = Path(tempfile.mkdtemp(prefix="cutover-checks-"))
    try:
        origin = base / "backend-origin.git"
        shutil.copytree(stack.app_dir.parent / "backend-origin.git", origin)
        app_dir = base / "backend"
        shutil.copytree(stack.app_dir, app_dir)
        _git(app_dir, "remote", "set-url", "origin", str(origin))
        _git(app_dir, "fetch", "-q", "origin")
        yield SimpleNamespace(app_dir=app_dir, origin=origin, backup_path=base / "old_app.dump")
    finally:
        shutil.rmtree(base, ignore_errors=True)
