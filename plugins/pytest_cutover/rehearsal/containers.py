"""The rehearsal stack with containers (testcontainers): the stack protocol (rehearsal/protocol.py), real images.

Why a second stack: on a machine with Docker the rehearsal can use servers in containers instead of local
processes.  Two image sets (:class:`ImageSet`; the README lists every difference):

* **official** (default): ``pgvector/pgvector`` (PostgreSQL 18 + pgvector) holding the old and the Supabase-like
  target database (the same ``fixtures/sql`` files), a ``qdrant/qdrant`` SERVER holding the source collection
  (``source.qdrant_url``), three ``edoburu/pgbouncer`` containers terminating client TLS with the rehearsal CA
  (transaction = the 6543 analogue, session = 5432, and a TLS front for the old database), and Supabase's
  ``supabase/storage-api`` (file backend, plain HTTP: on Supabase, Kong terminates TLS; it creates the
  ``storage`` schema with its own migrations, then the bucket and RLS policies of ``03_storage.sql`` are applied);
* **local** (``--images local``, or automatically with a notice when an official image cannot be pulled): the
  images ``images.py`` builds on this machine: the wheel's PostgreSQL + pgvector, Debian's PgBouncer, the
  project's storage service (HTTPS, schema from ``03_storage.sql``); no Qdrant server, so the source is a
  Qdrant local-mode folder as in the embedded stack.

The reference app: with the local set, a container of the project's app image (:meth:`ContainerStack.app_launch`:
host network, the stack folder bind-mounted, so the switch's ``.env`` edit is what it reads at restart); with
the official set (no registry image of the project's app), a local process from its git checkout (services.py,
ctl.py), as in the embedded stack.  It reads Qdrant from ``QDRANT_PATH`` only, so with a Qdrant server its
search has no backend before the switch (it gets ``QDRANT_URL`` for when the template learns it) and searches
pgvector after it, as in the embedded stack.  All the other containers share one Docker network (PostgreSQL is
``db`` there); the host reaches them on ports published on 127.0.0.1 only.  Everything that does not need a
daemon (environments, PgBouncer ini, storage env) is built by pure functions below and unit-tested without
Docker.  Faults this stack refuses: :func:`unsupported_faults`.

Run it (needs a Docker engine; ``cutover rehearse --build-images`` builds the local set)::

    cutover rehearse --stack containers                    # every stage
    cutover rehearse --stack containers --images local --until precutover
    python -m pytest tests/unit/rehearsal_containers -m docker
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_cutover.redact import Secret, redact, register_secret
from pytest_cutover.rehearsal import tls
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.stack import COLLECTION, STATS_USER, StackBase, _Part
from pytest_cutover.rehearsal.sweep import PART_LABEL
from pytest_cutover.util.jwt import mint_jwt
from pytest_cutover.util.wait import wait_until

__all__ = [
    "DB_ALIAS", "IMAGES", "PGBOUNCER_IMAGE", "PGVECTOR_IMAGE", "QDRANT_IMAGE", "STORAGE_IMAGE", "UNSUPPORTED_FAULTS",
    "ContainerDatabase", "ContainerPooler", "ContainerStack", "docker_unavailable_reason", "pgbouncer_files",
    "pgbouncer_ini", "pgbouncer_userlist", "postgres_command", "postgres_env", "provision_database", "require_docker",
    "storage_env", "storage_policies_sql", "target_schema_steps",
]

#: Images, pinned (a moving tag would change the rehearsal under you).  PostgreSQL 18 as the embedded wheel;
#: Qdrant within one minor version of qdrant-client 1.20 (its compatibility check warns otherwise).
PGVECTOR_IMAGE = "pgvector/pgvector:0.8.1-pg18"
QDRANT_IMAGE = "qdrant/qdrant:v1.19.0"
PGBOUNCER_IMAGE = "edoburu/pgbouncer:v1.25.1-p0"
STORAGE_IMAGE = "supabase/storage-api:v1.70.6"
IMAGES: dict[str, str] = {"postgres": PGVECTOR_IMAGE, "qdrant": QDRANT_IMAGE, "pgbouncer": PGBOUNCER_IMAGE,
                          "storage": STORAGE_IMAGE}
IMAGE_SET_NAMES = ("official", "local")
PULL_TIMEOUT = 300.0


@dataclasses.dataclass(frozen=True)
class ImageSet:
    """Which images the stack runs and how they differ (README "Local and official images" lists it all).

    ``qdrant`` ``None``: no Qdrant server image; the source is a Qdrant local-mode folder, as in the embedded
    stack.  ``storage`` ``"supabase"``: Supabase's storage-api (plain HTTP, its own migrations create schema
    ``storage``); ``"project"``: the project's storage service (HTTPS with the rehearsal CA, schema from
    ``03_storage.sql``, as the embedded stack).  ``postgres_ready_logs``: how often the image logs "ready"
    before it serves (the official entrypoint starts a temporary server to initialise).
    """

    name: str
    images: Mapping[str, str]
    storage: str
    postgres_ready_logs: int

    @property
    def qdrant(self) -> str | None:
        return self.images.get("qdrant")

    @property
    def app(self) -> str | None:
        """The reference app's image (the project's own: only the local set builds one), else ``None``: the app
        runs from its checkout on the host."""
        return self.images.get("app")


def official_images() -> ImageSet:
    """The images of the issue, from Docker Hub (pinned above)."""
    return ImageSet("official", dict(IMAGES), storage="supabase", postgres_ready_logs=2)


def local_images() -> ImageSet:
    """The set ``images.build_local_images`` builds on this machine (no Qdrant server)."""
    from pytest_cutover.rehearsal.images import LOCAL_IMAGES

    return ImageSet("local", {k: v for k, v in LOCAL_IMAGES.items() if k != "base"}, storage="project",
                    postgres_ready_logs=1)


def resolve_images(choice: str, say: Callable[[str], None]) -> ImageSet:
    """The image set to run: ``local``, or ``official`` falling back to ``local`` (with a notice) when an
    official image is neither present nor pullable.  Fails naming the command that builds the local set."""
    import docker
    import docker.errors

    if choice not in IMAGE_SET_NAMES:
        raise RehearsalError(f"containers: unknown image set {choice!r}", hint="use official or local")
    client = docker.from_env(version="auto", timeout=int(PULL_TIMEOUT))
    try:
        if choice == "official":
            wanted = official_images()
            for image in wanted.images.values():
                try:
                    client.images.get(image)
                    continue
                except docker.errors.ImageNotFound:
                    pass
                try:
                    client.images.pull(image)
                except Exception as exc:  # no registry, DNS, auth...: every failure means "use the local set"
                    say(f"notice: official image {image} is not here and could not be pulled "
                        f"({redact(str(exc)).splitlines()[0][:160]}); using the local image set instead "
                        "(README: Local and official images)")
                    break
            else:
                return wanted
        chosen = local_images()
        missing = []
        for image in chosen.images.values():
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                missing.append(image)
        if missing:
            raise RehearsalError(f"containers: the local image set is not built ({', '.join(missing)} missing)",
                                 hint="build it with `cutover rehearse --build-images` (bash .ci/setup does)")
        return chosen
    finally:
        client.close()

DB_ALIAS = "db"                 # PostgreSQL's name on the stack's Docker network
PG_PORT = 5432
PGBOUNCER_PORT = 6432           # inside the PgBouncer containers (mapped to a free host port)
QDRANT_PORT = 6333              # REST
STORAGE_PORT = 5000
PGBOUNCER_DIR = "/etc/pgbouncer"
STORAGE_FILE_PATH = "/var/lib/storage"
STORAGE_TENANT = "stub"         # as Supabase's self-hosting compose file sets TENANT_ID/REGION/GLOBAL_S3_BUCKET
DOCKER_PING_TIMEOUT = 3.0
LOOPBACK = "127.0.0.1"          # the only host address a container port is published on
#: The storage service's port inside the local set's storage container (the project's service).
PROJECT_STORAGE_DIR = "/etc/storage"

#: Faults that need the embedded stack's local Qdrant folder or local storage files.  With the local image set
#: (no Qdrant server: the source is a local-mode folder) only the storage one stays unsupported.
UNSUPPORTED_FAULTS: dict[str, str] = {
    "nan-vector": "writes a NaN point straight into the qdrant local-mode folder; a qdrant server rejects it",
    "wrong-dim-vector": "writes a 768-d point straight into the qdrant local-mode folder; a server rejects it",
    "payload-org-mismatch": "edits points in the qdrant local-mode folder, not a server",
    "qdrant-changed-after-presync": "changes points in the qdrant local-mode folder after the pre-sync, not a server",
    "blob-corrupt": "corrupts a file of the local storage service; supabase/storage-api keeps its files in a container",
}
_QDRANT_FOLDER_FAULTS = ("nan-vector", "wrong-dim-vector", "payload-org-mismatch", "qdrant-changed-after-presync")


def unsupported_faults(images: str) -> dict[str, str]:
    """The faults the containers stack refuses with image set ``images`` (``official`` or ``local``)."""
    if images == "local":
        return {k: v for k, v in UNSUPPORTED_FAULTS.items() if k not in _QDRANT_FOLDER_FAULTS}
    return dict(UNSUPPORTED_FAULTS)


# ------------------------------------------------------------------------------------------------ Docker
def docker_unavailable_reason(timeout: float = DOCKER_PING_TIMEOUT) -> str | None:
    """``None`` when a Docker engine answers a ping within ``timeout`` seconds, else why not (redacted)."""
    try:
        import docker
    except ImportError as exc:
        return f"the docker python package is not installed ({exc})"
    client = None
    try:
        client = docker.from_env(timeout=max(1, int(timeout)))
        if not client.ping():
            return "the engine did not answer the ping"
    except Exception as exc:  # docker raises DockerException, requests errors, OSError... all mean "not usable"
        return redact(f"{type(exc).__name__}: {exc}")
    finally:
        if client is not None:
            client.close()
    return None


def require_docker(timeout: float = DOCKER_PING_TIMEOUT) -> None:
    """Raise ``RehearsalError("Docker not available: <reason>")`` unless a Docker engine answers."""
    reason = docker_unavailable_reason(timeout)
    if reason is not None:
        raise RehearsalError(f"Docker not available: {reason}",
                             hint="start the Docker daemon (or set DOCKER_HOST), or use --stack embedded")


def _normal_host(host: str) -> str:
    """``localhost`` -> ``127.0.0.1``: Docker publishes on IPv4; the certificates name both."""
    return "127.0.0.1" if host in ("localhost", "") else host


# ------------------------------------------------------------------------------------------------ pure wiring
def postgres_env(admin_password: str) -> dict[str, str]:
    """The pgvector image's environment: bootstrap superuser ``supabase_admin`` (so ``postgres`` is not one)."""
    from pytest_cutover.rehearsal.postgres import SUPERUSER, TARGET_DATABASE

    return {"POSTGRES_USER": SUPERUSER, "POSTGRES_PASSWORD": admin_password, "POSTGRES_DB": TARGET_DATABASE,
            "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --no-locale",
            "POSTGRES_HOST_AUTH_METHOD": "scram-sha-256"}


