"""System figures: the app's RSS, and connection counts on the target and on the pooler.

- RSS by pid with psutil (the process and its children: uvicorn workers), or a
  configured ``rss_command`` printing a size (``123456``, ``512 kB``, ``1.5G``).
- Target connections: client backends in ``pg_stat_activity`` of the target
  database (our own connection excluded), over one asyncpg connection kept for
  the window and re-opened after a failure; every failed connect or query counts
  as a database connection failure of that sample.
- Pooler connections: ``SHOW POOLS`` on PgBouncer's admin console, through the
  ``psql`` client (the admin console speaks only the simple query protocol,
  which asyncpg's ``fetch`` does not use).  The password travels in
  ``PGPASSWORD``, never on the command line.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.dsn import driver_dsn
from pytest_cutover.monitor.errors import MonitorError
from pytest_cutover.redact import Secret, redact, reveal
from pytest_cutover.util.proc import run_checked, run_psql

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = [
    "PoolerFigures",
    "SystemFigures",
    "SystemSampler",
    "connect_target",
    "parse_show_pools",
    "parse_size",
    "pooler_figures",
    "read_pid_file",
    "rss_from_command",
    "rss_of_pid",
    "system_sampler_from_config",
]

_SIZE = re.compile(r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kKmMgGtT]?i?[bB]?)?\b")
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """The first size in ``text``, in bytes: ``"123"`` -> 123, ``"512 kB"`` -> 524288, ``"1.5G"``."""
    match = _SIZE.search(text)
    if not match:
        raise ValueError(f"no size in {text.strip()[:80]!r}")
    unit = (match["unit"] or "").lower()[:1]
    return int(float(match["num"]) * _UNITS[unit])


def rss_of_pid(pid: int, *, children: bool = True) -> int:
    """Resident memory of ``pid`` (plus its children), in bytes."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *(proc.children(recursive=True) if children else [])]
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        raise MonitorError(f"app process {pid} does not exist",
                           hint="set monitor.app_pid_file to the app's pid file, or monitor.rss_command") from None


def read_pid_file(path: str | os.PathLike[str]) -> int:
    """The pid written in ``path``."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise MonitorError(f"pid file {path} is unreadable ({exc.__class__.__name__})",
                           hint="check monitor.app_pid_file") from None


def rss_from_command(command: str, timeout_s: float = 10.0) -> int:
    """Run ``command`` (shell) and parse the size it prints."""
    done = run_checked(command, shell=True, what="rss command", timeout=timeout_s, error=MonitorError,
                       hint="check monitor.rss_command")
    try:
        return parse_size(done.stdout)
    except ValueError as exc:
        raise MonitorError(f"rss command printed {redact(done.stdout.strip()[:80])!r}: {exc}",
                           hint="print the app's RSS in bytes, or with a kB/MB/GB unit") from None


@dataclass(frozen=True)
class PoolerFigures:
    """Client connections (active + waiting) over the pooler's pools, and how many wait."""

    clients: int
    waiting: int
    server_active: int
    pools: int


def parse_show_pools(text: str) -> PoolerFigures:
    """Parse ``psql -A -F '|'`` output of ``SHOW POOLS`` (the admin ``pgbouncer`` pool excluded)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("SHOW POOLS printed nothing")
    header = lines[0].split("|")
    need = ("database", "cl_active", "cl_waiting", "sv_active")
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(f"SHOW POOLS has no column(s) {', '.join(missing)}")
    clients = waiting = active = pools = 0
    for line in lines[1:]:
        row = dict(zip(header, line.split("|"), strict=False))
        if row.get("database") == "pgbouncer":
            continue
        pools += 1
        clients += int(row["cl_active"]) + int(row["cl_waiting"])
        waiting += int(row["cl_waiting"])
        active += int(row["sv_active"])
    return PoolerFigures(clients, waiting, active, pools)


def pooler_figures(admin_url: Secret | str, timeout_s: float = 10.0, psql: str | None = None) -> PoolerFigures:
    """``SHOW POOLS`` on PgBouncer's admin console (database ``pgbouncer``) via ``psql``."""
    out = run_psql(admin_url, "SHOW POOLS", timeout=timeout_s, error=MonitorError, psql=psql,
                   hint="check monitor.pooler_admin_url and that the pooler is up",
                   failure_hint="the user must be in PgBouncer's admin_users or stats_users")
    try:
        return parse_show_pools(out)
    except (ValueError, KeyError) as exc:
        raise MonitorError(f"SHOW POOLS on {redact(str(admin_url))}: {exc}") from None


