"""The container path's database provisioning, run for real against a blank PostgreSQL 18 + pgvector.

The pgvector image starts a blank cluster whose superuser is ``supabase_admin`` (POSTGRES_USER); the
embedded wheel's server, started without its own provisioning, is the same thing without Docker.  So the
exact SQL sequence ContainerStack runs over TCP (roles, SCRAM verifiers, storage schema, app schema, RLS,
old database, then the storage bucket and policies) is checked here, plus that the seed loads into it.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cutover.redact import Secret
from pytest_cutover.rehearsal import containers as c
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.postgres import (
    LOGIN_ROLES,
    SQL_DIR,
    SUPERUSER,
    EmbeddedPostgres,
    scram_sha256_verifier,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def blank_db() -> Iterator[c.ContainerDatabase]:
    # Outside pytest's temp root: the server runs as another user when we are root (see rehearsal_db/conftest.py).
    work = Path(tempfile.mkdtemp(prefix="cutover-blankpg-"))
    pg = EmbeddedPostgres(work / "pg")
    pg._provision = lambda: None  # type: ignore[method-assign]  # blank, as the image's cluster starts
    pg.start()
    try:
        passwords = {role: Secret(secrets.token_urlsafe(18)) for role in LOGIN_ROLES}
        pg.psql(f"alter role {SUPERUSER} password '{scram_sha256_verifier(passwords[SUPERUSER].get())}'")
        assert pg.port is not None
        yield c.ContainerDatabase("127.0.0.1", pg.port, passwords)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _one(db: c.ContainerDatabase, sql: str, **kw: str) -> str:
    return db.psql(sql, single_transaction=False, **kw).strip()  # type: ignore[arg-type]


def test_provision_a_blank_cluster_like_the_embedded_one(blank_db: c.ContainerDatabase) -> None:
    db = blank_db
    c.provision_database(db)
    assert _one(db, "select rolsuper, rolbypassrls from pg_roles where rolname = 'postgres'") == "f|t"
    assert _one(db, "select rolsuper, rolbypassrls from pg_roles where rolname = 'app_user'") == "f|f"
    # Every login role got its password (as a SCRAM verifier): log in over TCP as each.
    for role in ("app_user", "postgres", "old_app", "supabase_storage_admin"):
        database = "old_app" if role == "old_app" else "postgres"
        assert _one(db, "select current_user", user=role, database=database) == role
    assert _one(db, "select nspowner::regrole from pg_namespace where nspname = 'storage'") == "supabase_storage_admin"
    assert _one(db, "select count(*) from pg_class where relnamespace = 'storage'::regnamespace") == "0"
    forced = _one(db, "select string_agg(relname || ':' || relrowsecurity || relforcerowsecurity, ',' order by relname)"
                      " from pg_class where relnamespace = 'public'::regnamespace and relkind = 'r'")
    assert forced == ",".join(f"{t}:truetrue" for t in ("attachments", "memory_fragments", "messages", "orgs",
                                                         "threads", "users"))
    assert _one(db, "select format_type(atttypid, atttypmod) from pg_attribute where attrelid ="
                    " 'public.memory_fragments'::regclass and attname = 'embedding'") == "vector(1536)"
    assert _one(db, "select count(*) from information_schema.columns where table_name = 'memory_fragments'"
                    " and column_name = 'embedding'", database="old_app") == "0"
    assert _one(db, "select tableowner from pg_tables where tablename = 'threads'", database="old_app") == "old_app"

    # The storage server's migrations create its tables as supabase_storage_admin; stand in with our own copy.
    text = (SQL_DIR / "target" / "03_storage.sql").read_text(encoding="utf-8")
    tables = text[: text.find("-- As on Supabase: the API roles get table privileges")]
    tables = tables.replace("create schema storage authorization", "create schema if not exists storage authorization")
    db.psql(tables + "reset role;\n")
    db.psql(c.storage_policies_sql())
    assert _one(db, "select public from storage.buckets where id = 'attachments'") == "f"
    assert _one(db, "select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects'") == "4"
    # The default privileges set before the tables existed reached them (the API roles may use storage).
    assert _one(db, "select has_table_privilege('authenticated', 'storage.objects', 'select')") == "t"

    from pytest_cutover.rehearsal.seed import seed_all

    summary = seed_all(old_dsn=db.old_dsn, target_dsn=db.target_dsn, qdrant_path=None, size="small")
    assert summary.points == 0 and summary.fragments > 0
    assert _one(db, "select count(*) from memory_fragments") == str(summary.fragments)


def test_psql_errors_name_the_database_and_hide_passwords(blank_db: c.ContainerDatabase) -> None:
    with pytest.raises(RehearsalError) as caught:
        blank_db.psql("select * from no_such_table", database="postgres")
    assert "psql on postgres as supabase_admin failed" in caught.value.message
    assert blank_db.password(SUPERUSER).get() not in caught.value.message


def test_the_container_pgbouncer_ini_runs_in_a_real_pgbouncer(blank_db: c.ContainerDatabase) -> None:
    """The ini/userlist the PgBouncer containers get, run by the Debian pgbouncer against the provisioned server
    (image paths and the ``db`` host swapped for local ones); the stack's own TLS probe and DSNs log in."""
    import os
    import subprocess

    from pytest_cutover.rehearsal import tls
    from pytest_cutover.rehearsal.pgbouncer import _chown_tree, _ensure_traversable, find_pgbouncer
    from pytest_cutover.rehearsal.procs import ManagedProcess, free_port
    from pytest_cutover.rehearsal.stack import STATS_USER

    db = blank_db
    c.provision_database(db)
    work = Path(tempfile.mkdtemp(prefix="cutover-pgbc-"))
    proc: ManagedProcess | None = None
    try:
        ca = tls.make_ca(work / "tls")
        cert = tls.issue_server_cert(ca, work / "tls", name="pooler")
        conf = work / "pgb"
        conf.mkdir()
        users = {"app_user": db.password("app_user").get()}
        stats = {STATS_USER: secrets.token_urlsafe(12)}
        port = free_port()
        (conf / "pgbouncer.ini").write_text(c.pgbouncer_ini(
            pool_mode="transaction", databases={"postgres": "postgres"}, stats_users=list(stats),
            db_host="127.0.0.1", db_port=db.port, listen_port=port, conf_dir=str(conf)))
        (conf / "userlist.txt").write_text(c.pgbouncer_userlist({**users, **stats}))
        (conf / "server.pem").write_bytes(cert.cert_path.read_bytes())
        (conf / "server.key").write_bytes(cert.key_path.read_bytes())
        argv = [find_pgbouncer()]
        if os.geteuid() == 0:  # pgbouncer refuses root, as in the embedded stack
            _chown_tree(conf, "embedded_postgres")
            _ensure_traversable(conf)
            argv += ["-u", "embedded_postgres"]
        pooler = c.ContainerPooler("transaction", host="127.0.0.1", port=port, users=users,
                                   databases={"postgres": "postgres"}, ca_file=ca.cert_path, stats_users=stats)
        proc = ManagedProcess("pgbouncer (container ini)", [*argv, str(conf / "pgbouncer.ini")], cwd=conf,
                              log_path=work / "pgbouncer.log")
        proc.start(c._tls_login_probe(pooler, "app_user"), timeout=20)
        # The Debian psql (the wheel's is built without OpenSSL), as the monitor reads the console.
        shown = subprocess.run([shutil.which("psql") or "psql", "-X", "-A", "-t", "-c", "show config",
                                pooler.admin_dsn(STATS_USER).get()], capture_output=True, text=True, timeout=30,
                               check=False)
        assert shown.returncode == 0, shown.stderr
        config = dict(line.split("|")[:2] for line in shown.stdout.splitlines() if "|" in line)
        assert config["pool_mode"] == "transaction" and config["client_tls_sslmode"] == "require"
    finally:
        if proc is not None:
            proc.stop()
        shutil.rmtree(work, ignore_errors=True)