def postgres_command() -> list[str]:
    """Server settings as on the embedded cluster (the image's entrypoint passes ``postgres -c ...`` through)."""
    settings = {"password_encryption": "scram-sha-256", "max_connections": "100", "shared_buffers": "128MB",
                "synchronous_commit": "off", "max_wal_size": "1GB"}
    argv = ["postgres"]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    return argv


def target_schema_steps(*, storage_tables: bool = False) -> list[tuple[str, str, str | None]]:
    """``(sql file, database, role)`` in the order postgres.py provisions, minus ``03_storage.sql`` unless
    ``storage_tables`` (the project's storage service, as in the embedded stack).

    Supabase's storage server creates schema ``storage`` with its own migrations; only its bucket and policies
    (:func:`storage_policies_sql`) are applied after it started.
    """
    from pytest_cutover.rehearsal.postgres import _TARGET_SQL, _TARGET_SQL_AFTER_TABLES, OLD_DATABASE, TARGET_DATABASE

    steps: list[tuple[str, str, str | None]] = [(rel, TARGET_DATABASE, None) for rel in _TARGET_SQL
                                                if storage_tables or not rel.endswith("03_storage.sql")]
    steps.append(("app_tables.sql", TARGET_DATABASE, "postgres"))
    steps += [(rel, TARGET_DATABASE, None) for rel in _TARGET_SQL_AFTER_TABLES]
    steps.append(("app_tables.sql", OLD_DATABASE, "old_app"))
    return steps


