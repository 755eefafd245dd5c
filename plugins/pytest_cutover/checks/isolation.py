"""The rls stage's probes: cross-tenant access through the transaction pooler, each with a negative control.

Every probe runs as the app role through ``target.app_database_url`` with the app's own mechanism: a
transaction that starts with ``set_config('<org setting>', A, true)``.  Org B is the org with the most
rows in the table; org A another org (or a name no org has).  Each probe is also run as a role that
bypasses RLS (``target.database_url``: ``postgres`` has BYPASSRLS on Supabase), and that control must
SEE org B's rows; otherwise the probe could pass vacuously and the check fails saying so.

* read: A's context sees none of B's rows (and nothing outside A);
* insert: a copy of one of B's rows is refused with SQLSTATE 42501 *by a row-level security policy*
  (a missing GRANT is also 42501, so the message is checked); the same insert with B's own context is
  not refused by RLS (a second control: same role, same row, only the context differs);
* update/delete: statements aimed at B's rows affect 0 rows, and a checksum of B's rows read as the
  control role is unchanged afterwards; moving one of A's rows into B is refused;
* no context: a transaction without ``set_config`` sees nothing (not everything);
* private tier: another user's private fragments in the same org are invisible (their owner sees them);
* session leakage: no pooled backend carries a tenant, the app's ``set_config(..., true)`` never reaches
  the next client, and a session-level setting does (the control: the probe can see a leak);
* storage: with org A's JWT, org B's objects cannot be listed or read; B's JWT can.

Every write probe runs inside a transaction that is rolled back: nothing is ever committed.
"""

from __future__ import annotations

import contextlib
import secrets
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_cutover.checks.base import CheckResult, result, run_sync
from pytest_cutover.checks.db import config_connection
from pytest_cutover.checks.rls_audit import display_name, qualify
from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.redact import redact, reveal
from pytest_cutover.util.jwt import mint_jwt
from pytest_cutover.util.sql import quote_ident

if TYPE_CHECKING:
    import asyncpg

    from pytest_cutover.config import CutoverConfig

__all__ = [
    "PROBES",
    "IsolationError",
    "Tenants",
    "check_private_tier",
    "check_session_leakage",
    "check_storage_isolation",
    "probe_table",
]

PROBES = ("read", "insert", "update", "delete", "no-context")
_PHANTOM_ORG = "cutover-probe-no-such-org"


class IsolationError(CutoverError, RuntimeError):
    """A probe could not be set up (no rows to probe, a control role that does not bypass RLS)."""


@dataclass(frozen=True)
class Tenants:
    """The table, its tenant key and type, and the two orgs probed (B owns rows; A is someone else)."""

    table: str
    key: str
    key_type: str
    org_a: str
    org_b: str
    b_rows: int
    a_rows: int


