"""Relational parity: old vs target, table by table, computed in SQL on both sides.

Per table: row counts, then per tenant ``md5(string_agg(md5(row), '' ORDER BY key))`` over
the columns both sides share (minus configured exclusions).  A tenant whose checksum
differs is bisected by key range (median split, checksums on both sides) until a range is
small enough to compare row hashes, so one changed row among millions is found without
pulling tables into Python.  Both sessions render values the same way (UTC, ISO dates).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_cutover.util.sql import quote_ident

if TYPE_CHECKING:
    import asyncpg

__all__ = ["SESSION_SETTINGS", "TableParity", "table_parity"]

SESSION_SETTINGS = ("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
                    "SET extra_float_digits = 1; SET bytea_output = 'hex'")
LEAF_ROWS = 64
_WHOLE = "*"


@dataclass
class TableParity:
    """What parity found for one table."""

    table: str
    old_rows: int = 0
    new_rows: int = 0
    tenants: int = 0
    mismatched_tenants: list[str] = field(default_factory=list)
    differing_keys: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    queries: int = 0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.old_rows == self.new_rows and not self.mismatched_tenants and not self.differing_keys


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch("SELECT attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute "
                            "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                            quote_ident(table))
    return {r["attname"]: r["t"] for r in rows}


class _Side:
    def __init__(self, conn: asyncpg.Connection, table: str, key: str, tenant: str | None, cols: list[str],
                 counter: list[int]) -> None:
        self.conn = conn
        self.t = quote_ident(table)
        self.key = quote_ident(key)
        self.tenant = f"{quote_ident(tenant)}::text" if tenant else f"'{_WHOLE}'"
        row = ", ".join(f"quote_nullable({quote_ident(c)}::text)" for c in cols)
        self.row = f"md5(concat_ws(',', {row}))"
        self.counter = counter

    def _where(self, lo: Any, hi: Any, start: int = 2) -> tuple[str, list[Any]]:
        clauses, args = [f"{self.tenant} = $1"], []
        if lo is not None:
            args.append(lo)
            clauses.append(f"{self.key} >= ${start + len(args) - 1}")
        if hi is not None:
            args.append(hi)
            clauses.append(f"{self.key} < ${start + len(args) - 1}")
        return " AND ".join(clauses), args

    async def per_tenant(self) -> dict[str, tuple[int, str]]:
        self.counter[0] += 1
        rows = await self.conn.fetch(f"SELECT {self.tenant} AS tenant, count(*) AS n, md5(string_agg("
                                     f"{self.row}, '' ORDER BY {self.key})) AS h FROM {self.t} GROUP BY 1")
        return {r["tenant"]: (int(r["n"]), r["h"]) for r in rows}

    async def summary(self, tenant: str, lo: Any, hi: Any) -> tuple[int, str | None]:
        self.counter[0] += 1
        where, args = self._where(lo, hi)
        row = await self.conn.fetchrow(f"SELECT count(*) AS n, md5(string_agg({self.row}, '' ORDER BY {self.key})) "
                                       f"AS h FROM {self.t} WHERE {where}", tenant, *args)
        return int(row["n"]), row["h"]

    async def median(self, tenant: str, lo: Any, hi: Any, n: int) -> Any:
        self.counter[0] += 1
        where, args = self._where(lo, hi)
        return await self.conn.fetchval(f"SELECT {self.key} FROM {self.t} WHERE {where} ORDER BY {self.key} "
                                        f"OFFSET {n // 2} LIMIT 1", tenant, *args)

    async def leaf(self, tenant: str, lo: Any, hi: Any) -> dict[Any, str]:
        self.counter[0] += 1
        where, args = self._where(lo, hi)
        rows = await self.conn.fetch(f"SELECT {self.key} AS k, {self.row} AS h FROM {self.t} WHERE {where}",
                                     tenant, *args)
        return {r["k"]: r["h"] for r in rows}


async def _bisect(old: _Side, new: _Side, tenant: str, lo: Any, hi: Any, out: list[Any], limit: int) -> None:
    if len(out) >= limit:
        return
    a, b = await old.summary(tenant, lo, hi), await new.summary(tenant, lo, hi)
    if a == b:
        return
    bigger, n = (old, a[0]) if a[0] >= b[0] else (new, b[0])
    split = await bigger.median(tenant, lo, hi, n) if n > LEAF_ROWS else None
    if split is None or split == lo:
        left, right = await old.leaf(tenant, lo, hi), await new.leaf(tenant, lo, hi)
        diff = sorted((k for k in left.keys() | right.keys() if left.get(k) != right.get(k)), key=str)
        out.extend(diff[: max(0, limit - len(out))])
        return
    await _bisect(old, new, tenant, lo, split, out, limit)
    await _bisect(old, new, tenant, split, hi, out, limit)


async def table_parity(old_conn: asyncpg.Connection, new_conn: asyncpg.Connection, table: str, *, key: str = "id",
                       tenant: str | None = "org_id", exclude: tuple[str, ...] = (), limit: int = 20) -> TableParity:
    """Counts and per-tenant checksums for ``table`` on both sides; bisect mismatching tenants to their keys."""
    t0 = time.perf_counter()
    result = TableParity(table)
    old_cols, new_cols = await _columns(old_conn, table), await _columns(new_conn, table)
    if not old_cols or not new_cols:
        missing = "old" if not old_cols else "target"
        result.mismatched_tenants = [f"table {table} does not exist on the {missing} side"]
        return result
    skip = {e.split(".", 1)[1] for e in exclude if e.startswith(table + ".")}
    cols = [c for c in old_cols if c in new_cols and c not in skip]
    result.columns = cols
    use_tenant = tenant if tenant in old_cols and tenant in new_cols else (key if table == "orgs" else None)
    counter = [0]
    old, new = (_Side(c, table, key, use_tenant, cols, counter) for c in (old_conn, new_conn))
    a, b = await old.per_tenant(), await new.per_tenant()
    result.old_rows, result.new_rows = sum(n for n, _ in a.values()), sum(n for n, _ in b.values())
    result.tenants = len(a.keys() | b.keys())
    for name in sorted(a.keys() | b.keys()):
        if a.get(name) != b.get(name):
            result.mismatched_tenants.append(name)
            await _bisect(old, new, name, None, None, result.differing_keys, limit)
    result.differing_keys = [str(k) for k in result.differing_keys]
    result.queries = counter[0]
    result.duration_s = time.perf_counter() - t0
    return result