#: Where 03_storage.sql stops creating tables and starts granting, adding the bucket and the policies.
_STORAGE_POLICIES_MARKER = "-- As on Supabase: the API roles get table privileges"
#: Before the storage server runs its migrations (as ``supabase_storage_admin``), as Supabase's init does.
#: The default privileges mirror the roles block of the server's 0002-storage-schema migration (which
#: DB_INSTALL_ROLES=false skips, since 01_roles.sql made the roles): the API roles get privileges, RLS decides.
STORAGE_SCHEMA_SQL = "".join(
    ["create schema if not exists storage authorization supabase_storage_admin;\n",
     "grant usage on schema storage to postgres, anon, authenticated, service_role;\n"]
    + [f"alter default privileges for role supabase_storage_admin in schema storage grant all on {kind} "
       "to postgres, anon, authenticated, service_role;\n" for kind in ("tables", "functions", "sequences")])


def storage_policies_sql() -> str:
    """Grants, the private ``attachments`` bucket and the tenant RLS policies of ``target/03_storage.sql``."""
    from pytest_cutover.rehearsal.postgres import SQL_DIR

    path = SQL_DIR / "target" / "03_storage.sql"
    text = path.read_text(encoding="utf-8")
    at = text.find(_STORAGE_POLICIES_MARKER)
    if at < 0:
        raise RehearsalError(f"containers: cannot find the policies section in {path}",
                             hint=f"keep the line {_STORAGE_POLICIES_MARKER!r} before the grants")
    return "set role supabase_storage_admin;\n" + text[at:]


def pgbouncer_userlist(users: Mapping[str, str]) -> str:
    """PgBouncer's auth file (the embedded poolers' renderer)."""
    from pytest_cutover.rehearsal.pgbouncer import render_userlist

    return render_userlist(users)


def pgbouncer_ini(*, pool_mode: str, databases: Mapping[str, str], stats_users: Sequence[str] = (),
                  db_host: str = DB_ALIAS, db_port: int = PG_PORT, listen_port: int = PGBOUNCER_PORT,
                  pool_size: int = 10, conf_dir: str = PGBOUNCER_DIR) -> str:
    """The ini of one PgBouncer container (the embedded poolers' renderer): the target over the Docker network."""
    from pytest_cutover.rehearsal.pgbouncer import render_ini

    if pool_mode not in ("transaction", "session"):
        raise RehearsalError(f"containers: unknown pool_mode {pool_mode!r}", hint="use 'transaction' or 'session'")
    return render_ini(databases=databases, db_host=db_host, db_port=db_port, listen_addr="0.0.0.0",
                      listen_port=listen_port, auth_file=f"{conf_dir}/userlist.txt",
                      cert_file=f"{conf_dir}/server.pem", key_file=f"{conf_dir}/server.key", pool_mode=pool_mode,
                      pool_size=pool_size, stats_users=stats_users)


def pgbouncer_files(*, pool_mode: str, databases: Mapping[str, str], users: Mapping[str, str],
                    stats_users: Mapping[str, str], cert: bytes, key: bytes,
                    conf_dir: str = PGBOUNCER_DIR) -> dict[str, bytes]:
    """Container path -> content of what one PgBouncer container gets copied in before it starts.

    Copied (not bind-mounted) so the key and passwords stay 0600 on the host; inside the throwaway container
    they are 0644 so the image's ``pgbouncer`` user (uid 70) can read them.
    """
    return {
        f"{conf_dir}/pgbouncer.ini": pgbouncer_ini(pool_mode=pool_mode, databases=databases,
                                                   stats_users=list(stats_users), conf_dir=conf_dir).encode(),
        f"{conf_dir}/userlist.txt": pgbouncer_userlist({**users, **stats_users}).encode(),
        f"{conf_dir}/server.pem": cert,
        f"{conf_dir}/server.key": key,
    }


