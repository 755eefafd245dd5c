"""The static RLS posture: what the catalog says about every tenant table and the role the app logs in as.

Why static and not only probes: a probe proves one path is closed today; the catalog says *why* and what
to change.  Supabase's linter checks RLS enabled and ``USING (true)`` on writes, but not FORCE, BYPASSRLS
on the app's login role, table ownership or ``FOR SELECT USING (true)`` (field notes): those are ours.

Rules (runbook "Storage bucket created with RLS policies" / design "RLS is enabled *and* forced"):

* every tenant table (tables carrying the tenant column in ``schema.tenant_schemas``, discovered from
  ``pg_catalog``, plus ``schema.tenant_tables``) has RLS enabled AND forced;
* permissive policies that apply to the app role cover SELECT, INSERT, UPDATE and DELETE (or ALL);
* none of those policies is ``USING (true)`` or has a branch that does not bind the tenant, i.e. compare the
  tenant column for equality with the tenant setting or a trusted claim (permissive policies are OR'ed with
  each other, so such a branch opens every org's rows);
* the app role (``current_user`` of ``target.app_database_url``, asked through it: Supabase's pooler
  user ``postgres.<ref>`` maps to ``postgres``) is not a superuser, has no BYPASSRLS and owns no tenant table.

Every problem is a sentence with the SQL that fixes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_cutover.checks.base import CheckResult, result, run_sync
from pytest_cutover.checks.db import config_connection
from pytest_cutover.util.sql import quote_ident

if TYPE_CHECKING:
    import asyncpg

    from pytest_cutover.config import CutoverConfig

__all__ = [
    "COMMANDS",
    "Policy",
    "Posture",
    "RolePosture",
    "TablePosture",
    "audit_role",
    "audit_table",
    "configured_tables",
    "discover_tenant_tables",
    "display_name",
    "qualify",
    "read_posture",
    "read_posture_async",
    "tenant_predicate",
    "trusted_source",
    "unbound_branches",
]

COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE")
_CMD = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def qualify(table: str) -> str:
    """``threads`` -> ``public.threads`` (an explicit schema is kept)."""
    return table if "." in table else f"public.{table}"


def display_name(table: str) -> str:
    """``public.threads`` -> ``threads`` (other schemas stay qualified): the name operators use."""
    return table.removeprefix("public.")


def configured_tables(config: CutoverConfig | None) -> list[str]:
    """The tenant tables known without a database (sorted, display names): configured, else the parity list.

    The suite parametrizes over this list at collection (identical on every xdist worker); a separate
    test discovers the rest from the catalog so that no tenant table escapes the audit.
    """
    from pytest_cutover.config import SchemaConfig

    schema = config.schema_ if config is not None else SchemaConfig()
    names = set(schema.tenant_tables) or set(schema.parity_tables)
    return sorted({display_name(qualify(n)) for n in names})


@dataclass(frozen=True)
class Policy:
    """One row of ``pg_policy``, with whether it applies to the app role."""

    name: str
    command: str            # SELECT | INSERT | UPDATE | DELETE | ALL
    permissive: bool
    roles: tuple[str, ...]
    applies_to_app: bool
    using: str | None
    check: str | None

    def commands(self) -> set[str]:
        return set(COMMANDS) if self.command == "ALL" else {self.command}


@dataclass(frozen=True)
class TablePosture:
    """RLS flags, owner and policies of one table."""

    table: str               # schema.table
    exists: bool
    owner: str | None = None
    enabled: bool = False
    forced: bool = False
    policies: tuple[Policy, ...] = ()

    @property
    def name(self) -> str:
        return display_name(self.table)


@dataclass(frozen=True)
class RolePosture:
    """The role the app really is once logged in."""

    name: str
    superuser: bool
    bypassrls: bool


@dataclass(frozen=True)
class Posture:
    """Everything the audit needs, read once."""

    role: RolePosture
    tables: dict[str, TablePosture]               # schema.table -> posture
    keys: dict[str, str | None]                   # schema.table -> its tenant column (None: unknown)
    discovered: tuple[str, ...]                   # schema.table carrying the tenant column
    configured: tuple[str, ...]
    tenant_column: str
    org_setting: str
    user_setting: str
    admin_role_hint: str = "postgres"
    user_column: str | None = None
    trusted_functions: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)

    def owned_by_app(self) -> list[str]:
        return sorted(t.name for t in self.tables.values() if t.exists and t.owner == self.role.name)


# ------------------------------------------------------------------------------------------------ catalog
_DISCOVER_SQL = """
select n.nspname || '.' || c.relname
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
where a.attname = $1 and not a.attisdropped and a.attnum > 0
  and c.relkind in ('r', 'p') and n.nspname = any($2::text[])