@dataclass(frozen=True)
class SystemFigures:
    """What one tick measured outside the app's HTTP surface."""

    rss_bytes: int | None = None
    db_connections: int | None = None
    db_errors: int = 0
    pooler_connections: int | None = None
    pooler_waiting: int | None = None
    notes: tuple[str, ...] = ()


_CONNECTIONS_SQL = ("select count(*) from pg_stat_activity where backend_type = 'client backend' "
                    "and datname = current_database() and pid <> pg_backend_pid()")


async def connect_target(dsn: Secret | str, *, timeout_s: float, ca_file: str | None = None) -> Any:
    """An asyncpg connection (statement cache off: it may go through a transaction pooler).

    With a ``ca_file`` and no ``sslmode`` in the DSN, TLS is tried first, verified against that CA,
    and a server that refuses TLS (a direct socket-only server) gets a plain connection, like
    libpq's ``sslmode=prefer``; an ``sslmode`` in the DSN always decides on its own.
    """
    import asyncpg

    plain = driver_dsn(reveal(dsn) or "")
    if ca_file and "sslmode=" not in plain:
        try:
            return await asyncpg.connect(plain, timeout=timeout_s, statement_cache_size=0,
                                         ssl=ssl.create_default_context(cafile=ca_file))
        except ConnectionError as exc:
            if "rejected SSL upgrade" not in str(exc):
                raise
    return await asyncpg.connect(plain, timeout=timeout_s, statement_cache_size=0)


@dataclass
class SystemSampler:
    """Collects RSS and connection counts; every failure becomes a note, never an exception."""

    pid: int | None = None
    pid_file: str | None = None
    rss_command: str | None = None
    target_dsn: Secret | str | None = None
    pooler_admin_url: Secret | str | None = None
    ca_file: str | None = None
    timeout_s: float = 10.0
    _conn: Any = field(default=None, init=False, repr=False)

    def _rss(self) -> int | None:
        if self.rss_command:
            return rss_from_command(self.rss_command, self.timeout_s)
        pid = self.pid if self.pid is not None else (read_pid_file(self.pid_file) if self.pid_file else None)
        return rss_of_pid(pid) if pid is not None else None

    async def _connections(self) -> int:
        if self._conn is None or self._conn.is_closed():
            self._conn = await connect_target(self.target_dsn or "", timeout_s=self.timeout_s, ca_file=self.ca_file)
        return int(await self._conn.fetchval(_CONNECTIONS_SQL, timeout=self.timeout_s))

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await asyncio.wait_for(conn.close(), self.timeout_s)
            except Exception:  # a broken connection may not close cleanly
                conn.terminate()

    async def sample(self) -> SystemFigures:
        notes: list[str] = []
        rss = db = pool_clients = pool_waiting = None
        db_errors = 0
        try:
            rss = await asyncio.to_thread(self._rss)
        except MonitorError as exc:
            notes.append(str(exc))
        if self.target_dsn is not None:
            try:
                db = await self._connections()
            except (OSError, TimeoutError) as exc:
                db_errors += 1
                notes.append(redact(f"database connection failed: {type(exc).__name__}: {exc}")[:300])
                await self._drop_connection()
            except Exception as exc:  # asyncpg errors share no base with OSError
                db_errors += 1 if _is_connection_error(exc) else 0
                notes.append(redact(f"pg_stat_activity query failed: {type(exc).__name__}: {exc}")[:300])
                await self._drop_connection()
        if self.pooler_admin_url is not None:
            try:
                figures = await asyncio.to_thread(pooler_figures, self.pooler_admin_url, self.timeout_s)
                pool_clients, pool_waiting = figures.clients, figures.waiting
            except MonitorError as exc:
                notes.append(str(exc))
        return SystemFigures(rss, db, db_errors, pool_clients, pool_waiting, tuple(notes))

    async def aclose(self) -> None:
        await self._drop_connection()


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.CannotConnectNowError
                      | asyncpg.TooManyConnectionsError | asyncpg.AdminShutdownError)


def system_sampler_from_config(config: CutoverConfig) -> SystemSampler:
    """RSS from ``[monitor]`` app_pid / app_pid_file / rss_command; connections on ``target.database_url``
    and ``monitor.pooler_admin_url``."""
    mon = config.monitor
    return SystemSampler(pid=mon.app_pid, pid_file=mon.app_pid_file, rss_command=mon.rss_command,
                         target_dsn=config.target.database_url, pooler_admin_url=mon.pooler_admin_url,
                         ca_file=config.target.ca_file, timeout_s=mon.command_timeout_s)