def storage_env(*, dsn: str, jwt_secret: str, service_key: str, anon_key: str,
                file_size_limit: int = 52_428_800) -> dict[str, str]:
    """``supabase/storage-api``'s environment (names from github.com/supabase/storage ``.env.sample``/config.ts).

    Single tenant, file backend, the JWT secret under both names the server reads (``AUTH_JWT_SECRET`` and
    Supabase's self-hosting ``PGRST_JWT_SECRET``), roles already installed by ``01_roles.sql``.
    """
    return {
        "SERVER_PORT": str(STORAGE_PORT), "SERVER_HOST": "0.0.0.0",
        "AUTH_JWT_SECRET": jwt_secret, "PGRST_JWT_SECRET": jwt_secret, "AUTH_JWT_ALGORITHM": "HS256",
        "ANON_KEY": anon_key, "SERVICE_KEY": service_key,
        "DATABASE_URL": dsn, "DB_INSTALL_ROLES": "false",
        "STORAGE_BACKEND": "file", "STORAGE_FILE_BACKEND_PATH": STORAGE_FILE_PATH,
        "FILE_STORAGE_BACKEND_PATH": STORAGE_FILE_PATH,
        "TENANT_ID": STORAGE_TENANT, "REGION": STORAGE_TENANT, "GLOBAL_S3_BUCKET": STORAGE_TENANT,
        "FILE_SIZE_LIMIT": str(file_size_limit), "UPLOAD_FILE_SIZE_LIMIT": str(file_size_limit),
        "UPLOAD_FILE_SIZE_LIMIT_STANDARD": str(file_size_limit),
        "IMAGE_TRANSFORMATION_ENABLED": "false", "PG_QUEUE_ENABLE": "false", "RATE_LIMITER_ENABLED": "false",
        "LOG_LEVEL": "info",
    }


def provision_database(db: ContainerDatabase, *, storage_tables: bool = False) -> None:
    """Make a blank PostgreSQL + pgvector (superuser ``supabase_admin``) the old and the Supabase-like target.

    The steps of ``EmbeddedPostgres._provision`` over TCP: roles, their SCRAM verifiers (computed here, so
    no plaintext reaches the server), schema ``storage`` for the storage server, the app schema, RLS, and
    the old database.  ``db`` must know a password for every role of ``LOGIN_ROLES``.
    """
    from pytest_cutover.rehearsal.postgres import LOGIN_ROLES, OLD_DATABASE, SUPERUSER, scram_sha256_verifier

    steps = target_schema_steps(storage_tables=storage_tables)
    db.run_sql_file(steps[0][0])  # the roles
    db.psql("".join(f"alter role {role} password '{scram_sha256_verifier(db.password(role).get())}';\n"
                    for role in LOGIN_ROLES if role != SUPERUSER))
    if not storage_tables:
        db.psql(STORAGE_SCHEMA_SQL)
    for rel, database, role in steps[1:]:
        if database == OLD_DATABASE and rel == "app_tables.sql":
            db.psql(f"create database {OLD_DATABASE} owner old_app", single_transaction=False)
        db.run_sql_file(rel, database=database, role=role)


def _dsn(user: str, password: str, host: str, port: int, database: str, scheme: str = "postgresql") -> Secret:
    return Secret(f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}")


