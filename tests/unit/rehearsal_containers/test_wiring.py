"""The containers stack's wiring, checked without Docker: images, environments, PgBouncer ini, storage env,
the cutover.toml it writes for given endpoints, the Docker check and the stack registry."""

from __future__ import annotations

import configparser
import re
import time
import tomllib
from pathlib import Path

import jwt
import pytest

from pytest_cutover.config import load_config
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import Secret
from pytest_cutover.rehearsal import containers as c
from pytest_cutover.rehearsal import tls
from pytest_cutover.rehearsal.backends import STACKS, get_stack_class, stack_names
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.postgres import (
    _TARGET_SQL,
    _TARGET_SQL_AFTER_TABLES,
    LOGIN_ROLES,
    OLD_DATABASE,
    SQL_DIR,
    SUPERUSER,
)
from pytest_cutover.rehearsal.stack import STATS_USER, EmbeddedStack
from pytest_cutover.util.jwt import mint_jwt

NO_DOCKER = "unix:///nonexistent/docker.sock"


# ------------------------------------------------------------------------------------------------ images
def test_images_are_pinned_to_the_four_servers_of_the_issue() -> None:
    assert set(c.IMAGES.values()) == {c.PGVECTOR_IMAGE, c.QDRANT_IMAGE, c.PGBOUNCER_IMAGE, c.STORAGE_IMAGE}
    repos = {image.rsplit(":", 1)[0] for image in c.IMAGES.values()}
    assert {"pgvector/pgvector", "qdrant/qdrant", "supabase/storage-api"} <= repos
    assert any("pgbouncer" in repo for repo in repos)
    for image in c.IMAGES.values():
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+(\.\d+)*(-[\w.]+)?", tag), f"{image} is not pinned to a version tag"
    assert c.PGVECTOR_IMAGE.endswith("-pg18"), "the embedded wheel is PostgreSQL 18: keep the same major"


def test_qdrant_server_within_one_minor_of_the_installed_client() -> None:
    """qdrant-client warns (an error under filterwarnings=error) when server and client minors differ by > 1."""
    from importlib.metadata import version

    client_major, client_minor = (int(x) for x in version("qdrant-client").split(".")[:2])
    server_major, server_minor = (int(x) for x in c.QDRANT_IMAGE.rpartition(":v")[2].split(".")[:2])
    assert server_major == client_major and abs(server_minor - client_minor) <= 1