async def _in_tx(conn: asyncpg.Connection, config: CutoverConfig, org: str | None, user: str | None,
                 body: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``body`` in a transaction that sets the tenant like the app (``org is None``: no context), rolled back."""
    s = config.schema_
    tx = conn.transaction()
    await tx.start()
    try:
        if org is not None:
            await conn.execute("select set_config($1, $2, true), set_config($3, $4, true)",
                               s.rls_org_setting, org, s.rls_user_setting, user or "")
        return await body()
    finally:
        await tx.rollback()


async def _control_bypasses(control: asyncpg.Connection) -> None:
    row = await control.fetchrow("select current_user as u, rolsuper or rolbypassrls as b from pg_roles "
                                 "where rolname = current_user")
    if not row["b"]:
        raise IsolationError(f"the control role {row['u']} (target.database_url) does not bypass RLS, so it cannot "
                             f"show that the probes would see a leak",
                             hint="set target.database_url to the direct connection as postgres (BYPASSRLS on "
                                  "Supabase) or another BYPASSRLS role")


async def _tenant_key(control: asyncpg.Connection, config: CutoverConfig, table: str) -> tuple[str, str]:
    from pytest_cutover.checks.rls_audit import discover_tenant_tables

    found = await discover_tenant_tables(control, config.schema_.tenant_column, config.schema_.tenant_schemas)
    key = found.get(table)
    if key is None:
        raise IsolationError(f"{display_name(table)} has no tenant column {config.schema_.tenant_column} and is not "
                             f"the table that column references",
                             hint="remove it from schema.tenant_tables or set schema.tenant_column")
    key_type = await control.fetchval("select format_type(atttypid, atttypmod) from pg_attribute "
                                      "where attrelid = to_regclass($1) and attname = $2", quote_ident(table), key)
    return key, key_type


async def _tenants(control: asyncpg.Connection, config: CutoverConfig, table: str) -> Tenants:
    key, key_type = await _tenant_key(control, config, table)
    rows = await control.fetch(f"select {quote_ident(key)}::text as org, count(*) as n from {quote_ident(table)} "
                               f"group by 1 order by 2 desc, 1 limit 2")
    if not rows:
        raise IsolationError(f"{display_name(table)} has no rows, so cross-tenant access cannot be probed",
                             hint="run the rls stage after the data is on the target (after sync)")
    b = rows[0]
    a = rows[1] if len(rows) > 1 else None
    return Tenants(table=table, key=key, key_type=key_type, org_b=b["org"], b_rows=int(b["n"]),
                   org_a=a["org"] if a else _phantom_org(key_type), a_rows=int(a["n"]) if a else 0)


def _phantom_org(key_type: str) -> str:
    """An org id no tenant has, valid for the key's type (org A when only one org owns rows)."""
    if key_type == "uuid":
        return "00000000-0000-0000-0000-000000000000"
    if key_type in ("integer", "bigint", "smallint", "numeric"):
        return "-1"
    return _PHANTOM_ORG


def _count_sql(t: Tenants) -> str:
    return f"select count(*) from {quote_ident(t.table)} where {quote_ident(t.key)} = $1::{t.key_type}"


async def _checksum(control: asyncpg.Connection, t: Tenants) -> str:
    return await control.fetchval(
        f"select md5(coalesce(string_agg(h, '' order by h), '')) from (select md5(x::text) as h from "
        f"{quote_ident(t.table)} x where {quote_ident(t.key)} = $1::{t.key_type}) s", t.org_b)


async def _sample_row(control: asyncpg.Connection, t: Tenants, user_column: str) -> tuple[str, str | None]:
    cols = await control.fetch("select attname from pg_attribute where attrelid = to_regclass($1) and attnum > 0 "
                               "and not attisdropped", quote_ident(t.table))
    has_user = any(c["attname"] == user_column for c in cols)
    user_expr = f"x.{quote_ident(user_column)}::text" if has_user else "null"
    row = await control.fetchrow(f"select row_to_json(x)::text as j, {user_expr} as u from {quote_ident(t.table)} x "
                                 f"where {quote_ident(t.key)} = $1::{t.key_type} order by pg_column_size(x.*) "
                                 f"limit 1", t.org_b)
    return row["j"], row["u"]


def _insert_sql(t: Tenants, columns: list[str]) -> str:
    cols = ", ".join(quote_ident(c) for c in columns)
    return (f"insert into {quote_ident(t.table)} ({cols}) overriding system value select {cols} from "
            f"json_populate_record(null::{quote_ident(t.table)}, $1::json)")


async def _insertable_columns(control: asyncpg.Connection, table: str) -> list[str]:
    return [r[0] for r in await control.fetch(
        "select attname from pg_attribute where attrelid = to_regclass($1) and attnum > 0 and not attisdropped "
        "and attgenerated = '' order by attnum", quote_ident(table))]


async def _try(conn: asyncpg.Connection, sql: str, *args: Any) -> tuple[str | None, str, str]:
    """Run ``sql`` under a savepoint: (sqlstate or None, message, command status)."""
    import asyncpg

    try:
        async with conn.transaction():  # a savepoint inside the probe's transaction
            status = await conn.execute(sql, *args)
        return None, "", status
    except asyncpg.PostgresError as exc:
        return exc.sqlstate, str(exc), ""


def _rows(status: str) -> int:
    parts = status.split()
    return int(parts[-1]) if parts and parts[-1].isdigit() else 0


def _rls_refusal(state: str | None, message: str) -> bool:
    return state == "42501" and "row-level security" in message


async def _probe_move_into_b(app: asyncpg.Connection, config: CutoverConfig, t: Tenants, tag: str, name: str,
                             figures: dict[str, Any]) -> list[str]:
    """The update probe's second half: can org A's context move one of its own rows into org B?"""
    k = quote_ident(t.key)
    mv_state, _, mv_status = await _in_tx(app, config, t.org_a, None, lambda: _try(
        app, f"update {quote_ident(t.table)} set {k} = $2::{t.key_type} where ctid = (select ctid from "
             f"{quote_ident(t.table)} where {k} = $1::{t.key_type} limit 1)", t.org_a, t.org_b))
    figures.update(move_into_b_sqlstate=mv_state)
    if mv_state is None and _rows(mv_status):
        return [f"RLS LEAK: {tag} can move its own row into org {t.org_b} (rolled back): add WITH CHECK "
                f"({t.key} = nullif(current_setting('{config.schema_.rls_org_setting}', true), '')) to the UPDATE "
                f"policy of {name}"]
    return []


async def _probe(config: CutoverConfig, table: str, probe: str) -> CheckResult:
    s = config.schema_
    key_table = qualify(table)
    name = display_name(key_table)
    async with config_connection(config, "target.database_url") as control, \
            config_connection(config, "target.app_database_url") as app:
        await _control_bypasses(control)
        t = await _tenants(control, config, key_table)
        count_b = _count_sql(t)
        role = await app.fetchval("select current_user")
        ctrl_role = await control.fetchval("select current_user")
        figures: dict[str, Any] = {"org_a": t.org_a, "org_b": t.org_b, "b_rows": t.b_rows}
        problems: list[str] = []
        tag = f"{name} as {role} with org {t.org_a}'s context"
        if probe == "read":
            seen = await _in_tx(app, config, t.org_a, None, lambda: app.fetchval(count_b, t.org_b))
            outside = await _in_tx(app, config, t.org_a, None, lambda: app.fetchval(
                f"select count(*) from {quote_ident(t.table)} where {quote_ident(t.key)} is distinct from "
                f"$1::{t.key_type}", t.org_a))
            control_seen = await _in_tx(control, config, t.org_a, None, lambda: control.fetchval(count_b, t.org_b))
            figures.update(app_rows_of_b=seen, app_rows_outside_a=outside, control_rows_of_b=control_seen)
            if seen:
                problems.append(f"RLS LEAK: {tag} reads {seen} of org {t.org_b}'s {t.b_rows} rows: check the "
                                f"policies on {name} (rollback trigger: RLS data leakage)")
            elif outside:
                problems.append(f"RLS LEAK: {tag} reads {outside} rows of other orgs: check the policies on {name}")
            evidence = f"{tag}: {seen} of org {t.org_b}'s rows visible; control {ctrl_role}: {control_seen}"
            control_ok = control_seen > 0
        elif probe == "no-context":
            seen = await _in_tx(app, config, None, None,
                                lambda: app.fetchval(f"select count(*) from {quote_ident(t.table)}"))
            control_seen = await control.fetchval(f"select count(*) from {quote_ident(t.table)}")
            figures.update(app_rows_without_context=seen, control_rows=control_seen)
            if seen:
                problems.append(f"RLS LEAK: {name} as {role} WITHOUT a tenant context sees {seen} rows (should be "
                                f"none): a request that forgets set_config reads other orgs' data; make every "
                                f"policy compare with nullif(current_setting('{s.rls_org_setting}', true), '')")
            evidence = f"{name} as {role} without context: {seen} rows visible; control {ctrl_role}: {control_seen}"
            control_ok = control_seen > 0
        elif probe == "insert":
            row_json, row_user = await _sample_row(control, t, s.user_column)
            sql = _insert_sql(t, await _insertable_columns(control, t.table))
            state, msg, _ = await _in_tx(app, config, t.org_a, None, lambda: _try(app, sql, row_json))
            own_state, own_msg, _ = await _in_tx(app, config, t.org_b, row_user, lambda: _try(app, sql, row_json))
            ctl_state, ctl_msg, _ = await _in_tx(control, config, t.org_a, None, lambda: _try(control, sql, row_json))
            figures.update(app_sqlstate=state, own_context_sqlstate=own_state, control_sqlstate=ctl_state)
            if not _rls_refusal(state, msg):
                outcome = f"SQLSTATE {state}: {msg.splitlines()[0] if msg else ''}" if state else "accepted"
                problems.append(f"RLS LEAK: {tag} may insert a row for org {t.org_b} ({outcome}); expected "
                                f"SQLSTATE 42501 'new row violates row-level security policy': give {name} an "
                                f"INSERT policy WITH CHECK ({t.key} = nullif(current_setting('{s.rls_org_setting}', "
                                f"true), ''))")
            if _rls_refusal(own_state, own_msg):
                problems.append(f"control failed: the same row with org {t.org_b}'s own context is refused by RLS "
                                f"too ({own_msg.splitlines()[0]}), so the probe cannot tell isolation from a broken "
                                f"insert policy on {name}")
            evidence = (f"{tag}: insert of org {t.org_b}'s row -> {state or 'accepted'}; with org {t.org_b}'s context "
                        f"-> {own_state or 'accepted'}; control {ctrl_role} -> {ctl_state or 'accepted'}")
            control_ok = not _rls_refusal(ctl_state, ctl_msg)
        elif probe in ("update", "delete"):
            before = await _checksum(control, t)
            k = quote_ident(t.key)
            stmt = (f"update {quote_ident(t.table)} set {k} = {k} where {k} = $1::{t.key_type}" if probe == "update"
                    else f"delete from {quote_ident(t.table)} where {k} = $1::{t.key_type}")
            state, msg, status = await _in_tx(app, config, t.org_a, None, lambda: _try(app, stmt, t.org_b))
            ctl_state, ctl_msg, ctl_status = await _in_tx(control, config, t.org_a, None,
                                                          lambda: _try(control, stmt, t.org_b))
            after = await _checksum(control, t)
            affected, ctl_affected = _rows(status), _rows(ctl_status)
            figures.update(app_rows_affected=affected, control_rows_affected=ctl_affected, b_unchanged=before == after)
            if state is not None and not _rls_refusal(state, msg):
                problems.append(f"{tag}: {probe} aimed at org {t.org_b} failed with SQLSTATE {state} "
                                f"({msg.splitlines()[0]}) instead of affecting 0 rows: the probe is inconclusive")
            if affected:
                problems.append(f"RLS LEAK: {tag} {probe}s {affected} of org {t.org_b}'s rows (rolled back): give "
                                f"{name} a {probe.upper()} policy USING ({t.key} = nullif(current_setting("
                                f"'{s.rls_org_setting}', true), ''))")
            if before != after:
                problems.append(f"org {t.org_b}'s rows in {name} changed during the probe (checksum {before[:8]} -> "
                                f"{after[:8]}): something wrote them; investigate before going on")
            if probe == "update" and t.a_rows:
                problems += await _probe_move_into_b(app, config, t, tag, name, figures)
            evidence = (f"{tag}: {probe} of org {t.org_b}'s rows affected {affected}; control {ctrl_role}: "
                        f"{ctl_affected or ctl_state}; org {t.org_b}'s checksum unchanged: {before == after}")
            # A foreign key refusing the control's delete still proves the control reached B's rows.
            control_ok = ctl_affected > 0 or ctl_state in ("23503", "23001")
        else:
            raise ValueError(f"unknown probe {probe!r}; known: {', '.join(PROBES)}")
        if not control_ok:
            problems.append(f"negative control failed: {ctrl_role} (BYPASSRLS) did not reach org {t.org_b}'s rows in "
                            f"{name} with the same {probe} probe, so a pass would prove nothing")
    return result(f"isolation[{name}:{probe}]", problems, evidence, figures)


def probe_table(config: CutoverConfig, table: str, probe: str) -> CheckResult:
    """Run one cross-tenant ``probe`` (see :data:`PROBES`) on ``table`` with its negative control."""
    return run_sync(_probe(config, table, probe), timeout=config.thresholds.connect_timeout_s * 4 + 120)


# ------------------------------------------------------------------------------------------------ private tier
async def _private_tier(config: CutoverConfig) -> CheckResult:
    s = config.schema_
    table = qualify(s.fragments_table)
    name = display_name(table)
    tier, user, org = quote_ident(s.tier_column or "tier"), quote_ident(s.user_column), quote_ident(s.tenant_column)
    async with config_connection(config, "target.database_url") as control, \
            config_connection(config, "target.app_database_url") as app:
        await _control_bypasses(control)
        owner = await control.fetchrow(
            f"select {org}::text as org, {user}::text as owner, count(*) as n from {quote_ident(table)} "
            f"where {tier} = $1 group by 1, 2 order by 3 desc, 1, 2 limit 1", s.private_tier)
        if owner is None:
            raise IsolationError(f"{name} has no {s.private_tier} rows, so the private tier cannot be probed",
                                 hint="run the rls stage after the data is on the target")
        other = await control.fetchval(
            f"select {user}::text from {quote_ident(table)} where {org}::text = $1 and {user}::text <> $2 "
            f"order by 1 limit 1", owner["org"], owner["owner"]) or "cutover-probe-other-user"
        sql = (f"select count(*) from {quote_ident(table)} where {tier} = $1 and {user}::text = $2")
        seen = await _in_tx(app, config, owner["org"], other, lambda: app.fetchval(sql, s.private_tier, owner["owner"]))
        own = await _in_tx(app, config, owner["org"], owner["owner"],
                           lambda: app.fetchval(sql, s.private_tier, owner["owner"]))
        ctl = await _in_tx(control, config, owner["org"], other,
                           lambda: control.fetchval(sql, s.private_tier, owner["owner"]))
    problems = []
    if seen:
        problems.append(f"RLS LEAK: in org {owner['org']}, user {other} reads {seen} of user {owner['owner']}'s "
                        f"{owner['n']} {s.private_tier} fragments in {name}: a permissive policy OR'ed with the tier "
                        f"policy exposes them; list them with SELECT polname, pg_get_expr(polqual, polrelid) FROM "
                        f"pg_policy WHERE polrelid = '{table}'::regclass and drop the one without the tier check")
    if not own:
        problems.append(f"control failed: user {owner['owner']} does not see their own {s.private_tier} fragments "
                        f"in {name} through the app role, so the probe proves nothing")
    if not ctl:
        problems.append(f"negative control failed: the BYPASSRLS role does not see user {owner['owner']}'s "
                        f"{s.private_tier} fragments")
    evidence = (f"org {owner['org']}: user {other} sees {seen} of user {owner['owner']}'s {owner['n']} private "
                f"fragments; the owner sees {own}; control sees {ctl}")
    return result(f"isolation[{name}:private-tier]", problems, evidence,
                  {"other_user_sees": seen, "owner_sees": own, "control_sees": ctl})


def check_private_tier(config: CutoverConfig) -> CheckResult:
    """Another user's private fragments in the same org are invisible; their owner and the control see them."""
    if not config.schema_.tier_column:
        raise ConfigError("schema.tier_column is not set: the app has no private tier to probe",
                          hint="set schema.tier_column (and schema.private_tier) if fragments have a visibility tier")
    return run_sync(_private_tier(config), timeout=config.thresholds.connect_timeout_s * 3 + 60)


# ------------------------------------------------------------------------------------------------ session leakage
async def _session_leakage(config: CutoverConfig, clients: int = 6, rounds: int = 20) -> CheckResult:
    import asyncio

    from pytest_cutover.checks.db import connect
    from pytest_cutover.checks.pooler import observe_pool

    s = config.schema_
    dsn = config.target.app_database_url
    if dsn is None:
        raise ConfigError("missing config key target.app_database_url", hint="set it to the 6543 pooler URL")
    ca, timeout = config.target.ca_file, config.thresholds.connect_timeout_s
    conns = list(await asyncio.gather(*(connect(dsn, ca_file=ca, timeout=timeout, what="target.app_database_url")
                                        for _ in range(clients))))
    problems: list[str] = []
    marker = f"cutover-probe-{secrets.token_hex(6)}"
    read = ("select pg_backend_pid() as pid, current_setting($1, true) as org, current_setting($2, true) as usr, "
            "case when current_setting($1, true) = $3 then set_config($1, '', false) end as cleared")
    try:
        async def hold(conn: Any) -> Any:
            async with conn.transaction():
                row = await conn.fetchrow(read, s.rls_org_setting, s.rls_user_setting, marker)
                await asyncio.sleep(0.02)  # keep the backend while the others take theirs: pool pressure
            return row

        stale = [r for r in await asyncio.gather(*(hold(c) for c in conns)) if r["org"] or r["usr"]]
        backends = set()
        for r in stale:
            problems.append(f"pooled backend {r['pid']} already carries {s.rls_org_setting}={r['org']!r} "
                            f"{s.rls_user_setting}={r['usr']!r} from an earlier client: someone sets the tenant at "
                            f"session level (plain SET or set_config(..., false)); find it and use "
                            f"set_config(..., true)")
        first = conns[0]
        async with first.transaction():
            pid = await first.fetchval("select pg_backend_pid() from (select set_config($1, $2, true)) s",
                                       s.rls_org_setting, marker)
        hits = leaks = 0
        for _ in range(rounds):
            for row in await asyncio.gather(*(hold(c) for c in conns[1:])):
                backends.add(row["pid"])
                if row["pid"] == pid:
                    hits += 1
                if row["org"] == marker:
                    leaks += 1
            if hits >= 3:
                break
        if leaks:
            problems.append(f"RLS LEAK: the tenant set with set_config('{s.rls_org_setting}', ..., true) was seen by "
                            f"{leaks} later transactions of other clients through the pooler")
        if not hits:
            problems.append(f"inconclusive: no later transaction ran on backend {pid} in {rounds} rounds, so the "
                            f"probe could not look for leakage")
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)
    control = await observe_pool(dsn, ca_file=ca, timeout=timeout)
    if control.mode != "transaction":
        problems.append(f"negative control failed: a session-level setting was not visible across clients ("
                        f"{control.evidence}), so this pooler cannot show session leakage; is "
                        f"target.app_database_url the transaction pooler?")
    evidence = (f"{len(stale)} of {clients} pooled backends carried a tenant; set_config(..., true) on backend {pid}: "
                f"{hits} later transactions on that backend, {leaks} saw it; control (session SET): "
                f"{control.seen_by_others} cross-client sightings")
    return result("isolation[session-leakage]", problems, evidence,
                  {"stale_backends": len(stale), "same_backend_hits": hits, "leaks": leaks,
                   "control_sightings": control.seen_by_others})