# ------------------------------------------------------------------------------------------------ adapters
class ContainerDatabase:
    """The PostgreSQL container seen through the part of ``EmbeddedPostgres``'s surface the stack uses."""

    pid = None
    socket_dir = None
    run_as_user = None

    def __init__(self, host: str, port: int, passwords: Mapping[str, Secret]) -> None:
        self.host = host
        self.port = port
        self._passwords = dict(passwords)

    def password(self, role: str) -> Secret:
        try:
            return self._passwords[role]
        except KeyError:
            raise RehearsalError(f"containers: no password for role {role}",
                                 hint="known: " + ", ".join(sorted(self._passwords))) from None

    def dsn(self, user: str | None = None, database: str | None = None) -> Secret:
        from pytest_cutover.rehearsal.postgres import SUPERUSER, TARGET_DATABASE

        user = user or SUPERUSER
        return _dsn(user, self.password(user).get(), self.host, self.port, database or TARGET_DATABASE)

    @property
    def admin_dsn(self) -> Secret:
        return self.dsn()

    @property
    def target_dsn(self) -> Secret:
        return self.dsn("postgres")

    @property
    def app_role_dsn(self) -> Secret:
        return self.dsn("app_user")

    @property
    def old_dsn(self) -> Secret:
        from pytest_cutover.rehearsal.postgres import OLD_DATABASE

        return self.dsn("old_app", OLD_DATABASE)

    def psql_env(self, user: str, database: str) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": self.host, "PGPORT": str(self.port),
                "PGUSER": user, "PGPASSWORD": self.password(user).get(), "PGDATABASE": database,
                "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "pytest-cutover-setup", "PGSSLMODE": "disable"}

    def psql(self, sql: str, *, database: str | None = None, user: str | None = None, timeout: float = 60.0,
             single_transaction: bool = True) -> str:
        """Run ``sql`` with the wheel's ``psql`` over TCP (ON_ERROR_STOP), as on the embedded cluster."""
        from pytest_cutover.rehearsal.postgres import SUPERUSER, TARGET_DATABASE, pg_bin

        user, database = user or SUPERUSER, database or TARGET_DATABASE
        argv = [str(pg_bin("psql")), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        if single_transaction:
            argv.append("--single-transaction")
        try:
            done = subprocess.run(argv, input=sql.encode("utf-8"), env=self.psql_env(user, database),
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"containers: psql on {database} as {user} did not finish within {timeout:.0f}s",
                                 hint="check the postgres container's log") from None
        if done.returncode != 0:
            err = redact(done.stderr.decode("utf-8", "replace").strip())
            raise RehearsalError(f"containers: psql on {database} as {user} failed: {err}",
                                 hint="the statement is in fixtures/sql or containers.py")
        return done.stdout.decode("utf-8", "replace")

    def run_sql_file(self, relpath: str, *, database: str | None = None, role: str | None = None) -> None:
        from pytest_cutover.rehearsal.postgres import SQL_DIR

        body = (SQL_DIR / relpath).read_text(encoding="utf-8")
        prefix, suffix = (f"set role {role};\n", "\nreset role;\n") if role else ("", "")
        try:
            self.psql(prefix + body + suffix, database=database)
        except RehearsalError as exc:
            raise RehearsalError(f"containers: schema file {relpath} failed on {database}: {exc.message}",
                                 hint=exc.hint) from None

    def stop(self) -> None:
        """The container is stopped by the stack (its own part)."""


class ContainerPooler:
    """A PgBouncer container seen through the part of ``PgBouncer``'s surface the stack uses."""

    process = None

    def __init__(self, name: str, *, host: str, port: int, users: Mapping[str, str], databases: Mapping[str, str],
                 ca_file: Path, stats_users: Mapping[str, str] | None = None, pool_mode: str = "transaction") -> None:
        self.name = name
        self.host = host
        self.port = port
        self.users = dict(users)
        self.stats_users = dict(stats_users or {})
        for password in (*self.users.values(), *self.stats_users.values()):
            register_secret(password)
        self.databases = dict(databases)
        self.ca_file = Path(ca_file)
        self.pool_mode = pool_mode

    def dsn(self, user: str, *, database: str | None = None, scheme: str = "postgresql") -> Secret:
        known = {**self.users, **self.stats_users}
        if user not in known:
            raise RehearsalError(f"pgbouncer {self.name}: user {user} is not in its auth file",
                                 hint="known users: " + ", ".join(sorted(known)))
        return _dsn(user, known[user], self.host, self.port, database or next(iter(self.databases)), scheme)

    def admin_dsn(self, user: str) -> Secret:
        base = self.dsn(user, database="pgbouncer").get()
        return Secret(f"{base}?sslmode=verify-full&sslrootcert={self.ca_file}")

    def stop(self) -> None:
        """The container is stopped by the stack (its own part)."""


# ------------------------------------------------------------------------------------------------ the stack
class ContainerStack(StackBase):
    """The rehearsal stack (:class:`~pytest_cutover.rehearsal.protocol.RehearsalStack`) with PostgreSQL,
    PgBouncer, Storage (and Qdrant, with the official images) in containers.  ``start()`` first checks that
    Docker answers (``RehearsalError("Docker not available: ...")`` otherwise) and builds nothing before that.
    """

    def __init__(self, workdir: Path | None = None, *, images: str = "official",
                 say: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        if images not in IMAGE_SET_NAMES:
            raise RehearsalError(f"containers: unknown image set {images!r}", hint="use official or local")
        self.image_choice = images
        self._unsupported = unsupported_faults(images)
        for name in self.faults:
            if name in self._unsupported:
                raise RehearsalError(f"fault {name} is not supported by the containers stack with the {images} "
                                     f"images: {self._unsupported[name]}", hint="plant it with --stack embedded")
        self.image_set: ImageSet | None = None
        if say is not None:
            self.say = say
        self.containers: dict[str, Any] = {}
        self.qdrant_url: str | None = None
        self._network: Any = None
        self._docker_host = "127.0.0.1"
        self._storage_url: str | None = None
        self.app_container_name: str | None = None
        #: On every container and network this stack creates (rehearsal/sweep.py): project, run, owner.
        self._labels: dict[str, str] = {}

    def start(self) -> None:
        if self._started:
            return
        require_docker()
        from testcontainers.core.docker_client import DockerClient

        self._docker_host = _normal_host(DockerClient().host())
        from pytest_cutover.rehearsal.sweep import owner_labels, sweep_stale

        sweep_stale(self.say)  # what a SIGKILLed rehearsal left; never a live owner's objects
        self._labels = owner_labels(self.run_id)
        self.image_set = resolve_images(self.image_choice, self.say)
        _reaper_only_if_present()
        if self.image_set.qdrant is None:
            self.say("notice: no Qdrant server image in the local set: the source is a Qdrant local-mode folder "
                     "(as in the embedded stack)")
        super().start()

    def plant(self, name: str) -> str:
        if name in self._unsupported:
            raise RehearsalError(f"fault {name} is not supported by the containers stack: {self._unsupported[name]}",
                                 hint="plant it with --stack embedded")
        return super().plant(name)

    @property
    def images(self) -> Mapping[str, str]:
        """Part -> image of the set in use (the official set's until ``start`` resolved it)."""
        return (self.image_set or official_images()).images

    def environment_figures(self) -> dict[str, str]:
        """What the report's environment block should say about this stack (``versions`` figures)."""
        if self.image_set is None:
            return {}
        out = {"stack": f"containers ({self.image_set.name} images: "
                        + ", ".join(f"{k}={v}" for k, v in self.image_set.images.items()) + ")"}
        if self.image_set.app is not None:
            out["app"] = (f"container {self.app_container_name or '?'} ({self.image_set.app}, host network, "
                          f"the .env read from the bind-mounted stack folder)")
        if self.image_set.qdrant is None:
            from importlib.metadata import version

            out["qdrant"] = (f"local mode (qdrant-client {version('qdrant-client')}): the {self.image_set.name} "
                             "image set has no Qdrant server image")
        return out

    def describe(self) -> str:
        lines = [super().describe(), f"qdrant        {self.qdrant_url or f'local mode {self.qdrant_path}'}"]
        lines += [f"container     {name}: {self.images.get(name.split('-')[0], '?')}" for name in self.containers]
        if self.app_container_name:
            lines.append(f"container     app: {self.images['app']} ({self.app_container_name}, host network)")
        return redact("\n".join(lines))

    # -- the parts (StackBase) ------------------------------------------------------------------
    def certificate_hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*tls.DEFAULT_HOSTS, self._docker_host)))

    def start_database(self) -> None:
        """Network, PostgreSQL (provisioned from fixtures/sql) and the Qdrant server: what seeding needs."""
        import secrets as _secrets

        from testcontainers.core.network import Network

        from pytest_cutover.rehearsal.postgres import LOGIN_ROLES, SUPERUSER

        self._network = Network(docker_network_kw={"labels": dict(self._labels)})
        self._parts.append(_Part("docker network", self._remove_network))
        self._network.create()
        passwords = {role: Secret(_secrets.token_urlsafe(24)) for role in LOGIN_ROLES}
        assert self.image_set is not None
        with self.timings.measure("postgres-container"):
            pg = self._container("postgres", self.images["postgres"], env=postgres_env(passwords[SUPERUSER].get()),
                                 ports=[PG_PORT], command=postgres_command(), aliases=[DB_ALIAS],
                                 log_ready=("database system is ready to accept connections",
                                            self.image_set.postgres_ready_logs))
        self.pg = ContainerDatabase(self._docker_host, int(pg.get_exposed_port(PG_PORT)), passwords)
        self._wait("postgres", lambda: self.pg.psql("select 1", single_transaction=False, timeout=5).strip() == "1",
                   container=pg)
        with self.timings.measure("schema"):
            provision_database(self.pg, storage_tables=self.image_set.storage == "project")
        if self.image_set.qdrant is None:
            return  # the source is the local-mode folder the seed writes
        with self.timings.measure("qdrant"):
            from testcontainers.community.qdrant import QdrantContainer
            from testcontainers.core.wait_strategies import HttpWaitStrategy

            qdrant = QdrantContainer(image=self.images["qdrant"], labels={**self._labels, PART_LABEL: "qdrant"})
            # /readyz rather than the class's log line: a server answering HTTP is what seeding needs.
            qdrant.waiting_for(HttpWaitStrategy(QDRANT_PORT, "/readyz").for_status_code(200)
                               .with_startup_timeout(int(self.part_timeout)))
            qdrant.ports = {}
            _publish_on_loopback(qdrant, QDRANT_PORT)
            self._register("qdrant", qdrant)
            qdrant.with_network(self._network)
            self._start_container("qdrant", qdrant)
            self.qdrant_url = f"http://{self._docker_host}:{qdrant.get_exposed_port(QDRANT_PORT)}"

    def seed_source(self) -> None:
        from pytest_cutover.rehearsal.seed import seed_all

        self.seed_summary = seed_all(old_dsn=self.pg.old_dsn, target_dsn=self.pg.target_dsn,
                                     qdrant_path=None if self.qdrant_url else self.qdrant_path,
                                     qdrant_url=self.qdrant_url, seed=self.seed, size=self.size,
                                     collection=COLLECTION)

    def start_poolers(self) -> None:
        import secrets as _secrets

        from pytest_cutover.rehearsal.postgres import OLD_DATABASE, TARGET_DATABASE

        pg = self.pg
        target_users = {role: pg.password(role).get() for role in ("app_user", "postgres", "supabase_admin")}
        specs = {
            "transaction": ("transaction", {TARGET_DATABASE: TARGET_DATABASE}, target_users),
            "session": ("session", {TARGET_DATABASE: TARGET_DATABASE}, target_users),
            "old": ("session", {OLD_DATABASE: OLD_DATABASE}, {"old_app": pg.password("old_app").get()}),
        }
        stats = {STATS_USER: _secrets.token_urlsafe(24)}
        cert = self.pooler_cert.cert_path.read_bytes()
        key = self.pooler_cert.key_path.read_bytes()
        for name, (mode, dbs, users) in specs.items():
            files = pgbouncer_files(pool_mode=mode, databases=dbs, users=users, stats_users=stats, cert=cert, key=key)
            container = self._container(f"pgbouncer-{name}", self.images["pgbouncer"], ports=[PGBOUNCER_PORT],
                                        files=files, log_ready=("process up", 1))
            pooler = ContainerPooler(name, host=self._docker_host, port=int(container.get_exposed_port(PGBOUNCER_PORT)),
                                     users=users, databases=dbs, ca_file=self.ca.cert_path, stats_users=stats,
                                     pool_mode=mode)
            self.poolers[name] = pooler  # type: ignore[assignment]
            probe_user = next(iter(users))
            self._wait(f"pgbouncer {name}", _tls_login_probe(pooler, probe_user), container=container)

    def start_storage(self) -> None:
        from testcontainers.core.wait_strategies import HttpWaitStrategy

        jwt_secret = self._secrets["SUPABASE_JWT_SECRET"].get()
        self._secrets["SUPABASE_SERVICE_KEY"] = Secret(mint_jwt(jwt_secret, role="service_role", ttl_s=7 * 24 * 3600))
        assert self.image_set is not None
        if self.image_set.storage == "project":
            self._start_project_storage(jwt_secret)
            return
        anon = mint_jwt(jwt_secret, role="anon", ttl_s=7 * 24 * 3600)
        register_secret(anon)
        dsn = _dsn("supabase_storage_admin", self.pg.password("supabase_storage_admin").get(), DB_ALIAS, PG_PORT,
                   "postgres").get()
        env = storage_env(dsn=dsn, jwt_secret=jwt_secret, service_key=self._secrets["SUPABASE_SERVICE_KEY"].get(),
                          anon_key=anon)
        wait = HttpWaitStrategy(STORAGE_PORT, "/status").for_status_code(200).with_startup_timeout(
            int(self.part_timeout))
        container = self._container("storage", self.images["storage"], env=env, ports=[STORAGE_PORT], wait=wait)
        self._storage_port = int(container.get_exposed_port(STORAGE_PORT))
        self._storage_url = f"http://{self._docker_host}:{self._storage_port}"
        # The server runs its migrations before it listens (src/start/server.ts), so /status answering means the
        # storage schema is complete; check the two tables anyway, then put our bucket and tenant policies on top.
        self._wait("storage migrations", lambda: self.pg.psql(
            "select to_regclass('storage.objects') is not null and to_regclass('storage.buckets') is not null",
            timeout=5).strip() == "t", container=container)
        self.pg.psql(storage_policies_sql())

    def _start_project_storage(self, jwt_secret: str) -> None:
        """The local set's storage container: the project's service, HTTPS with the rehearsal CA (as embedded)."""
        from pytest_cutover.rehearsal.services import http_ready

        dsn = _dsn("supabase_storage_admin", self.pg.password("supabase_storage_admin").get(), DB_ALIAS, PG_PORT,
                   "postgres").get()
        files = {f"{PROJECT_STORAGE_DIR}/server.pem": self.storage_cert.cert_path.read_bytes(),
                 f"{PROJECT_STORAGE_DIR}/server.key": self.storage_cert.key_path.read_bytes()}
        command = ["--host", "0.0.0.0", "--port", str(STORAGE_PORT), "--data-dir", STORAGE_FILE_PATH,
                   "--certfile", f"{PROJECT_STORAGE_DIR}/server.pem", "--keyfile", f"{PROJECT_STORAGE_DIR}/server.key"]
        container = self._container("storage", self.images["storage"], ports=[STORAGE_PORT], command=command,
                                    env={"STORAGE_DATABASE_URL": dsn, "STORAGE_JWT_SECRET": jwt_secret}, files=files)
        self._storage_port = int(container.get_exposed_port(STORAGE_PORT))
        self._storage_url = f"https://{self._docker_host}:{self._storage_port}/storage/v1"
        self._wait("storage", http_ready(f"https://{self._docker_host}:{self._storage_port}/status",
                                         ca_file=self.ca.cert_path), container=container)

    def storage_endpoint(self) -> tuple[str | None, Path | None]:
        if self._storage_url is None:
            return None, None
        # supabase/storage-api serves plain HTTP (on Supabase, Kong terminates TLS in front of it).
        tls_ca = self.ca.cert_path if self.image_set is not None and self.image_set.storage == "project" else None
        return self._storage_url, tls_ca

    def qdrant_source(self) -> tuple[str, str]:
        return ("url", self.qdrant_url) if self.qdrant_url else ("path", str(self.qdrant_path))

    def app_launch(self, port: int) -> dict[str, Any]:
        """With an app image: a container created (not started; ``rehearsal.ctl`` starts and restarts it) from
        it, running as this user, on the host's network, with the stack folder bind-mounted at the same path.

        The host network, because the switch writes ``target.app_database_url`` into the app's ``.env``: that
        URL names the pooler's port published on 127.0.0.1, and it must be the URL the app really connects
        with (on a Docker network the app would need another URL than the one the suite checks).  The whole
        folder, not the ``.env`` alone: the switch replaces the ``.env`` (a new inode), which a single-file
        bind mount would not show; and every path the ``.env`` names (CA, logs, flags, Qdrant folder) is in it.
        """
        assert self.image_set is not None and self.workdir is not None and self.env_file is not None
        if self.image_set.app is None:
            return super().app_launch(port)
        import secrets as _secrets

        import docker

        from pytest_cutover.rehearsal.services import uvicorn_args

        client = docker.from_env(version="auto", timeout=int(self.part_timeout))
        name = f"cutover-app-{_secrets.token_hex(4)}"
        try:
            box = client.containers.create(
                self.image_set.app, uvicorn_args(port, certfile=self.api_cert.cert_path,
                                                 keyfile=self.api_cert.key_path),
                name=name, labels={**self._labels, PART_LABEL: "app"}, network_mode="host",
                user=f"{os.getuid()}:{os.getgid()}", environment={"APP_ENV_FILE": str(self.env_file)},
                volumes={str(self.workdir): {"bind": str(self.workdir), "mode": "rw"}})
        except Exception as exc:
            client.close()
            raise RehearsalError(f"containers: the app container ({self.image_set.app}) could not be created: "
                                 f"{redact(f'{type(exc).__name__}: {exc}')}",
                                 hint="build the local image set with `cutover rehearse --build-images`") from None
        self.app_container_name = name
        self._parts.append(_Part("container app", lambda: self._remove_app_container(client, box)))
        return {"container": box.id, "container_name": name, "image": self.image_set.app}

    def _remove_app_container(self, client: Any, box: Any) -> None:
        """Keep the container's output beside the app's log (for ``--keep``), then remove it."""
        try:
            with contextlib.suppress(Exception):
                (self._dir("logs") / "app.out").write_bytes(box.logs())
            box.remove(force=True)
        finally:
            client.close()

    # -- containers -----------------------------------------------------------------------------
    def _container(self, name: str, image: str, *, env: Mapping[str, str] | None = None, ports: Sequence[int] = (),
                   command: list[str] | None = None, aliases: Sequence[str] = (),
                   files: Mapping[str, bytes] | None = None, log_ready: tuple[str, int] | None = None,
                   wait: Any = None) -> Any:
        """Create one container on the stack's network, register its stop, start it and wait for it."""
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        container = DockerContainer(image, labels={**self._labels, PART_LABEL: name})
        for key, value in (env or {}).items():
            container.with_env(key, value)
        for port in ports:
            _publish_on_loopback(container, port)
        if command:
            container.with_command(command)
        container.with_network(self._network)
        if aliases:
            container.with_network_aliases(*aliases)
        for dest, data in (files or {}).items():
            container.with_copy_into_container(data, dest, 0o644)
        if log_ready is not None:
            wait = LogMessageWaitStrategy(log_ready[0], times=log_ready[1])
        if wait is not None:
            container.waiting_for(wait.with_startup_timeout(int(self.part_timeout)))
        self._register(name, container)
        self._start_container(name, container)
        return container

    def _remove_network(self) -> None:
        if self._network is not None and self._network._network is not None:  # created
            self._network.remove()
        self._network = None

    def _register(self, name: str, container: Any) -> None:
        self.containers[name] = container
        self._parts.append(_Part(f"container {name}", container.stop))

    def _start_container(self, name: str, container: Any) -> None:
        try:
            container.start()
        except Exception as exc:
            raise RehearsalError(f"containers: {name} ({container.image}) did not start: "
                                 f"{redact(f'{type(exc).__name__}: {exc}')}\n{_log_tail(container)}",
                                 hint=f"docker logs of the {name} container are above; pull the image by hand "
                                      f"(docker pull {container.image}) if it is missing") from None

    def _wait(self, part: str, probe: Callable[[], bool], *, container: Any = None) -> None:
        """Poll ``probe`` until it is true or ``part_timeout`` passes (then fail naming the part, with logs)."""
        last = "not tried"

        def answered() -> bool:
            nonlocal last
            try:
                if probe():
                    return True
                last = "probe answered false"
            except Exception as exc:  # connection refused/reset while the part starts
                last = f"{type(exc).__name__}: {exc}"
            return False

        if wait_until(answered, self.part_timeout, pause=0.5):
            return
        tail = _log_tail(container) if container is not None else ""
        raise RehearsalError(f"containers: {part} did not answer within {self.part_timeout:.0f}s "
                             f"(last: {redact(last)})\n{tail}", hint=f"check the {part} container with docker logs")


