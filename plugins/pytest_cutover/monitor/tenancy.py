"""Read-only tenant look-ups on the target: which orgs to sample, and who owns a returned row.

:func:`discover_targets` picks the sampled orgs (those with the most threads),
with one fragment id and one attachment id each, when ``[monitor]`` names none.
:class:`DatabaseLeakOracle` answers "which org owns these thread / fragment ids"
for probes whose answers carry no ``org_id`` per row.  Both connect with the
target's admin URL (direct or session, BYPASSRLS), never through the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_cutover.config import SchemaConfig
from pytest_cutover.monitor.errors import MonitorError
from pytest_cutover.monitor.system import connect_target
from pytest_cutover.redact import Secret, redact
from pytest_cutover.util.sql import quote_ident, quote_literal

__all__ = ["DatabaseLeakOracle", "ProbeTargets", "discover_targets"]


@dataclass(frozen=True)
class ProbeTargets:
    """Sampled orgs, with a fragment to search by and an attachment to download per org."""

    orgs: tuple[str, ...]
    search_fragments: dict[str, int] = field(default_factory=dict)
    attachments: dict[str, int] = field(default_factory=dict)


async def _connect(dsn: Secret | str, timeout_s: float, ca_file: str | None) -> Any:
    import asyncpg

    try:
        return await connect_target(dsn, timeout_s=timeout_s, ca_file=ca_file)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise MonitorError(redact(f"cannot connect to the target {dsn}: {type(exc).__name__}: {exc}"),
                           hint="check target.database_url") from None


async def discover_targets(dsn: Secret | str, schema: SchemaConfig | None = None, *, count: int = 3,
                           timeout_s: float = 10.0, ca_file: str | None = None) -> ProbeTargets:
    """The ``count`` orgs with the most threads, each with its lowest fragment id and attachment id."""
    s = schema or SchemaConfig()
    org = quote_ident(s.tenant_column)
    conn = await _connect(dsn, timeout_s, ca_file)
    try:
        rows = await conn.fetch(f"select {org} as org, count(*) as n from {quote_ident(s.threads_table)} "
                                f"group by 1 order by 2 desc, 1 limit $1", count, timeout=timeout_s)
        orgs = tuple(str(r["org"]) for r in rows)
        # A probe has no user: search by a shared fragment that has an embedding, or it finds nothing.
        shared = (f" and {quote_ident(s.tier_column)} <> {quote_literal(s.private_tier)}"
                  if s.tier_column else "")
        fragments = await conn.fetch(
            f"select {org} as org, min({quote_ident(s.fragment_key)}) as id from {quote_ident(s.fragments_table)} "
            f"where {org} = any($1::text[]) and {quote_ident(s.embedding_column)} is not null{shared} group by 1",
            list(orgs), timeout=timeout_s)
        attachments = await conn.fetch(
            f"select {org} as org, min({quote_ident(s.attachment_key)}) as id from {quote_ident(s.attachments_table)} "
            f"where {org} = any($1::text[]) group by 1", list(orgs), timeout=timeout_s)
    finally:
        await conn.close(timeout=timeout_s)
    return ProbeTargets(orgs, {str(r["org"]): int(r["id"]) for r in fragments},
                        {str(r["org"]): int(r["id"]) for r in attachments})


@dataclass
class DatabaseLeakOracle:
    """Looks up the owning org of thread ids and fragment ids on the target (one connection, kept)."""

    dsn: Secret | str
    schema: SchemaConfig = field(default_factory=SchemaConfig)
    timeout_s: float = 10.0
    ca_file: str | None = None
    _conn: Any = field(default=None, init=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def owners(self, kind: str, ids: Sequence[Any]) -> Mapping[str, str]:
        s = self.schema
        if kind == "threads":
            table, key, cast = s.threads_table, "id", "uuid[]"
        elif kind == "search":
            table, key, cast = s.fragments_table, s.fragment_key, "bigint[]"
        else:
            return {}
        values = [str(i) for i in ids] if cast == "uuid[]" else [int(i) for i in ids]
        async with self._lock:  # probes run concurrently; one connection serves one query at a time
            if self._conn is None or self._conn.is_closed():
                self._conn = await _connect(self.dsn, self.timeout_s, self.ca_file)
            rows = await self._conn.fetch(
                f"select {quote_ident(key)}::text as id, {quote_ident(s.tenant_column)}::text as org "
                f"from {quote_ident(table)} "
                f"where {quote_ident(key)} = any($1::{cast})", values, timeout=self.timeout_s)
        return {r["id"]: r["org"] for r in rows}

    async def aclose(self) -> None:
        """Close the connection; the oracle can be used again from another event loop afterwards."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close(timeout=self.timeout_s)
        self._lock = asyncio.Lock()  # a lock binds to the loop that first waited on it
