"""services.py: the checkout is a real, clean git repository with a pushed origin and a private .env; the
source facts the precutover checks read are true of the template; JWTs verify; the env file is atomic."""

from __future__ import annotations

import py_compile
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import services
from pytest_cutover.rehearsal.errors import RehearsalError

from .conftest import RunningApp

SECRET = "a-jwt-secret-of-at-least-32-bytes-0123456789"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("checkout")
    return services.prepare_app_checkout(base / "backend", {"DATABASE_URL": "postgresql+asyncpg://u:pw@h:1/db",
                                                            "API_TOKEN": "t0ken-value"})


def test_checkout_is_a_clean_repository_pushed_to_its_origin(checkout: Path) -> None:
    assert _git(checkout, "status", "--porcelain") == ""
    assert _git(checkout, "rev-parse", "HEAD") == _git(checkout, "rev-parse", "origin/main")
    assert Path(_git(checkout, "remote", "get-url", "origin").strip()) == checkout.parent / "backend-origin.git"
    assert "app/main.py" in _git(checkout, "ls-files").split()


def test_env_file_is_private_and_ignored(checkout: Path) -> None:
    env = checkout / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env.read_text(encoding="utf-8") == "DATABASE_URL=postgresql+asyncpg://u:pw@h:1/db\nAPI_TOKEN=t0ken-value\n"
    assert _git(checkout, "check-ignore", ".env").strip() == ".env"
    assert ".env" not in _git(checkout, "ls-files").split()


def test_write_env_replaces_atomically_and_refuses_newlines(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    services.write_env(target, {"A": "1"})
    services.write_env(target, {"A": "2", "B": "x y"})
    assert target.read_text(encoding="utf-8") == "A=2\nB=x y\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    with pytest.raises(RehearsalError, match="cannot be written"):
        services.write_env(target, {"A": "1\nEVIL=1"})
    assert target.read_text(encoding="utf-8") == "A=2\nB=x y\n" and list(tmp_path.iterdir()) == [target]


def test_second_checkout_into_the_same_folder_is_refused(checkout: Path) -> None:
    with pytest.raises(RehearsalError, match="not empty"):
        services.prepare_app_checkout(checkout, {})


def test_source_facts_the_code_checks_rely_on(checkout: Path) -> None:
    database = (checkout / "app" / "database.py").read_text(encoding="utf-8")
    assert re.search(r"[\"']statement_cache_size[\"']\s*:\s*0\b", database)
    assert re.search(r"[\"']prepared_statement_cache_size[\"']\s*:\s*0\b", database)
    security = (checkout / "app" / "security.py").read_text(encoding="utf-8")
    assert re.search(r"set_config\('app\.current_org_id', :org_id, true\)", security)
    assert re.search(r"set_config\('app\.current_user_id', :user_id, true\)", security)
    assert not re.search(r"(?i)\bSET\s+(SESSION\s+)?app\.", security)
    for path in checkout.rglob("*.py"):
        py_compile.compile(str(path), cfile=str(checkout.parent / "pyc" / (path.name + "c")), doraise=True)


def test_the_apps_own_tests_collect_and_pass(checkout: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q"], cwd=checkout, capture_output=True, text=True,
                          timeout=120, env={**services._child_env(), "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", done.stdout)
    assert _git(checkout, "status", "--porcelain") == ""  # caches stay out of the tree


@pytest.mark.integration
def test_checkout_stays_clean_while_the_app_runs(app: RunningApp) -> None:
    assert app.call("GET", "/health").status_code == 200
    assert _git(app.checkout, "status", "--porcelain") == ""


def test_children_inherit_no_settings_or_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:leaked-password@h/db")
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", "leaked-service-key")
    proc = services.app_process(tmp_path, 1, certfile=tmp_path / "c.pem", keyfile=tmp_path / "k.pem",
                                log_path=tmp_path / "app.out")
    assert proc.argv[1:4] == ["-m", "uvicorn", "app.main:app"] and proc.cwd == tmp_path.resolve()
    assert "DATABASE_URL" not in proc.env and "leaked" not in repr(proc.env)
    storage = services.storage_process(1, dsn="postgresql://s:pw@h/db", jwt_secret=SECRET, data_dir=tmp_path,
                                       certfile=None, keyfile=None, log_path=tmp_path / "s.log")
    assert storage.env["STORAGE_DATABASE_URL"] == "postgresql://s:pw@h/db" and "leaked" not in repr(storage.env)
    assert SECRET not in " ".join(storage.argv)  # secrets travel in the environment, never in argv