def _publish_on_loopback(container: Any, port: int) -> None:
    """Publish ``port`` on 127.0.0.1 only, on a free host port the engine picks (docker-py's ``(ip,)`` form;
    testcontainers' ``with_exposed_ports`` would publish on every interface)."""
    container.ports[f"{port}/tcp"] = (LOOPBACK,)


def _reaper_only_if_present() -> None:
    """testcontainers' reaper (Ryuk) is an image too: without it here (no registry), the stack's own teardown
    (stop(), atexit, SIGTERM/SIGHUP, Ctrl-C) removes what it started, and the teardown tests prove it."""
    import docker
    import docker.errors
    from testcontainers.core.config import testcontainers_config

    client = docker.from_env(version="auto", timeout=int(DOCKER_PING_TIMEOUT) + 7)
    try:
        client.images.get(testcontainers_config.ryuk_image)
    except docker.errors.ImageNotFound:
        testcontainers_config.ryuk_disabled = True
    finally:
        client.close()


def _log_tail(container: Any, n: int = 20) -> str:
    try:
        out, err = container.get_logs()
    except Exception:
        return ""
    lines = (out.decode("utf-8", "replace") + err.decode("utf-8", "replace")).splitlines()
    return redact("\n".join(lines[-n:]))


def _tls_login_probe(pooler: ContainerPooler, user: str) -> Callable[[], bool]:
    """A real login through the pooler, TLS verified with the rehearsal CA (as ``PgBouncer._ready``)."""

    def probe() -> bool:
        from pytest_cutover.rehearsal.pgbouncer import tls_login

        return tls_login(pooler.host, pooler.port, user, pooler.users[user], next(iter(pooler.databases)),
                         pooler.ca_file)

    return probe
