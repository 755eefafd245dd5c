"""The few read-only SQL questions the actions ask: who is still connected, how many rows an org has.

Every function opens one short asyncpg connection, asks, and closes it.  Nothing
here writes: the rollback must keep the target's data intact.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_cutover.actions.base import ActionError, run_sync
from pytest_cutover.dsn import DsnProblem, check_url, driver_dsn
from pytest_cutover.redact import Secret, redact, reveal
from pytest_cutover.util.sql import quote_ident

__all__ = ["OUR_APPLICATION_NAME", "ConnectionCount", "Endpoint", "app_connections", "asyncpg_dsn", "endpoint",
           "non_null_count", "recent_backends", "sample_org", "table_counts", "tenant_count"]


@dataclass(frozen=True)
class Endpoint:
    """Where a DSN points: host (or socket directory), port, database, user."""

    host: str
    port: int
    database: str
    user: str

    def same_place(self, other: Endpoint) -> bool:
        """Same server and database (the user may differ: the app role vs the admin role)."""
        return (self.host, self.port, self.database) == (other.host, other.port, other.database)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.database}"


def endpoint(url: Secret | str) -> Endpoint:
    """Parse a PostgreSQL URL (any ``+driver``) into an :class:`Endpoint`; port defaults to 5432."""
    raw = reveal(url) or ""
    try:
        parts = urlsplit(raw)
        query = parse_qs(parts.query)
        port = parts.port or int(query.get("port", ["5432"])[0])
    except ValueError:
        # urllib's message quotes the piece it choked on (often a piece of the password): say what is wrong instead
        try:
            check_url(raw, postgres=True)
            problem = "it is not a database URL"
        except DsnProblem as exc:
            problem = str(exc)
        raise ActionError(f"a database URL cannot be parsed: {problem}",
                          hint="use postgresql://user:password@host:port/database, special characters "
                               "percent-encoded") from None
    host = parts.hostname or query.get("host", [""])[0]
    return Endpoint(host=host, port=port, database=unquote(parts.path.lstrip("/")) or "postgres",
                    user=unquote(parts.username or ""))


def asyncpg_dsn(url: Secret | str) -> str:
    """A DSN asyncpg accepts: ``postgresql+asyncpg://`` and friends become ``postgresql://``, and parameters
    no driver accepts (``pgbouncer=true``, copied from Supabase's docs) are dropped (:func:`driver_dsn`)."""
    return driver_dsn(reveal(url) or "")


OUR_APPLICATION_NAME = "pytest-cutover-actions"
T = TypeVar("T")
_NOT_OURS = f"application_name IS DISTINCT FROM '{OUR_APPLICATION_NAME}' "


async def _connect(url: Secret | str, timeout: float):  # type: ignore[no-untyped-def]
    import asyncpg

    try:
        return await asyncpg.connect(asyncpg_dsn(url), timeout=timeout, statement_cache_size=0,
                                     server_settings={"application_name": OUR_APPLICATION_NAME})
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ActionError(f"cannot connect to {endpoint(url)}: {exc.__class__.__name__}: {redact(exc)}",
                          hint="check that the database is up and the URL in the config is right") from exc


async def _asking(url: Secret | str, timeout: float, question: Callable[[Any], Awaitable[T]]) -> T:
    conn = await _connect(url, timeout)
    try:
        return await question(conn)
    finally:
        await conn.close()


def _ask(url: Secret | str, timeout: float, question: Callable[[Any], Awaitable[T]]) -> T:
    """``question(conn)`` on one short connection of ours, closed after it, with a deadline past ``timeout``."""
    return run_sync(_asking(url, timeout, question), timeout=timeout + 5)


@dataclass(frozen=True)
class ConnectionCount:
    """Connections of the app still open on a database, with a short description of them.

    ``server_now`` is the database server's clock at the count (for :func:`recent_backends`).
    """

    count: int
    evidence: str
    server_now: datetime | None = None


def app_connections(url: Secret | str, *, role: str | None, application_name: str | None = None,
                    busy_only: bool = False, timeout: float = 10.0) -> ConnectionCount:
    """Count the app's backends on the database ``url`` names, from ``pg_stat_activity`` (ours excluded).

    ``busy_only`` (the app reaches this database through a pooler) ignores idle backends: the pooler
    keeps idle server connections after its clients leave, and those are not the app's.  Without
    ``pg_read_all_stats`` the state of other roles' backends is hidden: such a backend counts on a
    direct connection (it is the app's own) and does not through a pooler, and the evidence says so.
    """
    if not role and not application_name:
        raise ActionError("cannot tell the app's connections apart: neither its role nor its application_name is "
                          "known", hint="set [app] db_role or [app] db_application_name")

    async def ask(conn: Any) -> tuple[list[Any], datetime]:
        # backend_type is NULL too for other roles' backends when their details are hidden from us.
        rows = await conn.fetch(
            "SELECT usename, application_name, state, count(*) AS n "
            "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND " + _NOT_OURS +
            "AND (backend_type = 'client backend' OR backend_type IS NULL) "
            "AND datname = current_database() "
            "AND ($1::text IS NULL OR usename = $1) AND ($2::text IS NULL OR application_name = $2) "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", role, application_name)
        return rows, await conn.fetchval("SELECT now()")

    rows, now = _ask(url, timeout, ask)
    total, parts = 0, []
    for r in rows:
        counted = not busy_only or (r["state"] is not None and r["state"] != "idle")
        total += r["n"] if counted else 0
        state = r["state"] or "hidden-state"
        parts.append(f"{r['n']} {state} as {r['usename']} ({r['application_name'] or 'no application_name'})"
                     + ("" if counted else " not counted"))
    return ConnectionCount(total, "; ".join(parts) or "none", now)


def recent_backends(url: Secret | str, *, role: str, since: datetime, timeout: float = 10.0) -> tuple[int | None, str]:
    """How many backends of ``role`` on this database started or ran a statement since ``since`` (server clock).

    ``None`` when their timestamps are hidden from us (no ``pg_read_all_stats``): then nobody can tell.
    """

    async def ask(conn: Any) -> Any:
        return await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE greatest(backend_start, state_change) >= $2) AS recent, "
            "count(*) FILTER (WHERE backend_start IS NULL) AS hidden, count(*) AS total "
            "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND " + _NOT_OURS +
            "AND (backend_type = 'client backend' OR backend_type IS NULL) "
            "AND datname = current_database() AND usename = $1", role, since)

    row = _ask(url, timeout, ask)
    assert row is not None
    if row["hidden"]:
        return None, f"{row['hidden']} of {row['total']} backends of {role} hide their timestamps from us"
    return int(row["recent"]), f"{row['recent']} of {row['total']} backends of {role} active since the start"