# ------------------------------------------------------------------------------------------------ postgres
def test_postgres_env_bootstraps_supabase_admin_not_postgres() -> None:
    env = c.postgres_env("pw-1")
    assert env["POSTGRES_USER"] == SUPERUSER == "supabase_admin"
    assert env["POSTGRES_PASSWORD"] == "pw-1" and env["POSTGRES_DB"] == "postgres"
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    argv = c.postgres_command()
    assert argv[0] == "postgres" and argv[1::2] == ["-c"] * ((len(argv) - 1) // 2)
    assert "password_encryption=scram-sha-256" in argv


def test_schema_steps_reuse_fixtures_sql_except_the_storage_tables() -> None:
    steps = c.target_schema_steps()
    files = [rel for rel, _, _ in steps]
    assert "target/03_storage.sql" not in files
    expected = [r for r in _TARGET_SQL if "03_storage" not in r] + ["app_tables.sql", *_TARGET_SQL_AFTER_TABLES,
                                                                     "app_tables.sql"]
    assert files == expected
    assert steps[-1] == ("app_tables.sql", OLD_DATABASE, "old_app")
    assert ("app_tables.sql", "postgres", "postgres") in steps
    for rel in files:
        assert (SQL_DIR / rel).is_file()


def test_storage_policies_come_from_03_storage_sql() -> None:
    sql = c.storage_policies_sql()
    source = (SQL_DIR / "target" / "03_storage.sql").read_text(encoding="utf-8")
    assert sql.startswith("set role supabase_storage_admin;\n") and sql.rstrip().endswith("reset role;")
    assert sql.split("\n", 1)[1] in source
    assert "create table" not in sql  # the storage server's migrations own the tables
    assert "insert into storage.buckets (id, name, public) values ('attachments', 'attachments', false)" in sql
    for command in ("select", "insert", "update", "delete"):
        assert f"create policy attachments_tenant_{command} on storage.objects" in sql
    assert "authorization supabase_storage_admin" in c.STORAGE_SCHEMA_SQL


# ------------------------------------------------------------------------------------------------ pgbouncer
def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_pgbouncer_ini_for_the_container(tmp_path: Path) -> None:
    ini = _ini(c.pgbouncer_ini(pool_mode="transaction", databases={"postgres": "postgres"},
                               stats_users=[STATS_USER], pool_size=7))
    assert ini["databases"]["postgres"] == "host=db port=5432 dbname=postgres"
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction" and bouncer["listen_port"] == str(c.PGBOUNCER_PORT)
    assert bouncer["listen_addr"] == "0.0.0.0"  # published through Docker's port mapping
    assert bouncer["client_tls_sslmode"] == "require"
    assert bouncer["client_tls_cert_file"] == "/etc/pgbouncer/server.pem"
    assert bouncer["client_tls_key_file"] == "/etc/pgbouncer/server.key"
    assert bouncer["auth_file"] == "/etc/pgbouncer/userlist.txt" and bouncer["auth_type"] == "scram-sha-256"
    assert bouncer["default_pool_size"] == bouncer["max_db_connections"] == "7"
    assert bouncer["stats_users"] == STATS_USER
    with pytest.raises(RehearsalError, match="pool_mode"):
        c.pgbouncer_ini(pool_mode="statement", databases={"postgres": "postgres"})


def test_pgbouncer_ini_matches_the_embedded_poolers_settings(tmp_path: Path) -> None:
    """Same pooling/TLS/auth behaviour as the embedded PgBouncer; only addresses and paths differ."""
    from pytest_cutover.rehearsal.pgbouncer import PgBouncer

    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "c.key").write_text("key")
    embedded = PgBouncer("session", workdir=tmp_path / "pgb", socket_dir=tmp_path, pg_port=5432,
                         users={"app_user": "x"}, certfile=tmp_path / "c.pem", keyfile=tmp_path / "c.key",
                         ca_file=tmp_path / "c.pem", pool_mode="session", run_as=None, pool_size=10, port=1,
                         stats_users={STATS_USER: "y"})
    embedded._write_files()
    theirs = _ini(embedded.ini_path.read_text())["pgbouncer"]
    ours = _ini(c.pgbouncer_ini(pool_mode="session", databases={"postgres": "postgres"},
                                stats_users=[STATS_USER]))["pgbouncer"]
    differ = {"listen_addr", "listen_port", "auth_file", "client_tls_cert_file", "client_tls_key_file"}
    assert set(ours) <= set(theirs)
    assert {k: ours[k] for k in ours if k not in differ} == {k: theirs[k] for k in ours if k not in differ}


def test_pgbouncer_userlist_quotes_passwords() -> None:
    text = c.pgbouncer_userlist({"b": 'pa"ss', "a": "x"})
    assert text == '"a" "x"\n"b" "pa""ss"\n'


# ------------------------------------------------------------------------------------------------ storage
def test_storage_env_for_supabase_storage_api() -> None:
    secret = "s" * 40
    service = mint_jwt(secret, role="service_role")
    env = c.storage_env(dsn="postgres://supabase_storage_admin:pw@db:5432/postgres", jwt_secret=secret,
                        service_key=service, anon_key=mint_jwt(secret, role="anon"))
    assert env["DATABASE_URL"].startswith("postgres://supabase_storage_admin:")
    assert "@db:5432/postgres" in env["DATABASE_URL"]
    assert env["AUTH_JWT_SECRET"] == env["PGRST_JWT_SECRET"] == secret and env["AUTH_JWT_ALGORITHM"] == "HS256"
    assert env["STORAGE_BACKEND"] == "file"
    assert env["STORAGE_FILE_BACKEND_PATH"] == env["FILE_STORAGE_BACKEND_PATH"] == c.STORAGE_FILE_PATH
    assert env["TENANT_ID"] and env["REGION"] and env["GLOBAL_S3_BUCKET"]
    assert env["DB_INSTALL_ROLES"] == "false"  # 01_roles.sql made them, as on Supabase
    assert env["SERVER_PORT"] == str(c.STORAGE_PORT)
    for key in ("SERVICE_KEY", "ANON_KEY"):
        claims = jwt.decode(env[key], secret, algorithms=["HS256"])
        assert claims["role"] == ("service_role" if key == "SERVICE_KEY" else "anon")
    assert all(isinstance(v, str) for v in env.values())