def check_session_leakage(config: CutoverConfig) -> CheckResult:
    """Session-level tenant state does not survive on pooled backends, and the probe can see it when it does."""
    return run_sync(_session_leakage(config), timeout=config.thresholds.connect_timeout_s * 4 + 90)


# ------------------------------------------------------------------------------------------------ storage
def _storage_client(config: CutoverConfig) -> Any:
    import httpx

    verify: Any = ssl.create_default_context(cafile=config.target.ca_file) if config.target.ca_file else True
    return httpx.Client(base_url=(config.target.storage_url or "").rstrip("/"), verify=verify,
                        timeout=config.thresholds.connect_timeout_s)


def _headers(token: str, apikey: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "apikey": apikey}


def _list(client: Any, bucket: str, prefix: str, token: str, apikey: str) -> tuple[int, list[dict[str, Any]]]:
    resp = client.post(f"/object/list/{bucket}", json={"prefix": prefix, "limit": 100, "offset": 0},
                       headers=_headers(token, apikey))
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else None
    return resp.status_code, body if isinstance(body, list) else []


def _first_object(client: Any, bucket: str, prefix: str, token: str, apikey: str, depth: int = 5) -> str | None:
    _, entries = _list(client, bucket, prefix, token, apikey)
    for entry in entries:
        path = f"{prefix}{entry['name']}"
        if entry.get("id"):
            return path
        if depth > 0:
            found = _first_object(client, bucket, path + "/", token, apikey, depth - 1)
            if found:
                return found
    return None


