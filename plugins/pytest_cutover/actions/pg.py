"""The few read-only SQL questions the actions ask: who is still connected, how many rows an org has.

Every function opens one short asyncpg connection, asks, and closes it.  Nothing
here writes: the rollback must keep the target's data intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from pytest_cutover.actions.base import ActionError, run_sync
from pytest_cutover.redact import Secret, redact, reveal

__all__ = ["ConnectionCount", "Endpoint", "app_connections", "asyncpg_dsn", "endpoint", "non_null_count", "quote_ident",
           "sample_org", "table_counts", "tenant_count"]


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
    except ValueError as exc:
        raise ActionError(f"database url {redact(raw)} cannot be parsed: {exc}",
                          hint="use postgresql://user:password@host:port/database") from None
    host = parts.hostname or query.get("host", [""])[0]
    return Endpoint(host=host, port=port, database=unquote(parts.path.lstrip("/")) or "postgres",
                    user=unquote(parts.username or ""))


def asyncpg_dsn(url: Secret | str) -> str:
    """A DSN asyncpg accepts: ``postgresql+asyncpg://`` and friends become ``postgresql://``."""
    raw = reveal(url) or ""
    scheme, sep, rest = raw.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def quote_ident(name: str) -> str:
    """Quote ``table`` or ``schema.table`` as SQL identifiers."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


async def _connect(url: Secret | str, timeout: float):  # type: ignore[no-untyped-def]
    import asyncpg

    try:
        return await asyncpg.connect(asyncpg_dsn(url), timeout=timeout, statement_cache_size=0)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise ActionError(f"cannot connect to {endpoint(url)}: {exc.__class__.__name__}: {redact(exc)}",
                          hint="check that the database is up and the URL in the config is right") from exc


@dataclass(frozen=True)
class ConnectionCount:
    """Connections of the app still open on a database, with a short description of them."""

    count: int
    evidence: str


def app_connections(url: Secret | str, *, role: str | None, application_name: str | None = None,
                    busy_only: bool = False, timeout: float = 10.0) -> ConnectionCount:
    """Count the app's backends on the database ``url`` names, from ``pg_stat_activity`` (ours excluded).

    ``busy_only`` ignores idle backends: a transaction pooler keeps idle server
    connections open after its clients leave, and those are not the app's.  A
    backend whose state we may not see (no ``pg_read_all_stats``) counts as busy.
    """
    if not role and not application_name:
        raise ActionError("cannot tell the app's connections apart: neither its role nor its application_name is "
                          "known", hint="set [app] db_role or [app] db_application_name")

    async def ask() -> ConnectionCount:
        conn = await _connect(url, timeout)
        try:
            rows = await conn.fetch(
                "SELECT usename, application_name, coalesce(state, '(hidden)') AS state, count(*) AS n "
                "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND datname = current_database() "
                "AND ($1::text IS NULL OR usename = $1) AND ($2::text IS NULL OR application_name = $2) "
                "AND (NOT $3::bool OR state IS DISTINCT FROM 'idle') "
                "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", role, application_name, busy_only)
        finally:
            await conn.close()
        total = sum(r["n"] for r in rows)
        parts = [f"{r['n']} {r['state']} as {r['usename']} ({r['application_name'] or 'no application_name'})"
                 for r in rows]
        return ConnectionCount(total, "; ".join(parts) or "none")

    return run_sync(ask(), timeout=timeout + 5)


def tenant_count(url: Secret | str, table: str, tenant_column: str, org: str, timeout: float = 10.0) -> int:
    """``SELECT count(*) FROM table WHERE tenant_column = org``."""

    async def ask() -> int:
        conn = await _connect(url, timeout)
        try:
            return int(await conn.fetchval(
                f"SELECT count(*) FROM {quote_ident(table)} WHERE {quote_ident(tenant_column)} = $1", org))
        finally:
            await conn.close()

    return run_sync(ask(), timeout=timeout + 5)


def sample_org(url: Secret | str, table: str, tenant_column: str, timeout: float = 10.0) -> str | None:
    """A deterministic org to sample: the one with the most rows in ``table`` (ties by id)."""

    async def ask() -> str | None:
        conn = await _connect(url, timeout)
        try:
            col = quote_ident(tenant_column)
            return await conn.fetchval(
                f"SELECT {col} FROM {quote_ident(table)} GROUP BY {col} ORDER BY count(*) DESC, {col} LIMIT 1")
        finally:
            await conn.close()

    return run_sync(ask(), timeout=timeout + 5)


def non_null_count(url: Secret | str, table: str, column: str, timeout: float = 30.0) -> int | None:
    """``count(column)`` of ``table`` (``None`` when the table or column does not exist); read-only."""

    async def ask() -> int | None:
        conn = await _connect(url, timeout)
        try:
            exists = await conn.fetchval(
                "SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 "
                "AND NOT attisdropped", quote_ident(table), column)
            if not exists:
                return None
            return int(await conn.fetchval(f"SELECT count({quote_ident(column)}) FROM {quote_ident(table)}"))
        finally:
            await conn.close()

    return run_sync(ask(), timeout=timeout + 5)


def table_counts(url: Secret | str, tables: Sequence[str], timeout: float = 30.0) -> dict[str, int | None]:
    """Row counts of ``tables`` (``None`` for a table that does not exist); read-only."""

    async def ask() -> dict[str, int | None]:
        conn = await _connect(url, timeout)
        out: dict[str, int | None] = {}
        try:
            for table in tables:
                exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", quote_ident(table))
                out[table] = int(await conn.fetchval(f"SELECT count(*) FROM {quote_ident(table)}")) if exists else None
        finally:
            await conn.close()
        return out

    return run_sync(ask(), timeout=timeout + 5)