# ------------------------------------------------------------------------------------------------ addresses
def test_adapters_build_redacted_dsns(tmp_path: Path) -> None:
    passwords = {role: Secret(f"pw-{role}-{'z' * 12}") for role in LOGIN_ROLES}
    db = c.ContainerDatabase("127.0.0.1", 55432, passwords)
    assert db.old_dsn.get() == f"postgresql://old_app:pw-old_app-{'z' * 12}@127.0.0.1:55432/old_app"
    assert db.target_dsn.get().startswith("postgresql://postgres:") and db.admin_dsn.get().startswith(
        "postgresql://supabase_admin:")
    assert "pw-" not in str(db.app_role_dsn)
    env = db.psql_env("app_user", "postgres")
    assert env["PGHOST"] == "127.0.0.1" and env["PGPORT"] == "55432" and env["PGPASSWORD"].startswith("pw-app_user")
    with pytest.raises(RehearsalError, match="no password for role nobody"):
        db.dsn("nobody")
    pooler = c.ContainerPooler("transaction", host="127.0.0.1", port=56432, users={"app_user": "p@ss/word"},
                               databases={"postgres": "postgres"}, ca_file=tmp_path / "ca.pem",
                               stats_users={STATS_USER: "st"})
    assert pooler.dsn("app_user", scheme="postgresql+asyncpg").get() == \
        "postgresql+asyncpg://app_user:p%40ss%2Fword@127.0.0.1:56432/postgres"
    assert pooler.admin_dsn(STATS_USER).get().endswith(f"/pgbouncer?sslmode=verify-full&sslrootcert={tmp_path}/ca.pem")
    assert pooler.process is None
    with pytest.raises(RehearsalError, match="not in its auth file"):
        pooler.dsn("postgres")
    assert c._normal_host("localhost") == "127.0.0.1" and c._normal_host("10.1.2.3") == "10.1.2.3"


def _wired_stack(tmp_path: Path) -> c.ContainerStack:
    """A ContainerStack given endpoints by hand, as start() would after the containers answered."""
    stack = c.ContainerStack(tmp_path / "stack", run_id="wiring-1", monitor_window_s=8.0)
    stack.workdir = tmp_path / "stack"
    stack.workdir.mkdir()
    stack._make_secrets()
    stack.ca = tls.make_ca(stack._dir("tls"))
    passwords = {role: Secret(f"pw-{role}-{'q' * 16}") for role in LOGIN_ROLES}
    stack.pg = c.ContainerDatabase("127.0.0.1", 55432, passwords)
    target_users = {r: passwords[r].get() for r in ("app_user", "postgres", "supabase_admin")}
    stats = {STATS_USER: "stats-" + "w" * 16}
    for port, (name, users, dbs) in zip((56001, 56002, 56003), [
            ("transaction", target_users, {"postgres": "postgres"}),
            ("session", target_users, {"postgres": "postgres"}),
            ("old", {"old_app": passwords["old_app"].get()}, {"old_app": "old_app"})], strict=True):
        stack.poolers[name] = c.ContainerPooler(name, host="127.0.0.1", port=port, users=users, databases=dbs,
                                                ca_file=stack.ca.cert_path, stats_users=stats)  # type: ignore[assignment]
    stack.qdrant_url = "http://127.0.0.1:56333"
    stack._storage_port = 55000
    stack._storage_url = "http://127.0.0.1:55000"
    stack._api_port = 58443
    stack._secrets["SUPABASE_SERVICE_KEY"] = Secret(mint_jwt(stack._secrets["SUPABASE_JWT_SECRET"].get(),
                                                             role="service_role"))
    stack.app_dir = stack.workdir / "backend"
    stack.env_file = stack.app_dir / ".env"
    stack._write_urls()
    return stack