def tenant_count(url: Secret | str, table: str, tenant_column: str, org: str, timeout: float = 10.0) -> int:
    """``SELECT count(*) FROM table WHERE tenant_column = org``."""

    async def ask(conn: Any) -> int:
        return int(await conn.fetchval(
            f"SELECT count(*) FROM {quote_ident(table)} WHERE {quote_ident(tenant_column)} = $1", org))

    return _ask(url, timeout, ask)


def sample_org(url: Secret | str, table: str, tenant_column: str, timeout: float = 10.0) -> str | None:
    """A deterministic org to sample: the one with the most rows in ``table`` (ties by id)."""

    async def ask(conn: Any) -> str | None:
        col = quote_ident(tenant_column)
        return await conn.fetchval(  # type: ignore[no-any-return]
            f"SELECT {col} FROM {quote_ident(table)} GROUP BY {col} ORDER BY count(*) DESC, {col} LIMIT 1")

    return _ask(url, timeout, ask)


def non_null_count(url: Secret | str, table: str, column: str, timeout: float = 30.0) -> int | None:
    """``count(column)`` of ``table`` (``None`` when the table or column does not exist); read-only."""

    async def ask(conn: Any) -> int | None:
        exists = await conn.fetchval(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 "
            "AND NOT attisdropped", quote_ident(table), column)
        if not exists:
            return None
        return int(await conn.fetchval(f"SELECT count({quote_ident(column)}) FROM {quote_ident(table)}"))

    return _ask(url, timeout, ask)


def table_counts(url: Secret | str, tables: Sequence[str], timeout: float = 30.0) -> dict[str, int | None]:
    """Row counts of ``tables`` (``None`` for a table that does not exist); read-only."""

    async def ask(conn: Any) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for table in tables:
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(table))
            out[table] = int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(table)}")) if exists else None
        return out

    return _ask(url, timeout, ask)
