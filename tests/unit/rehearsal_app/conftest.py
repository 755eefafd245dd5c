"""Fixtures for the reference app and storage service tests: one seeded cluster, a CA, the storage service,
and a factory that checks the app out into a git repository and serves it with uvicorn over HTTPS."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from pytest_cutover.rehearsal import seed as seed_mod
from pytest_cutover.rehearsal import services, tls
from pytest_cutover.rehearsal.postgres import TARGET_DATABASE, EmbeddedPostgres
from pytest_cutover.rehearsal.procs import free_port
from pytest_cutover.util.jwt import mint_jwt

JWT_SECRET = "rehearsal-app-tests-jwt-secret-0123456789"
ADMIN_TOKEN = "admin-token-for-app-tests"
API_TOKEN = "api-token-for-app-tests"
#: Small but real: 3 orgs, clustered vectors, attachments with file_data (seconds, not minutes).
TINY = seed_mod.SeedSize(orgs=3, users_per_org=2, threads_per_user=2, messages_per_thread=1, fragments_per_org=24,
                         attachments_per_org=2, attachment_bytes=2048, max_blob_bytes=8192, topics_per_org=2,
                         subtopics_per_topic=2)


@dataclass
class Cluster:
    """The embedded PostgreSQL (old + target), the seeded data and the Qdrant folder."""

    pg: EmbeddedPostgres
    data: seed_mod.SeedData
    qdrant_path: Path

    def fetch(self, sql: str, *args: Any, user: str = "supabase_admin") -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(self.pg.dsn(user, TARGET_DATABASE).get(), timeout=10)
            try:
                return list(await conn.fetch(sql, *args))
            finally:
                await conn.close()

        return asyncio.run(go())

    def orgs(self) -> list[str]:
        return sorted(o[0] for o in self.data.orgs)


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Embedded PostgreSQL with A1's schema, seeded (tiny) into old, target and a Qdrant folder."""
    work = tmp_path_factory.mktemp("app-cluster")
    pg = EmbeddedPostgres(work / "pg")
    pg.start()
    try:
        _, data = asyncio.run(seed_mod.seed_all_async(old_dsn=pg.old_dsn, target_dsn=pg.target_dsn,
                                                      qdrant_path=work / "qdrant", seed=7, size=TINY))
        yield Cluster(pg=pg, data=data, qdrant_path=work / "qdrant")
    finally:
        pg.stop()


@dataclass(frozen=True)
class Tls:
    ca: tls.CertificateAuthority
    cert: tls.ServerCertificate


@pytest.fixture(scope="package")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    base = tmp_path_factory.mktemp("app-tls")
    ca = tls.make_ca(base / "ca")
    return Tls(ca=ca, cert=tls.issue_server_cert(ca, base / "certs", name="api"))


@dataclass
class Storage:
    url: str
    service_key: str
    process: Any
    data_dir: Path

    def user_key(self, org_id: str, sub: str = "6f1c7a52-3d1e-4c35-9e59-3b8f6d1e2a10") -> str:
        return mint_jwt(JWT_SECRET, role="authenticated", org_id=org_id, sub=sub)


@pytest.fixture(scope="package")
def storage(cluster: Cluster, tls_material: Tls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Storage]:
    """The storage service over HTTPS, connected as supabase_storage_admin (switches role per request)."""
    base = tmp_path_factory.mktemp("storage")
    port = free_port()
    proc = services.storage_process(port, dsn=cluster.pg.dsn("supabase_storage_admin").get(), jwt_secret=JWT_SECRET,
                                    data_dir=base / "data", certfile=tls_material.cert.cert_path,
                                    keyfile=tls_material.cert.key_path, log_path=base / "storage.log",
                                    ca_file=tls_material.ca.cert_path)
    proc.start(timeout=30)
    try:
        yield Storage(url=f"https://127.0.0.1:{port}/storage/v1", process=proc, data_dir=base / "data",
                      service_key=mint_jwt(JWT_SECRET, role="service_role"))
    finally:
        proc.stop()


@dataclass
class RunningApp:
    """One checkout of the reference app served by uvicorn; helpers to call it and read its log."""

    checkout: Path
    base_url: str
    process: Any
    env: dict[str, str]
    ca_file: Path
    log_file: Path
    faults_file: Path
    lines_read: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=ssl.create_default_context(cafile=str(self.ca_file)),
                            timeout=15)

    def call(self, method: str, path: str, *, org: str | None = None, token: str | None = API_TOKEN,
             **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if org is not None:
            headers["x-org-id"] = org
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        with self.client() as client:
            return client.request(method, path, headers=headers, **kwargs)

    def set_faults(self, faults: dict[str, Any] | None) -> None:
        if faults is None:
            self.faults_file.unlink(missing_ok=True)
        else:
            self.faults_file.write_text(json.dumps(faults), encoding="utf-8")

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text(encoding="utf-8").splitlines() if line]

    def new_log_lines(self) -> list[dict[str, Any]]:
        lines = self.log_lines()
        fresh, self.lines_read = lines[self.lines_read:], len(lines)
        return fresh


@pytest.fixture(scope="package")
def app_factory(cluster: Cluster, tls_material: Tls, storage: Storage,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningApp]]:
    """``app_factory(name, start=True, faults=None, **env_overrides)``: a fresh checkout, served over HTTPS."""
    started: list[RunningApp] = []

    def make(name: str, *, start: bool = True, faults: dict[str, Any] | None = None, **overrides: str) -> RunningApp:
        base = tmp_path_factory.mktemp(f"app-{name}")
        env = {
            "DATABASE_URL": cluster.pg.app_role_dsn.get().replace("postgresql://", "postgresql+asyncpg://", 1),
            "MAINTENANCE_MODE": "false",
            "MAINTENANCE_FILE": str(base / "maintenance.flag"),
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "API_TOKEN": API_TOKEN,
            "QDRANT_PATH": str(cluster.qdrant_path),
            "QDRANT_COLLECTION": seed_mod.COLLECTION,
            "VECTOR_BACKEND": "qdrant",
            "STORAGE_URL": storage.url,
            "STORAGE_KEY": storage.service_key,
            "STORAGE_BUCKET": "attachments",
            "STORAGE_SSL_CA": str(tls_material.ca.cert_path),
            "LOG_FILE": str(base / "logs" / "app.log"),
            "FAULTS_FILE": str(base / "faults.json"),
            **overrides,
        }
        checkout = services.prepare_app_checkout(base / "backend", env)
        port = free_port()
        proc = services.app_process(checkout, port, certfile=tls_material.cert.cert_path,
                                    keyfile=tls_material.cert.key_path, log_path=base / "logs" / "app.out",
                                    ca_file=tls_material.ca.cert_path)
        app = RunningApp(checkout=checkout, base_url=f"https://127.0.0.1:{port}", process=proc, env=env,
                         ca_file=tls_material.ca.cert_path, log_file=Path(env["LOG_FILE"]),
                         faults_file=Path(env["FAULTS_FILE"]))
        app.set_faults(faults)
        started.append(app)
        if start:
            proc.start(timeout=30)
        return app

    yield make
    for app in started:
        app.process.stop()


@pytest.fixture(scope="package")
def app(app_factory: Callable[..., RunningApp]) -> RunningApp:
    """The reference app before the switch: app_user on the target directly, Qdrant local mode for search."""
    return app_factory("main")