def test_cutover_toml_for_given_endpoints(tmp_path: Path) -> None:
    stack = _wired_stack(tmp_path)
    path = stack.write_config()
    text = path.read_text()
    assert "(ContainerStack)" in text and "qdrant_path" not in text
    assert "pw-" not in text and "stats-" not in text  # secrets stay in stack.env
    cfg = load_config(path, env=stack.environ())
    assert cfg is not None
    assert cfg.source.qdrant_url == "http://127.0.0.1:56333" and cfg.source.qdrant_path is None
    assert cfg.source.collection == "dac_memory"
    assert cfg.source.database_url.get().endswith("@127.0.0.1:55432/old_app")
    assert cfg.target.database_url.get().startswith("postgresql://postgres:")
    assert cfg.target.app_database_url.get().startswith("postgresql+asyncpg://app_user:")
    assert cfg.target.app_database_url.get().endswith("@127.0.0.1:56001/postgres")  # the transaction pooler
    assert cfg.target.session_pooler_url.get().endswith("@127.0.0.1:56002/postgres")
    assert cfg.target.storage_url == "http://127.0.0.1:55000"
    assert cfg.app.api_base == "https://127.0.0.1:58443"
    assert stack.urls is not None and stack.urls.storage_url == "http://127.0.0.1:55000"
    assert stack.urls.qdrant_path == ""
    # A fault moving the app to the session pooler rewrites the toml the same way.
    stack.set_app_database(pooler="session")
    cfg = load_config(path, env=stack.environ())
    assert cfg is not None and cfg.target.app_database_url.get().endswith("@127.0.0.1:56002/postgres")
    assert cfg.source.qdrant_url == "http://127.0.0.1:56333"
    env_file = stack.write_stack_env(tmp_path / "run" / "stack.env")
    assert (env_file.stat().st_mode & 0o777) == 0o600
    assert "POOLER_URL='postgresql://app_user:" in env_file.read_text()  # shell-quoted


def test_app_env_points_at_the_containers(tmp_path: Path) -> None:
    env = _wired_stack(tmp_path)._app_env()
    assert "QDRANT_PATH" not in env and env["QDRANT_URL"] == "http://127.0.0.1:56333"
    assert env["STORAGE_URL"] == "http://127.0.0.1:55000" and "STORAGE_SSL_CA" not in env
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://old_app:")
    assert env["DATABASE_URL"].endswith("@127.0.0.1:56003/old_app") and env["DATABASE_SSL_CA"]


def test_config_is_validated_by_the_model_before_it_is_written(tmp_path: Path) -> None:
    """The stack renders cutover.toml from a mapping; one the config model refuses is never written."""
    stack = _wired_stack(tmp_path)
    path = stack.write_config()
    good = path.read_text()
    assert tomllib.loads(good)["source"] == {"database_url": "${OLD_DATABASE_URL}",
                                              "qdrant_url": "http://127.0.0.1:56333", "collection": "dac_memory"}
    stack.extra_config = {"notify": {"pager": {"kind": "carrier-pigeon", "url": "https://x.example"}}}
    with pytest.raises(ConfigError, match="notify"):
        stack.write_config()
    assert path.read_text() == good


def test_docker_unavailable_is_detected_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    started = time.monotonic()
    reason = c.docker_unavailable_reason()
    assert reason and time.monotonic() - started < 3.5
    with pytest.raises(RehearsalError) as caught:
        c.require_docker()
    assert caught.value.message.startswith("Docker not available: ")
    assert "--stack embedded" in (caught.value.hint or "")


def test_docker_refused_port_is_detected_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_cutover.rehearsal.procs import free_port

    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert c.docker_unavailable_reason(timeout=1)
    assert time.monotonic() - started < 3.5