order by 1
"""

_REFERENCED_SQL = """
select distinct rn.nspname || '.' || rc.relname as tbl, ra.attname as col
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
join pg_class rc on rc.oid = k.confrelid
join pg_namespace rn on rn.oid = rc.relnamespace
join pg_attribute ra on ra.attrelid = k.confrelid and ra.attnum = k.confkey[1]
where k.contype = 'f' and cardinality(k.conkey) = 1 and a.attname = $1 and n.nspname = any($2::text[])
order by 1
"""

_TABLE_SQL = """
select c.relrowsecurity as enabled, c.relforcerowsecurity as forced, pg_get_userbyid(c.relowner) as owner
from pg_class c where c.oid = to_regclass($1)
"""

_POLICY_SQL = """
select p.polname as name, p.polcmd::text as cmd, p.polpermissive as permissive,
       array(select case when r = 0 then 'public' else pg_get_userbyid(r) end from unnest(p.polroles) r) as roles,
       (0 = any(p.polroles) or exists (select 1 from unnest(p.polroles) r
                                       where r <> 0 and pg_has_role($2, r, 'MEMBER'))) as applies,
       pg_get_expr(p.polqual, p.polrelid) as using_expr, pg_get_expr(p.polwithcheck, p.polrelid) as check_expr
from pg_policy p where p.polrelid = to_regclass($1)
order by p.polname
"""

_ROLE_SQL = """
select current_user as name, r.rolsuper as superuser, r.rolbypassrls as bypassrls
from pg_roles r where r.rolname = current_user
"""


async def discover_tenant_tables(conn: asyncpg.Connection, tenant_column: str,
                                 schemas: Sequence[str]) -> dict[str, str]:
    """``schema.table`` -> tenant key column: every table with the tenant column, and the table that column
    references (the tenants table itself, e.g. ``orgs(id)``), sorted by name."""
    found = {r[0]: tenant_column for r in await conn.fetch(_DISCOVER_SQL, tenant_column, list(schemas))}
    for r in await conn.fetch(_REFERENCED_SQL, tenant_column, list(schemas)):
        found.setdefault(r["tbl"], r["col"])
    return dict(sorted(found.items()))


async def _table_posture(conn: asyncpg.Connection, table: str, role: str) -> TablePosture:
    row = await conn.fetchrow(_TABLE_SQL, quote_ident(table))
    if row is None:
        return TablePosture(table=table, exists=False)
    policies = tuple(
        Policy(name=p["name"], command=_CMD.get(p["cmd"], p["cmd"]), permissive=p["permissive"],
               roles=tuple(p["roles"]), applies_to_app=p["applies"], using=p["using_expr"], check=p["check_expr"])
        for p in await conn.fetch(_POLICY_SQL, quote_ident(table), role))
    return TablePosture(table=table, exists=True, owner=row["owner"], enabled=row["enabled"], forced=row["forced"],
                        policies=policies)


async def read_posture_async(config: CutoverConfig) -> Posture:
    """Ask the app's own connection who it is, and the catalog about every tenant table."""
    schema = config.schema_
    async with config_connection(config, "target.app_database_url") as app:
        row = await app.fetchrow(_ROLE_SQL)
    role = RolePosture(name=row["name"], superuser=row["superuser"], bypassrls=row["bypassrls"])
    key = "target.database_url" if config.target.database_url else "target.app_database_url"
    async with config_connection(config, key) as conn:
        admin_role = await conn.fetchval("select current_user")
        discovered = await discover_tenant_tables(conn, schema.tenant_column, schema.tenant_schemas)
        configured = sorted({qualify(t) for t in schema.tenant_tables})
        tables = {t: await _table_posture(conn, t, role.name) for t in sorted(set(discovered) | set(configured))}
    keys = {t: discovered.get(t) for t in tables}
    return Posture(role=role, tables=tables, keys=keys, discovered=tuple(discovered), configured=tuple(configured),
                   tenant_column=schema.tenant_column, org_setting=schema.rls_org_setting,
                   user_setting=schema.rls_user_setting, user_column=schema.user_column,
                   trusted_functions=tuple(config.rls.trusted_functions),
                   admin_role_hint=admin_role if admin_role != role.name else "postgres",
                   figures={"tenant_tables": len(tables), "app_role": role.name})


