"""The reference app and the storage service as processes of the rehearsal stack.

* :func:`prepare_app_checkout` lays the reference app (``app_template/``) out as a real git checkout
  with a bare ``origin`` it was pushed to, so the code checks (clean tree, syntax, merge markers,
  engine settings) run on a real repository, and writes its ``.env`` (0600, git-ignored).
* :func:`app_process` serves that checkout with uvicorn over HTTPS, from the checkout itself.
* :func:`storage_process` runs the Storage-API-compatible service (``rehearsal/storage``).

The processes are :class:`ManagedProcess` objects that are returned NOT started; ``start()`` with no
argument waits until the process answers HTTP (``start(ready)`` still takes a custom probe).
"""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.procs import ManagedProcess
from pytest_cutover.util.git import GitError, git_or_raise

__all__ = [
    "APP_ENV_KEYS",
    "GIT_IDENTITY",
    "TEMPLATE_DIR",
    "ServiceProcess",
    "app_process",
    "http_ready",
    "prepare_app_checkout",
    "storage_process",
    "uvicorn_args",
    "write_env",
]

#: The reference app's source, copied into the stack folder by :func:`prepare_app_checkout`.
TEMPLATE_DIR = Path(__file__).resolve().parent / "app_template"
#: Keys the app reads from its .env; a child never inherits them (see ``_INHERITED``), so the .env decides.
APP_ENV_KEYS = (
    "DATABASE_URL", "DATABASE_SSL_CA", "MAINTENANCE_MODE", "MAINTENANCE_FILE", "ADMIN_TOKEN", "API_TOKEN",
    "QDRANT_PATH", "QDRANT_COLLECTION", "VECTOR_BACKEND", "STORAGE_URL", "STORAGE_KEY", "STORAGE_BUCKET",
    "STORAGE_SSL_CA", "LOG_FILE", "FAULTS_FILE", "SEARCH_TIMEOUT_MS", "APP_ENV_FILE",
)
#: Who the rehearsal commits as in its app checkout (the checkout itself, and the faults planted in it).
GIT_IDENTITY = {"user.name": "pytest-cutover rehearsal", "user.email": "rehearsal@pytest-cutover.invalid",
                "commit.gpgsign": "false", "init.defaultBranch": "main"}
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".env", "*.log")


def _git(cwd: Path, *args: str) -> str:
    return git_or_raise(cwd, *args, config=GIT_IDENTITY, env={"GIT_CONFIG_NOSYSTEM": "1"}, check=True,
                        error=_checkout_error).stdout


def _checkout_error(exc: GitError) -> RehearsalError:
    hint = ("apt-get install git" if "not installed" in str(exc)
            else "check that the folder is writable and git works for this user")
    return RehearsalError(f"app checkout: {exc}", hint=hint)


def write_env(env_file: Path, env: Mapping[str, str]) -> None:
    """Atomically replace ``env_file`` with ``KEY=VALUE`` lines (mode 0600; the file holds secrets)."""
    lines = []
    for key, value in env.items():
        text = str(value)
        if not key or not key.replace("_", "").isalnum() or "\n" in text or "\r" in text:
            raise RehearsalError(f"app env: key {key!r} or its value cannot be written as one .env line",
                                 hint="use NAME=value pairs without newlines")
        lines.append(f"{key}={text}\n")
    env_file = Path(env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=env_file.parent, prefix=".env-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, env_file)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare_app_checkout(dest: Path, env: Mapping[str, str], extra_files: Mapping[str, str] | None = None) -> Path:
    """Copy the template to ``dest``, commit it, push it to ``dest.parent/backend-origin.git``, write ``.env``.

    ``extra_files`` (relative path -> text) are added to the first commit (e.g. the rollback plan written
    for this stack).  The working tree is clean afterwards (``.env``, logs and caches are git-ignored).
    """
    dest = Path(dest).resolve()
    if dest.exists() and any(dest.iterdir()):
        raise RehearsalError(f"app checkout: {dest} already exists and is not empty",
                             hint="point the stack at a fresh folder or remove the old checkout")
    origin = dest.parent / "backend-origin.git"
    if origin.exists():
        raise RehearsalError(f"app checkout: {origin} already exists", hint="remove it or use a fresh stack folder")
    shutil.copytree(TEMPLATE_DIR, dest, ignore=_IGNORE, dirs_exist_ok=True)
    for rel, text in (extra_files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text, encoding="utf-8")
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "reference backend")
    origin.mkdir(parents=True)
    _git(origin, "init", "-q", "--bare")
    _git(dest, "remote", "add", "origin", str(origin))
    _git(dest, "push", "-q", "-u", "origin", "HEAD:main")
    _git(dest, "branch", "-q", "--set-upstream-to=origin/main")
    write_env(dest / ".env", env)
    return dest