def check_storage_isolation(config: CutoverConfig) -> CheckResult:
    """Org A's user JWT cannot list or read org B's objects; B's JWT and the service key can (controls)."""
    t = config.target
    for key, value in (("target.storage_url", t.storage_url), ("target.storage_key", t.storage_key),
                       ("target.jwt_secret", t.jwt_secret)):
        if not value:
            raise ConfigError(f"missing config key {key}", hint=f"set {key}: the storage probes need it")
    service, secret, bucket = reveal(t.storage_key) or "", reveal(t.jwt_secret) or "", t.bucket
    uploaded: str | None = None
    with _storage_client(config) as client:
        status, folders = _list(client, bucket, "", service, service)
        if status != 200:
            raise IsolationError(f"listing bucket {bucket} with the service key answered HTTP {status}",
                                 hint="check target.storage_url and target.storage_key")
        orgs = sorted(e["name"] for e in folders if not e.get("id"))
        path = None
        for org in orgs:
            path = _first_object(client, bucket, f"{org}/", service, service)
            if path:
                break
        try:
            db_orgs = _orgs_from_db(config)
            if path is None:
                org_b = orgs[0] if orgs else db_orgs[0]
                uploaded = path = f"{org_b}/cutover-rls-probe/{uuid.uuid4().hex}.txt"
                resp = client.post(f"/object/{bucket}/{path}", content=b"cutover rls probe",
                                   headers={**_headers(service, service), "content-type": "text/plain"})
                if resp.status_code != 200:
                    raise IsolationError(f"uploading probe object {path} with the service key answered HTTP "
                                         f"{resp.status_code}: {redact(resp.text[:200])}",
                                         hint="check target.storage_key (service_role)")
            org_b = path.split("/", 1)[0]
            org_a = next((o for o in [*orgs, *db_orgs] if o != org_b), _PHANTOM_ORG)
            folder = path.rsplit("/", 1)[0] + "/"
            token_a = mint_jwt(secret, role="authenticated", org_id=org_a, sub=str(uuid.uuid4()), ttl_s=300)
            token_b = mint_jwt(secret, role="authenticated", org_id=org_b, sub=str(uuid.uuid4()), ttl_s=300)
            a_list = _list(client, bucket, folder, token_a, service)
            a_read = client.get(f"/object/authenticated/{bucket}/{path}", headers=_headers(token_a, service))
            b_list = _list(client, bucket, folder, token_b, service)
            b_read = client.get(f"/object/authenticated/{bucket}/{path}", headers=_headers(token_b, service))
            s_read = client.get(f"/object/authenticated/{bucket}/{path}", headers=_headers(service, service))
        finally:
            if uploaded:
                with contextlib.suppress(Exception):
                    client.request("DELETE", f"/object/{bucket}", json={"prefixes": [uploaded]},
                                   headers=_headers(service, service))
    problems = []
    if a_list[1]:
        problems.append(f"STORAGE LEAK: a user of org {org_a} lists {len(a_list[1])} entries in org {org_b}'s folder "
                        f"{folder} of bucket {bucket}: the SELECT policy on storage.objects must require "
                        f"(storage.foldername(name))[1] = auth.jwt() ->> 'org_id'")
    if a_read.status_code == 200:
        problems.append(f"STORAGE LEAK: a user of org {org_a} downloads org {org_b}'s object {path} (HTTP 200): fix "
                        f"the storage.objects SELECT policy, and make sure the bucket is not public")
    if not b_list[1] or b_read.status_code != 200:
        problems.append(f"control failed: org {org_b}'s own user cannot list/read {path} (list {len(b_list[1])} "
                        f"entries, read HTTP {b_read.status_code}: {redact(b_read.text[:160])}), so the denial for "
                        f"org {org_a} proves nothing; check target.jwt_secret and the storage SELECT policy")
    if s_read.status_code != 200:
        problems.append(f"negative control failed: the service key (BYPASSRLS) cannot read {path} (HTTP "
                        f"{s_read.status_code})")
    evidence = (f"bucket {bucket}, object {path}{' (uploaded for the probe, deleted after)' if uploaded else ''}: "
                f"org {org_a}'s JWT lists {len(a_list[1])} and reads HTTP {a_read.status_code}; org {org_b}'s JWT "
                f"lists {len(b_list[1])} and reads HTTP {b_read.status_code}; service key reads HTTP "
                f"{s_read.status_code}")
    return result("isolation[storage]", problems, evidence,
                  {"a_listed": len(a_list[1]), "a_read_status": a_read.status_code, "b_listed": len(b_list[1]),
                   "b_read_status": b_read.status_code, "service_read_status": s_read.status_code})


async def _orgs_from_db_async(conn: asyncpg.Connection, config: CutoverConfig) -> list[str]:
    """The two orgs owning the most threads (B, then A), asked on ``conn``."""
    s = config.schema_
    orgs = [r[0] for r in await conn.fetch(
        f"select {quote_ident(s.tenant_column)}::text from {quote_ident(qualify(s.threads_table))} "
        f"group by 1 order by count(*) desc, 1 limit 2")]
    if not orgs:
        raise IsolationError("no org owns threads on the target, so no org folder can be probed",
                             hint="run the rls stage after the data is on the target")
    return orgs


def _orgs_from_db(config: CutoverConfig) -> list[str]:
    """The two orgs owning the most threads: B for a probe object when the bucket is empty, and A."""

    async def ask() -> list[str]:
        async with config_connection(config, "target.database_url") as conn:
            return await _orgs_from_db_async(conn, config)

    return run_sync(ask(), timeout=config.thresholds.connect_timeout_s + 30)