def test_start_without_docker_fails_before_building_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DOCKER)
    stack = c.ContainerStack(tmp_path / "never")
    with pytest.raises(RehearsalError, match=r"^Docker not available: "):
        stack.start()
    assert not (tmp_path / "never").exists() and not stack.running


def test_faults_that_need_the_local_folder_are_refused() -> None:
    assert set(c.UNSUPPORTED_FAULTS) <= {f.name for f in __import__(
        "pytest_cutover.rehearsal.faults", fromlist=["list_faults"]).list_faults()}
    with pytest.raises(RehearsalError, match="nan-vector is not supported by the containers stack"):
        c.ContainerStack(None, faults=["rls-disabled", "nan-vector"])
    stack = c.ContainerStack(None, faults=["rls-disabled", "bucket-public", "missing-point"])
    assert stack.faults == ["rls-disabled", "bucket-public", "missing-point"]
    with pytest.raises(RehearsalError, match="blob-corrupt"):
        stack.plant("blob-corrupt")


# ------------------------------------------------------------------------------------------------ registry
def test_registry_names_and_lazy_classes() -> None:
    assert stack_names() == ["embedded", "containers"] and set(STACKS) == {"embedded", "containers"}
    assert get_stack_class("embedded") is EmbeddedStack
    assert get_stack_class("containers") is c.ContainerStack
    # Two implementations of one declared protocol; neither inherits (or overrides) the other.
    assert not issubclass(c.ContainerStack, EmbeddedStack) and not issubclass(EmbeddedStack, c.ContainerStack)
    with pytest.raises(ConfigError) as caught:
        get_stack_class("kubernetes")
    assert "kubernetes" in caught.value.message and "embedded, containers" in (caught.value.hint or "")


def test_pgbouncer_files_travel_as_a_tar_the_image_user_can_read() -> None:
    """What testcontainers' put_archive receives for one PgBouncer container (no daemon needed to build it)."""
    import io
    import tarfile

    from testcontainers.core.transferable import build_transfer_tar

    files = c.pgbouncer_files(pool_mode="session", databases={"old_app": "old_app"}, users={"old_app": "pw1"},
                              stats_users={STATS_USER: "pw2"}, cert=b"CERT", key=b"KEY")
    assert set(files) == {f"/etc/pgbouncer/{n}" for n in ("pgbouncer.ini", "userlist.txt", "server.pem", "server.key")}
    assert files["/etc/pgbouncer/userlist.txt"] == f'"old_app" "pw1"\n"{STATS_USER}" "pw2"\n'.encode()
    assert b"dbname=old_app" in files["/etc/pgbouncer/pgbouncer.ini"]
    for dest, data in files.items():
        with tarfile.open(fileobj=io.BytesIO(build_transfer_tar(data, dest, 0o644))) as tar:
            (member,) = tar.getmembers()
            assert "/" + member.name.lstrip("/") == dest and member.mode == 0o644
            extracted = tar.extractfile(member)
            assert extracted is not None and extracted.read() == data


def test_failed_network_creation_leaves_nothing_to_remove() -> None:
    stack = c.ContainerStack(None)
    stack._remove_network()  # never created: no error, so stop() cannot mask the start-up error
    assert stack._network is None


def test_part_wait_polls_through_refusals_and_names_the_part_with_the_last_error() -> None:
    from types import SimpleNamespace

    answers: list[object] = [ConnectionRefusedError("refused"), False, True]

    def probe() -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return bool(answer)

    stack = SimpleNamespace(part_timeout=5.0)
    c.ContainerStack._wait(stack, "pooler", probe)  # type: ignore[arg-type]
    assert answers == []

    def refused() -> bool:
        raise ConnectionRefusedError("still refused")

    stack.part_timeout = 0.6
    started = time.monotonic()
    with pytest.raises(RehearsalError, match=r"pooler did not answer within 1s \(last: ConnectionRefusedError: "
                                             r"still refused\)"):
        c.ContainerStack._wait(stack, "pooler", refused)  # type: ignore[arg-type]
    assert 0.5 < time.monotonic() - started < 3