def read_posture(config: CutoverConfig) -> Posture:
    """:func:`read_posture_async` from synchronous code."""
    return run_sync(read_posture_async(config), timeout=config.thresholds.connect_timeout_s * 4 + 30)


def tenant_predicate(column: str, setting: str) -> str:
    """The model tenant test: ``setting`` read once per statement (an InitPlan, Supabase's
    ``auth_rls_initplan`` form), ``''`` after a SET LOCAL ended read as NULL (no row matches)."""
    return f"{column} = nullif((select current_setting('{setting}', true)), '')"


# ------------------------------------------------------------------------------------------------ expressions
def _strip_parens(expr: str) -> str:
    text = expr.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _outside_quotes(text: str) -> Iterator[tuple[int, str, int]]:
    """``(index, char, paren depth after it)`` for every character outside single-quoted SQL strings."""
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            depth += (ch == "(") - (ch == ")")
            yield i, ch, depth


def _closing(text: str, start: int) -> int:
    """Index of the parenthesis closing the one at ``start`` (-1 when unbalanced)."""
    opened = None
    for i, ch, depth in _outside_quotes(text):
        if i == start:
            opened = depth - 1
        elif opened is not None and ch == ")" and depth == opened:
            return i
    return -1


def _split_top(text: str, op: str) -> list[str]:
    """``text`` split on ``op`` (AND/OR) where it is not inside parentheses or quotes."""
    token, upper = f" {op} ", text.upper()
    parts, start = [], 0
    for i, _, depth in _outside_quotes(text):
        if i >= start and depth == 0 and upper.startswith(token, i):
            parts.append(text[start:i])
            start = i + len(token)
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


_SUBQUERY = re.compile(r"\(\s*SELECT\b", re.I)
_UNTRUSTED = ("user_metadata", "raw_user_meta_data")


def _references(text: str, column: str) -> bool:
    """Does ``text`` name ``column`` (bare, qualified or quoted) outside string literals?"""
    bare = [" "] * len(text)
    for i, ch, _ in _outside_quotes(text):
        bare[i] = ch
    return bool(re.search(r'(?<![\w$])"?' + re.escape(column) + r'"?(?![\w$(])', "".join(bare), re.I))


def _without_subqueries(text: str) -> str:
    """``text`` with every parenthesized ``SELECT`` removed (a membership lookup may name the column inside)."""
    out = text
    while (m := _SUBQUERY.search(out)) is not None:
        end = _closing(out, m.start())
        out = out[:m.start()] + "()" + (out[end + 1:] if end >= 0 else "")
    return out


def trusted_source(text: str, settings: Iterable[str]) -> bool:
    """Is ``text`` the caller's identity: the tenant/user setting, a JWT claim other than ``user_metadata``
    (which the user edits), ``auth.uid()``, or a subquery keyed by one of those (a membership lookup)?

    ``current_user``, ``auth.role()`` and literals are not: every caller of the same role shares them.
    """
    low = text.lower()
    if any(u in low for u in _UNTRUSTED):
        return False
    if "current_setting(" in low and any(f"'{s.lower()}'" in low for s in settings if s):
        return True
    if "request.jwt.claim" in low and "current_setting(" in low and "'role'" not in low:
        return True
    if re.search(r"auth\.jwt\(\)", low) and "'role'" not in low and "'aud'" not in low:
        return True
    return "auth.uid()" in low


_COLUMN = re.compile(r'(?:"?[a-z_][\w$]*"?\.)?"?[a-z_][\w$]*"?', re.I)


def _caller_id(text: str) -> bool:
    """Is ``text`` the calling user's id: ``auth.uid()`` or the JWT's ``sub`` claim?"""
    low = text.lower()
    return not any(u in low for u in _UNTRUSTED) and ("auth.uid()" in low or (
        ("auth.jwt()" in low or "request.jwt.claim" in low) and "'sub'" in low))


def _split_equality(atom: str) -> tuple[str, str] | None:
    """``a = b`` at the top level (not ``<=``, ``>=``, ``<>``, ``!=``), else None."""
    for i, ch, depth in _outside_quotes(atom):
        if ch == "=" and depth == 0 and atom[i - 1:i] not in ("<", ">", "!") and atom[i + 1:i + 2] != ">":
            return atom[:i].strip(), atom[i + 1:].strip()
    return None