def http_ready(url: str, *, ca_file: Path | None = None, timeout: float = 2.0) -> Callable[[], bool]:
    """A readiness probe: True once ``url`` answers any HTTP status below 600 (the server is serving).

    With ``ca_file`` the certificate is verified; without it the probe only asks whether the server
    speaks HTTP(S) (the TLS checks of the suite verify the certificate for real).
    """
    if ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
                return response.status < 600
        except urllib.error.HTTPError as exc:
            return exc.code < 600
        except (urllib.error.URLError, OSError):
            return False

    return probe


class ServiceProcess(ManagedProcess):
    """A :class:`ManagedProcess` that knows how to tell it is up (``start()`` without a probe uses it)."""

    def __init__(self, name: str, argv: list[str], *, ready_url: str, ca_file: Path | None = None,
                 **kwargs: object) -> None:
        super().__init__(name, argv, **kwargs)  # type: ignore[arg-type]
        self.ready_url = ready_url
        self.ca_file = ca_file

    def start(self, ready: Callable[[], bool] | None = None, timeout: float = 30.0) -> None:
        super().start(ready or http_ready(self.ready_url, ca_file=self.ca_file), timeout=timeout)


#: What a child inherits from our environment: enough to run Python, nothing else (no tokens, no DSNs; the
#: stack may record a child's environment in its state file, and the app must read its settings from .env).
_INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
              "SSL_CERT_FILE", "SSL_CERT_DIR")


def _child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keeps the checkout's tree free of __pycache__ too
    env.update(extra or {})
    return env


def uvicorn_args(port: int, *, certfile: Path, keyfile: Path, host: str = "127.0.0.1") -> list[str]:
    """uvicorn's arguments for the reference app over HTTPS (a process from the checkout or the app image)."""
    return ["app.main:app", "--host", host, "--port", str(port), "--ssl-certfile", str(certfile),
            "--ssl-keyfile", str(keyfile), "--no-access-log", "--timeout-graceful-shutdown", "5"]


def app_process(checkout: Path, port: int, *, certfile: Path, keyfile: Path, log_path: Path,
                ca_file: Path | None = None, host: str = "127.0.0.1") -> ServiceProcess:
    """uvicorn serving ``app.main:app`` FROM ``checkout`` over HTTPS on ``host:port`` (not started yet).

    The app reads everything else from ``checkout/.env``; the child's environment carries none of those
    keys, so editing the .env and restarting is what changes the app (as in production).
    """
    checkout = Path(checkout).resolve()
    argv = [sys.executable, "-m", "uvicorn", *uvicorn_args(port, certfile=certfile, keyfile=keyfile, host=host)]
    return ServiceProcess("app", argv, cwd=checkout, env=_child_env(), log_path=Path(log_path),
                          ready_url=f"https://{host}:{port}/health", ca_file=ca_file)


def storage_process(port: int, *, dsn: str, jwt_secret: str, data_dir: Path, certfile: Path | None,
                    keyfile: Path | None, log_path: Path, ca_file: Path | None = None,
                    host: str = "127.0.0.1") -> ServiceProcess:
    """The storage service on ``host:port`` (HTTPS when ``certfile``/``keyfile`` are given; not started yet).

    ``dsn`` must log in as a role that may switch to anon/authenticated/service_role
    (``supabase_storage_admin`` or ``authenticator``); it and ``jwt_secret`` travel in the environment.
    """
    argv = [sys.executable, "-m", "pytest_cutover.rehearsal.storage", "--host", host, "--port", str(port),
            "--data-dir", str(data_dir)]
    scheme = "http"
    if certfile is not None and keyfile is not None:
        argv += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
        scheme = "https"
    env = _child_env({"STORAGE_DATABASE_URL": dsn, "STORAGE_JWT_SECRET": jwt_secret})
    return ServiceProcess("storage", argv, env=env, log_path=Path(log_path),
                          ready_url=f"{scheme}://{host}:{port}/status", ca_file=ca_file)


