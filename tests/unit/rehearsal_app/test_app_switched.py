"""The app after the switch: DATABASE_URL through a TLS transaction pooler (PgBouncer), and the runbook's own
smoke snippets (STEP 5b-5e) run from the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import services
from pytest_cutover.rehearsal.pgbouncer import PgBouncer

from .conftest import Cluster, RunningApp, Tls

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tx_pooler(cluster: Cluster, tls_material: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    pg = cluster.pg
    assert pg.socket_dir is not None and pg.port is not None
    pooler = PgBouncer("app-tests", workdir=tmp_path_factory.mktemp("pooler") / "pgb", socket_dir=pg.socket_dir,
                       pg_port=pg.port, users={"app_user": pg.password("app_user").get()},
                       certfile=tls_material.cert.cert_path, keyfile=tls_material.cert.key_path,
                       ca_file=tls_material.ca.cert_path, pool_mode="transaction", pool_size=2,
                       run_as=pg.run_as_user if pg.run_as_user != "root" else None)
    pooler.start(timeout=20)
    try:
        yield pooler
    finally:
        pooler.stop()


def test_concurrent_tenants_through_the_transaction_pooler(app_factory: Callable[..., RunningApp],
                                                           tx_pooler: PgBouncer, cluster: Cluster,
                                                           tls_material: Tls) -> None:
    """2 server connections shared by 6 clients: every answer has exactly its own org's threads."""
    pooled = app_factory("pooled", VECTOR_BACKEND="pgvector",
                         DATABASE_URL=tx_pooler.dsn("app_user", scheme="postgresql+asyncpg").get(),
                         DATABASE_SSL_CA=str(tls_material.ca.cert_path))
    expected = {org: {str(r["id"]) for r in cluster.fetch("SELECT id FROM threads WHERE org_id = $1", org)}
                for org in cluster.orgs()}
    jobs = [cluster.orgs()[i % len(expected)] for i in range(36)]

    def ask(org: str) -> tuple[str, int, set[str]]:
        response = pooled.call("GET", "/api/threads", org=org)
        ids = {t["id"] for t in response.json().get("threads", [])} if response.status_code == 200 else set()
        return org, response.status_code, ids

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(ask, jobs))
    assert [status for _, status, _ in answers] == [200] * len(jobs)
    assert all(ids == expected[org] for org, _, ids in answers)
    assert not [line for line in pooled.log_lines() if line["level"] in ("ERROR", "CRITICAL")]


def test_runbook_smoke_snippets_run_in_the_checkout(app: RunningApp, cluster: Cluster) -> None:
    """STEP 5b (engine), 5c (AsyncSessionLocal + set_rls_context + Thread), 5d (MemoryFragment), 5e (storage)."""
    org = cluster.orgs()[0]
    snippet = textwrap.dedent(f"""
        import asyncio
        from sqlalchemy import select, text
        from app.database import AsyncSessionLocal, engine
        from app.security import set_rls_context
        from app.models.thread import Thread
        from app.models.memory import MemoryFragment
        from app.services.storage_service import storage_service

        async def main():
            async with engine.begin() as conn:
                unscoped = (await conn.execute(text("SELECT COUNT(*) FROM threads"))).scalar()
            async with AsyncSessionLocal() as db:
                await set_rls_context(db, {org!r}, None)
                threads = (await db.execute(select(Thread))).scalars().all()
                with_vectors = (await db.execute(
                    select(MemoryFragment).where(MemoryFragment.embedding.isnot(None)))).scalars().all()
            await engine.dispose()
            print(unscoped, len(threads), sorted({{t.org_id for t in threads}}), len(with_vectors) >= 0,
                  type(storage_service).__name__)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", snippet], cwd=app.checkout, capture_output=True, text=True,
                          timeout=60, env=services._child_env())
    assert done.returncode == 0, done.stderr[-2000:]
    expected = cluster.fetch("SELECT count(*) AS n FROM threads WHERE org_id = $1", org)[0]["n"]
    # As app_user under forced RLS: no tenant set -> 0 rows (RLS fails closed); with the tenant -> its rows only.
    assert done.stdout.split() == ["0", str(expected), f"['{org}']", "True", "StorageService"]