def _bound_atom(atom: str, tenant_column: str, settings: Iterable[str], trusted_functions: Iterable[str] = (),
                user_column: str | None = None) -> bool:
    """Does this atom compare the tenant column for EQUALITY with the caller's identity, without falling back
    to the column itself (``coalesce(nullif(setting, ''), org_id)`` is true for every row)?  A row tied to
    the calling user (``user_id = auth.uid()``) is narrower than its tenant and binds as well."""
    text = _strip_parens(atom)
    low = text.lower()
    pair = _split_equality(text)
    member = re.match(r"(.+?)\s+IN\s+(\(\s*SELECT\b.*\))$", text, re.I | re.S)
    for column in (tenant_column, *([user_column] if user_column else [])):

        def side_ok(col: str, src: str, column: str = column) -> bool:
            return (_references(col, column) and trusted_source(src, settings)
                    and not _references(_without_subqueries(src), column))

        if pair is not None and (side_ok(*pair) or side_ok(pair[1], pair[0])):
            return True
        if member is not None and side_ok(member.group(1), member.group(2)):
            return True
        # EXISTS (SELECT ... WHERE m.org_id = t.org_id AND m.user_id = auth.uid()): a membership lookup.
        if low.startswith("exists") and _references(text, column) and trusted_source(text, settings):
            return True
    # Any column equal to the caller's own id (owner_id = auth.uid()) ties the row to that user: narrower
    # than a tenant.
    if pair is not None:
        for col, src in (pair, pair[::-1]):
            bare = _strip_parens(re.sub(r"::[\w ]+$", "", _strip_parens(col)))
            if (_COLUMN.fullmatch(bare) and _caller_id(src)
                    and not _references(_without_subqueries(src), bare.rsplit(".", 1)[-1].strip('"'))):
                return True
    # Declared membership helpers (rls.trusted_functions), e.g. private.is_member(org_id).
    return any(re.match(re.escape(fn.lower()) + r"\s*\(", low) and _references(text, tenant_column)
               for fn in trusted_functions)


def unbound_branches(expr: str | None, tenant_column: str, settings: Iterable[str], *,
                     trusted_functions: Iterable[str] = (), user_column: str | None = None) -> list[str]:
    """The parts of a policy expression that let rows through regardless of the org ([] when none).

    ``a OR b``: every disjunct must be bound; ``a AND b``: one bound conjunct binds the whole; an atom binds
    only by :func:`_bound_atom` (``length(org_id) > 0``, ``auth.uid() IS NOT NULL``, ``auth.role() =
    'authenticated'`` and ``current_user = 'app_user'`` do not).
    """
    if expr is None:
        return []
    settings = tuple(settings)
    kw: dict[str, Any] = {"trusted_functions": tuple(trusted_functions), "user_column": user_column}
    text = _strip_parens(expr)
    if text.lower() == "true":
        return ["true"]
    disjuncts = _split_top(text, "OR")
    if len(disjuncts) > 1:
        return [b for d in disjuncts for b in unbound_branches(d, tenant_column, settings, **kw)]
    conjuncts = _split_top(text, "AND")
    if len(conjuncts) > 1:
        return [] if any(not unbound_branches(c, tenant_column, settings, **kw) for c in conjuncts) else [text]
    return [] if _bound_atom(text, tenant_column, settings, **kw) else [text]


