"""Settings, read once at start from the checkout's ``.env`` (process environment variables win).

Why "once at start": this is how the runbook's backend behaves, and it is what makes the cutover's
"edit .env, then restart" step meaningful (an edit without a restart changes nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["ENV_FILE", "Settings", "get_settings", "load_settings", "read_env_file"]

#: The checkout's .env (git-ignored).  APP_ENV_FILE points elsewhere (the app's own tests use it).
ENV_FILE = Path(__file__).resolve().parent.parent / ".env"

_TRUE = {"1", "true", "yes", "on"}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines: ``#`` comments, optional ``export``, optional quotes, `` #`` trailing comments."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment (names as in the .env)."""

    database_url: str
    database_ssl_ca: Path | None
    maintenance_mode: bool
    maintenance_file: Path | None
    admin_token: str
    api_token: str
    qdrant_path: Path | None
    qdrant_collection: str
    vector_backend: str
    storage_url: str
    storage_key: str
    storage_bucket: str
    storage_ssl_ca: Path | None
    log_file: Path | None
    faults_file: Path | None
    search_timeout_ms: int

    def __repr__(self) -> str:  # never print the DSN password or the tokens
        return f"Settings(vector_backend={self.vector_backend!r}, maintenance_mode={self.maintenance_mode})"


def load_settings(env_file: Path | None = None) -> Settings:
    """Read ``env_file`` (default: APP_ENV_FILE or the checkout's .env); the process environment wins."""
    path = env_file or Path(os.environ.get("APP_ENV_FILE") or ENV_FILE)
    values = {**read_env_file(path), **{k: v for k, v in os.environ.items() if k.isupper()}}
    backend = values.get("VECTOR_BACKEND", "qdrant").strip().lower()
    if backend not in ("qdrant", "pgvector", "auto"):
        raise ValueError(f"VECTOR_BACKEND must be qdrant, pgvector or auto, got {backend!r}")
    return Settings(
        database_url=values.get("DATABASE_URL", ""),
        database_ssl_ca=_opt_path(values.get("DATABASE_SSL_CA")),
        maintenance_mode=values.get("MAINTENANCE_MODE", "false").strip().lower() in _TRUE,
        maintenance_file=_opt_path(values.get("MAINTENANCE_FILE")),
        admin_token=values.get("ADMIN_TOKEN", ""),
        api_token=values.get("API_TOKEN", ""),
        qdrant_path=_opt_path(values.get("QDRANT_PATH")),
        qdrant_collection=values.get("QDRANT_COLLECTION", "dac_memory"),
        vector_backend=backend,
        storage_url=values.get("STORAGE_URL", "").rstrip("/"),
        storage_key=values.get("STORAGE_KEY", ""),
        storage_bucket=values.get("STORAGE_BUCKET", "attachments"),
        storage_ssl_ca=_opt_path(values.get("STORAGE_SSL_CA") or values.get("DATABASE_SSL_CA")),
        log_file=_opt_path(values.get("LOG_FILE")),
        faults_file=_opt_path(values.get("FAULTS_FILE")),
        search_timeout_ms=int(values.get("SEARCH_TIMEOUT_MS", "2000")),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read on first use, then fixed until restart)."""
    return load_settings()
