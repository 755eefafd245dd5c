"""Versions of the moving parts, for the report's environment block.

A version measured during the run (a figure such as ``pgvector_version`` or a ``versions``
section) wins; otherwise the report says what it can read on this machine and labels it
``local`` so nobody mistakes the laptop's library for the production server.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

__all__ = ["versions"]

# component -> figure keys that carry its version (anywhere) / names inside a ``versions`` section
_FIGURE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "postgresql": (("postgresql_version", "postgres_version", "server_version", "pg_version"),
                   ("postgresql", "postgres", "server")),
    "pgvector": (("pgvector_version", "vector_version"), ("pgvector", "vector")),
    "pgbouncer": (("pgbouncer_version",), ("pgbouncer",)),
    "qdrant": (("qdrant_version", "qdrant_server_version"), ("qdrant", "qdrant_server")),
    "qdrant-client": (("qdrant_client_version",), ("qdrant_client", "qdrant-client")),
}
# distribution -> name in the report ("pgvector" the Python binding is not the server extension)
_LOCAL_DISTS = {"qdrant-client": "qdrant-client", "asyncpg": "asyncpg", "pgvector": "pgvector-python",
                "sqlalchemy": "sqlalchemy", "pytest": "pytest", "pytest-cutover": "pytest-cutover",
                "allure-pytest": "allure-pytest"}


def _from_figures(figures: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for section, values in figures.items():
        if not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            norm = str(key).lower().replace("-", "_")
            for component, (anywhere, in_section) in _FIGURE_KEYS.items():
                names = anywhere + (tuple(n.replace("-", "_") for n in in_section) if section == "versions" else ())
                if norm in names and component not in found and value not in (None, ""):
                    found[component] = {"version": str(value), "source": f"figures.{section}.{key}"}
    return found


@functools.cache
def _pgbouncer_local() -> str | None:
    exe = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"PgBouncer\s+(\S+)", out.stdout + out.stderr)
    return match.group(1) if match else None


@functools.cache
def _local_dists() -> tuple[tuple[str, str], ...]:
    out = []
    for dist, name in _LOCAL_DISTS.items():
        try:
            out.append((name, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(out)


def versions(figures: Mapping[str, Any], *, local: bool = True) -> dict[str, dict[str, str]]:
    """``{component: {"version": ..., "source": ...}}`` from the figures, then from this machine."""
    found = _from_figures(figures)
    if not local:
        return found
    for dist, version in _local_dists():
        found.setdefault(dist, {"version": version, "source": "local python package"})
    if "pgbouncer" not in found:
        local_bouncer = _pgbouncer_local()
        if local_bouncer:
            found["pgbouncer"] = {"version": local_bouncer, "source": "local binary (not the production pooler)"}
    found.setdefault("python", {"version": sys.version.split()[0], "source": "local interpreter"})
    for component in ("postgresql", "pgvector"):
        found.setdefault(component, {"version": "not recorded", "source": "no figure recorded it in this run"})
    return found