# ------------------------------------------------------------------------------------------------ verdicts
def audit_table(posture: Posture, table: str) -> CheckResult:
    """RLS enabled and forced, every command covered, no org-independent permissive policy, not app-owned."""
    key = qualify(table)
    t = posture.tables.get(key)
    name = display_name(key)
    role = posture.role.name
    column = posture.keys.get(key) or posture.tenant_column
    if t is None or not t.exists:
        return result(f"rls-posture[{name}]", [f"tenant table {name} does not exist on the target: create it, or "
                                               f"remove it from schema.tenant_tables"], f"{name}: missing")
    tname = name if re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?", name) else quote_ident(key)
    problems: list[str] = []
    if not t.enabled:
        problems.append(f"RLS is DISABLED on {name}: the app role sees every org's rows: run ALTER TABLE {tname} "
                        f"ENABLE ROW LEVEL SECURITY and ALTER TABLE {tname} FORCE ROW LEVEL SECURITY")
    elif not t.forced:
        if t.owner == role:
            problems.append(f"RLS is enabled but not FORCED on {name}, and the table owner is the app role {role}: "
                            f"run ALTER TABLE {tname} FORCE ROW LEVEL SECURITY (and ALTER TABLE {tname} OWNER TO "
                            f"{posture.admin_role_hint})")
        else:
            problems.append(f"RLS is enabled but not FORCED on {name} (owner {t.owner}): the owner is not filtered; "
                            f"run ALTER TABLE {tname} FORCE ROW LEVEL SECURITY")
    if t.owner == role and (t.forced or not t.enabled):
        if posture.admin_role_hint == role:  # the app logs in as the admin/owner role itself
            problems.append(f"the app role {role} owns {name}: the app logs in as the tables' owner, which can turn "
                            f"RLS off and rewrite its policies; give the app a least-privilege role (CREATE ROLE "
                            f"app_user LOGIN NOSUPERUSER NOBYPASSRLS; GRANT SELECT, INSERT, UPDATE, DELETE ON {tname} "
                            f"TO app_user) and put it in target.app_database_url")
        else:
            problems.append(f"the app role {role} owns {name}: an owner can turn RLS off and rewrite its policies; "
                            f"run ALTER TABLE {tname} OWNER TO {posture.admin_role_hint} and GRANT SELECT, INSERT, "
                            f"UPDATE, DELETE ON {tname} TO {role}")
    applying = [p for p in t.policies if p.applies_to_app and p.permissive]
    covered = set().union(*(p.commands() for p in applying)) if applying else set()
    missing = [c for c in COMMANDS if c not in covered]
    if t.enabled and missing:
        problems.append(f"no permissive policy for {', '.join(missing)} on {name} applies to {role}: those commands "
                        f"are denied to the app; add CREATE POLICY {name}_tenant_{missing[0].lower()} ON {tname} "
                        f"FOR {missing[0]} ... ({tenant_predicate(column, posture.org_setting)})")
    settings = (posture.org_setting, posture.user_setting)
    for p in applying:
        for label, expr in (("USING", p.using), ("WITH CHECK", p.check)):
            branches = unbound_branches(expr, column, settings, trusted_functions=posture.trusted_functions,
                                        user_column=posture.user_column)
            if not branches:
                continue
            if branches == ["true"] and _strip_parens(expr or "").lower() == "true":
                problems.append(f"policy {p.name} on {name} ({p.command}) is {label} (true): every org's rows pass "
                                f"it and permissive policies are OR'ed; run DROP POLICY {p.name} ON {tname}")
            else:
                shown = "; ".join(branches)
                problems.append(f"policy {p.name} on {name} ({p.command}) {label} has a branch that does not bind "
                                f"the tenant (no equality of {column} with the tenant setting or a trusted claim): "
                                f"{shown}; rows of every org pass it: drop the policy "
                                f"(DROP POLICY {p.name} ON {tname}) or AND the branch with "
                                f"{tenant_predicate(column, posture.org_setting)}")
    flags = f"enabled={t.enabled} forced={t.forced} owner={t.owner}"
    cmds = ",".join(sorted(covered)) or "none"
    evidence = f"{name}: {flags}; {len(t.policies)} policies, commands covered for {role}: {cmds}"
    figures = {"enabled": t.enabled, "forced": t.forced, "owner": t.owner, "policies": len(t.policies)}
    return result(f"rls-posture[{name}]", problems, evidence, figures)


def audit_role(posture: Posture) -> CheckResult:
    """The app's login role: not a superuser, no BYPASSRLS, owns no tenant table."""
    r = posture.role
    problems: list[str] = []
    if r.superuser:
        problems.append(f"the app connects as {r.name}, a SUPERUSER: RLS never applies to it; create a "
                        f"least-privilege role (CREATE ROLE app_user LOGIN NOSUPERUSER NOBYPASSRLS), grant it the "
                        f"tenant tables and put it in target.app_database_url")
    if r.bypassrls:
        problems.append(f"the app connects as {r.name}, which has BYPASSRLS (on Supabase `postgres` has it): RLS "
                        f"never filters its queries; point target.app_database_url (the app's DATABASE_URL) at a "
                        f"role without BYPASSRLS, or run ALTER ROLE {r.name} NOBYPASSRLS if nothing else needs it")
    owned = posture.owned_by_app()
    if owned and posture.admin_role_hint == r.name:
        problems.append(f"the app role {r.name} owns tenant tables {', '.join(owned)}: the app logs in as the owner; "
                        f"use a dedicated least-privilege role in target.app_database_url")
    elif owned:
        problems.append(f"the app role {r.name} owns tenant tables {', '.join(owned)}: an owner can switch RLS off; "
                        f"run ALTER TABLE <table> OWNER TO {posture.admin_role_hint} for each")
    evidence = (f"app role {r.name}: superuser={r.superuser} bypassrls={r.bypassrls} owns "
                f"{len(owned)} of {len(posture.tables)} tenant tables")
    return result("rls-app-role", problems, evidence,
                  {"app_role": r.name, "superuser": r.superuser, "bypassrls": r.bypassrls, "owned_tables": owned})
