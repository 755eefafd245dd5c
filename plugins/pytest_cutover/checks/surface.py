"""The exposed surface: what the app role, ``anon`` and ``authenticated`` can reach, and what of it leaks.

Why: the per-table RLS audit (``rls_audit``) looks at tables carrying the tenant column.  An attacker
looks at everything a role can reach: views (which run with their owner's rights unless
``security_invoker`` is on), materialized views (no RLS at all), ``SECURITY DEFINER`` functions, grants
to ``anon``, tables whose tenant key has another name or hangs off a foreign key, secret-looking
columns, policies that trust ``user_metadata`` (the user edits it), ``auth`` tables.  The rules follow
Supabase's database linter (github.com/supabase/splinter: security_definer_view, auth_users_exposed,
function_search_path_mutable, extension_in_public, rls_references_user_metadata, sensitive_columns_exposed,
anon/authenticated_security_definer_function_executable, auth_rls_initplan), made stricter: every
reachable object, not only the API schemas, and a policy must *bind* the tenant (``rls_audit``).

Reachable means ``has_schema_privilege(role, schema, 'USAGE')`` and a privilege on the object, which
PostgreSQL resolves through direct grants, ``PUBLIC`` and role membership.  ``read_surface`` fetches
catalog rows; everything after it is pure (:func:`inventory`, :func:`findings`), unit-tested without a
database.  Every finding names the object, why it leaks and the SQL that fixes it; objects declared in
``[rls] public`` are intended to be readable by everyone and are listed, not flagged.  Sequences are inventoried
too (USAGE, SELECT, UPDATE); one ``anon`` may use is a (low) finding.

The rls stage probes the surface live (:func:`probe_surface`): it reads every relation holding tenant rows and
calls every function the audited roles may EXECUTE outside the managed schemas, as a caller of org A, in a
transaction that is always rolled back (functions may write) with a statement_timeout.  Arguments named like a
tenant key get org B's key, the others NULL or their default; functions whose arguments cannot be filled that
way, that take a secret, or that are procedures, trigger functions or call outside the database are listed as
not called, with the reason.  A result row carrying org B's key, any tenant row to ``anon``, or a scalar that
differs between org B's key and a key no tenant has, is a leak.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pytest_cutover.checks.base import CheckResult, result, run_sync
from pytest_cutover.checks.db import config_connection
from pytest_cutover.checks.rls_audit import tenant_predicate, unbound_branches
from pytest_cutover.util.sql import quote_ident, shown_ident

if TYPE_CHECKING:
    import asyncpg

    from pytest_cutover.config import CutoverConfig

__all__ = [
    "MANAGED_SCHEMAS",
    "Column",
    "Finding",
    "ForeignKey",
    "Function",
    "FunctionProbe",
    "PolicyRow",
    "Probe",
    "Relation",
    "Rules",
    "Surface",
    "TenantKey",
    "accepted",
    "check_surface",
    "fetch_surface",
    "findings",
    "inventory",
    "is_secret_column",
    "is_tenant_arg",
    "plan_function_probes",
    "plan_probes",
    "probe_surface",
    "read_surface",
    "read_surface_async",
    "rules_from_config",
    "tenant_key_names",
    "tenant_tables",
]

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")

#: Schemas never inventoried: the catalog itself.
_SYSTEM = ("pg_catalog", "information_schema")
#: Schemas Supabase (or an extension) manages: inventoried, but their objects are not the project's to fix
#: (splinter's exclusion list).  ``auth`` tables readable by an audited role are still a finding.
MANAGED_SCHEMAS = frozenset((
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config", "_timescaledb_internal", "auth", "cron",
    "extensions", "graphql", "graphql_public", "net", "pgmq", "pgroonga", "pgsodium", "pgsodium_masks", "pgtle",
    "pgbouncer", "realtime", "repack", "storage", "supabase_functions", "supabase_migrations", "tiger", "topology",
    "vault"))
_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}
#: Column names that hold credentials (splinter's sensitive_columns_exposed list, credential part) ...
_SECRET_NAMES = frozenset((
    "password", "passwd", "pwd", "passphrase", "secret", "secret_key", "private_key", "api_key", "apikey", "auth_key",
    "token", "jwt", "access_token", "refresh_token", "oauth_token", "session_token", "bearer_token", "auth_code",
    "session_id", "session_key", "session_secret", "recovery_code", "backup_code", "verification_code", "otp",
    "two_factor", "2fa_secret", "2fa_code", "password_hash", "hashed_password", "encrypted_password", "token_hash",
    "secret_hash", "api_key_hash", "client_secret", "webhook_secret", "signing_key", "ssh_key", "pgp_key", "gpg_key",
    "credit_card", "card_number", "cvv", "cvc", "iban", "ssn"))
#: ... and any name ending like one (``github_token``, ``stripe_api_key``, ``user_password``).
_SECRET_SUFFIX = re.compile(r"_(token|secret|password|passwd|api_?key|private_key|secret_key|password_hash)$")


def is_secret_column(name: str) -> bool:
    """Does the column's name say it holds a credential?"""
    norm = name.lower().replace("-", "_")
    return norm in _SECRET_NAMES or bool(_SECRET_SUFFIX.search(norm))


# ------------------------------------------------------------------------------------------------ catalog rows
@dataclass(frozen=True)
class Relation:
    """A table, view, materialized view or foreign table, and what each audited role may do to it."""

    schema: str
    name: str
    kind: str                                   # pg_class.relkind: r p v m f
    owner: str
    rls: bool = False
    forced: bool = False
    invoker: bool = False                       # views: security_invoker is on
    extension: bool = False                     # a member of an extension
    privileges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # role -> SELECT, INSERT, ...

    @property
    def qname(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Column:
    relation: str                               # schema.name
    name: str
    readers: tuple[str, ...] = ()               # audited roles that may SELECT it


@dataclass(frozen=True)
class ForeignKey:
    child: str                                  # schema.name
    columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class PolicyRow:
    relation: str
    name: str
    command: str                                # SELECT | INSERT | UPDATE | DELETE | ALL
    permissive: bool
    applies: tuple[str, ...]                    # audited roles it applies to (directly, PUBLIC or membership)
    using: str | None = None
    check: str | None = None


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    args: str                                   # identity arguments
    definer: bool
    fixed_search_path: bool
    owner: str = ""
    extension: bool = False
    executors: tuple[str, ...] = ()             # audited roles that may EXECUTE it
    # What the live probe (plan_function_probes) needs to call it:
    kind: str = "f"                             # pg_proc.prokind: f function, p procedure
    arg_names: tuple[str, ...] = ()             # input arguments ('' when unnamed), in order
    arg_types: tuple[str, ...] = ()             # their types, format_type()
    defaults: int = 0                           # how many trailing input arguments have a default
    variadic: bool = False
    returns: str = ""                           # format_type() of the result type
    return_kind: str = "b"                      # pg_type.typtype: b base, c composite, p pseudo (record, trigger)
    returns_relation: str | None = None         # schema.table whose row type it returns
    retset: bool = False
    out_columns: tuple[str, ...] = ()           # OUT / TABLE columns
    source: str = field(default="", repr=False, compare=False)   # pg_proc.prosrc

    @property
    def qname(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def signature(self) -> str:
        return f"{shown_ident(self.qname)}({self.args})"


@dataclass(frozen=True)
class Surface:
    """Every catalog row the audit needs, read once."""

    app_role: str
    roles: tuple[str, ...]                      # the audited roles that exist: app role first
    relations: tuple[Relation, ...] = ()
    columns: tuple[Column, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    policies: tuple[PolicyRow, ...] = ()
    functions: tuple[Function, ...] = ()
    sequences: tuple[Relation, ...] = ()        # kind "S"; privileges USAGE, SELECT, UPDATE
    view_reads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # view -> relations it reads
    extensions: Mapping[str, str] = field(default_factory=dict)               # extension -> schema


@dataclass(frozen=True)
class Rules:
    """What the config says about tenants and intended exposure."""

    tenant_columns: tuple[str, ...] = ("org_id",)
    tenant_tables: tuple[str, ...] = ()         # schema.name, configured
    org_setting: str = "app.current_org_id"
    user_setting: str = "app.current_user_id"
    user_column: str | None = "user_id"
    trusted_functions: tuple[str, ...] = ()
    public: Mapping[str, str] = field(default_factory=dict)                   # schema.name -> reason
    accepted: Mapping[str, str] = field(default_factory=dict)                 # finding's object -> reason
    admin_role: str = "postgres"


@dataclass(frozen=True)
class TenantKey:
    """How a table belongs to a tenant: its own key ``column`` (``parent`` None), or ``column`` referencing
    ``parent(parent_column)``, a tenant table whose own policies filter it."""

    column: str | None
    parent: str | None = None
    parent_column: str | None = None

    def predicate(self, setting: str) -> str:
        """The model policy expression for this table."""
        if self.parent is None:
            return tenant_predicate(self.column or "<tenant column>", setting)
        return f"{self.column} in (select {self.parent_column} from {shown_ident(self.parent)})"

    def describe(self) -> str:
        return f"tenant key {self.column}" if self.parent is None else \
            f"reaches tenant table {self.parent} through {self.column}"


@dataclass(frozen=True)
class Finding:
    """One way the surface leaks: how bad, which object, why, and the SQL that closes it."""

    severity: Severity
    rule: str
    object: str
    why: str
    fix: str

    def line(self) -> str:
        return f"[{self.severity}] {self.rule} {self.object}: {self.why}; fix: {self.fix}"


# ------------------------------------------------------------------------------------------------ reading
_ROLES_SQL = "select rolname from pg_roles where rolname = any($1::text[])"

_RELATIONS_SQL = """
select n.nspname as schema, c.relname as name, c.relkind::text as kind, pg_get_userbyid(c.relowner) as owner,
       c.relrowsecurity as rls, c.relforcerowsecurity as forced,
       coalesce(c.reloptions::text, '{}') ~* 'security_invoker=(true|on|yes|1)' as invoker,
       exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                          and d.deptype = 'e') as extension,
       coalesce((select jsonb_object_agg(r, privs) from (
           select r, array_remove(array[
               case when has_any_column_privilege(r, c.oid, 'SELECT') then 'SELECT' end,
               case when has_any_column_privilege(r, c.oid, 'INSERT') then 'INSERT' end,
               case when has_any_column_privilege(r, c.oid, 'UPDATE') then 'UPDATE' end,
               case when has_table_privilege(r, c.oid, 'DELETE') then 'DELETE' end,
               case when has_table_privilege(r, c.oid, 'TRUNCATE') then 'TRUNCATE' end], null) as privs
           from unnest($1::text[]) r where has_schema_privilege(r, n.oid, 'USAGE')) p
         where cardinality(privs) > 0), '{}'::jsonb)::text as privileges
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname <> all($2::text[])
  and n.nspname !~ '^pg_(toast|temp)'
order by 1, 2
"""

_COLUMNS_SQL = """
select n.nspname || '.' || c.relname as relation, a.attname as name,
       array(select r from unnest($1::text[]) r
             where has_schema_privilege(r, n.oid, 'USAGE') and has_column_privilege(r, c.oid, a.attnum, 'SELECT'))
         as readers
from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f')
  and n.nspname <> all($2::text[]) and n.nspname !~ '^pg_(toast|temp)'
order by 1, a.attnum
"""

_FOREIGN_KEYS_SQL = """
select cn.nspname || '.' || c.relname as child,
       array(select attname from unnest(k.conkey) with ordinality u(n, i)
             join pg_attribute on attrelid = k.conrelid and attnum = u.n order by u.i) as columns,
       pn.nspname || '.' || p.relname as parent,
       array(select attname from unnest(k.confkey) with ordinality u(n, i)
             join pg_attribute on attrelid = k.confrelid and attnum = u.n order by u.i) as parent_columns
from pg_constraint k
join pg_class c on c.oid = k.conrelid join pg_namespace cn on cn.oid = c.relnamespace
join pg_class p on p.oid = k.confrelid join pg_namespace pn on pn.oid = p.relnamespace
where k.contype = 'f' and cn.nspname <> all($1::text[])
order by 1, 3
"""

_POLICIES_SQL = """
select n.nspname || '.' || c.relname as relation, p.polname as name, p.polcmd::text as cmd,
       p.polpermissive as permissive,
       array(select r from unnest($1::text[]) r
             where 0 = any(p.polroles) or exists (select 1 from unnest(p.polroles) x
                                                  where x <> 0 and pg_has_role(r, x, 'MEMBER'))) as applies,
       pg_get_expr(p.polqual, p.polrelid) as using_expr, pg_get_expr(p.polwithcheck, p.polrelid) as check_expr
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where n.nspname <> all($2::text[])
order by 1, 2
"""

_FUNCTIONS_SQL = """
select n.nspname as schema, p.proname as name, pg_get_function_identity_arguments(p.oid) as args,
       p.prosecdef as definer, pg_get_userbyid(p.proowner) as owner,
       exists (select 1 from unnest(coalesce(p.proconfig, '{}')) cfg where cfg like 'search_path=%') as fixed,
       exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid
                                          and d.deptype = 'e') as extension,
       array(select r from unnest($1::text[]) r
             where has_schema_privilege(r, n.oid, 'USAGE') and has_function_privilege(r, p.oid, 'EXECUTE'))
         as executors,
       p.prokind::text as kind,
       array(select coalesce(a.name, '') from unnest(p.proargnames, coalesce(p.proargmodes::text[], array_fill(
                 'i'::text, array[coalesce(array_length(p.proallargtypes, 1), p.pronargs)]))) with ordinality
                 a(name, mode, i) where a.mode in ('i', 'b', 'v') order by a.i) as arg_names,
       array(select format_type(u.typ, null) from unnest(p.proargtypes::oid[]) with ordinality u(typ, i) order by u.i)
         as arg_types,
       p.pronargdefaults as defaults, p.provariadic <> 0 as variadic, format_type(p.prorettype, null) as returns,
       t.typtype::text as return_kind,
       (select rn.nspname || '.' || rc.relname from pg_class rc join pg_namespace rn on rn.oid = rc.relnamespace
         where rc.oid = t.typrelid and rc.relkind in ('r', 'p', 'v', 'm', 'f')) as returns_relation,
       p.proretset as retset,
       array(select coalesce(a.name, '') from unnest(p.proargnames, p.proargmodes::text[])
                    with ordinality a(name, mode, i) where a.mode in ('o', 'b', 't') order by a.i) as out_columns,
       p.prosrc as source
from pg_proc p join pg_namespace n on n.oid = p.pronamespace join pg_type t on t.oid = p.prorettype
where p.prokind in ('f', 'p') and n.nspname <> all($2::text[]) and n.nspname !~ '^pg_(toast|temp)'
order by 1, 2, 3
"""

_SEQUENCES_SQL = """
select n.nspname as schema, c.relname as name, pg_get_userbyid(c.relowner) as owner,
       exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
                                          and d.deptype = 'e') as extension,
       coalesce((select jsonb_object_agg(r, privs) from (
           select r, array_remove(array[
               case when has_sequence_privilege(r, c.oid, 'USAGE') then 'USAGE' end,
               case when has_sequence_privilege(r, c.oid, 'SELECT') then 'SELECT' end,
               case when has_sequence_privilege(r, c.oid, 'UPDATE') then 'UPDATE' end], null) as privs
           from unnest($1::text[]) r where has_schema_privilege(r, n.oid, 'USAGE')) p
         where cardinality(privs) > 0), '{}'::jsonb)::text as privileges
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'S' and n.nspname <> all($2::text[]) and n.nspname !~ '^pg_(toast|temp)'
order by 1, 2
"""

_VIEW_READS_SQL = """
select distinct vn.nspname || '.' || v.relname as view, tn.nspname || '.' || t.relname as reads
from pg_rewrite w
join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid and d.refclassid = 'pg_class'::regclass
join pg_class v on v.oid = w.ev_class join pg_namespace vn on vn.oid = v.relnamespace
join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace
where v.relkind in ('v', 'm') and t.oid <> v.oid and vn.nspname <> all($1::text[])
order by 1, 2
"""

_EXTENSIONS_SQL = """
select e.extname, n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace order by 1
"""

_CMD = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


async def fetch_surface(conn: asyncpg.Connection, app_role: str, api_roles: Sequence[str]) -> Surface:
    """Every catalog row :func:`findings` needs, read on ``conn`` (a role that can see the whole catalog)."""
    import json

    wanted = list(dict.fromkeys([app_role, *api_roles]))
    existing = {r[0] for r in await conn.fetch(_ROLES_SQL, wanted)}
    roles = [r for r in wanted if r in existing]
    system = list(_SYSTEM)
    relations = tuple(
        Relation(schema=r["schema"], name=r["name"], kind=r["kind"], owner=r["owner"], rls=r["rls"],
                 forced=r["forced"], invoker=r["invoker"], extension=r["extension"],
                 privileges={k: tuple(v) for k, v in json.loads(r["privileges"]).items()})
        for r in await conn.fetch(_RELATIONS_SQL, roles, system))
    columns = tuple(Column(r["relation"], r["name"], tuple(r["readers"]))
                    for r in await conn.fetch(_COLUMNS_SQL, roles, system))
    fks = tuple(ForeignKey(r["child"], tuple(r["columns"]), r["parent"], tuple(r["parent_columns"]))
                for r in await conn.fetch(_FOREIGN_KEYS_SQL, system))
    policies = tuple(PolicyRow(r["relation"], r["name"], _CMD.get(r["cmd"], r["cmd"]), r["permissive"],
                               tuple(r["applies"]), r["using_expr"], r["check_expr"])
                     for r in await conn.fetch(_POLICIES_SQL, roles, system))
    functions = tuple(Function(r["schema"], r["name"], r["args"], r["definer"], r["fixed"], r["owner"],
                               r["extension"], tuple(r["executors"]), kind=r["kind"], arg_names=tuple(r["arg_names"]),
                               arg_types=tuple(r["arg_types"]), defaults=r["defaults"], variadic=r["variadic"],
                               returns=r["returns"], return_kind=r["return_kind"],
                               returns_relation=r["returns_relation"], retset=r["retset"],
                               out_columns=tuple(r["out_columns"]), source=r["source"] or "")
                      for r in await conn.fetch(_FUNCTIONS_SQL, roles, system))
    sequences = tuple(
        Relation(schema=r["schema"], name=r["name"], kind="S", owner=r["owner"], extension=r["extension"],
                 privileges={k: tuple(v) for k, v in json.loads(r["privileges"]).items()})
        for r in await conn.fetch(_SEQUENCES_SQL, roles, system))
    reads: dict[str, list[str]] = {}
    for r in await conn.fetch(_VIEW_READS_SQL, system):
        reads.setdefault(r["view"], []).append(r["reads"])
    extensions = {r[0]: r[1] for r in await conn.fetch(_EXTENSIONS_SQL)}
    return Surface(app_role=app_role, roles=tuple(roles), relations=relations, columns=columns, foreign_keys=fks,
                   policies=policies, functions=functions, sequences=sequences,
                   view_reads={k: tuple(v) for k, v in reads.items()}, extensions=extensions)


async def read_surface_async(config: CutoverConfig) -> tuple[Surface, Rules]:
    """The app role as its own URL logs in, then the catalog through the admin URL (else the app's)."""
    async with config_connection(config, "target.app_database_url") as app:
        app_role = await app.fetchval("select current_user")
    key = "target.database_url" if config.target.database_url else "target.app_database_url"
    async with config_connection(config, key) as conn:
        admin = await conn.fetchval("select current_user")
        surface = await fetch_surface(conn, app_role, config.rls.api_roles)
    return surface, rules_from_config(config, admin_role=admin if admin != app_role else "postgres")


def read_surface(config: CutoverConfig) -> tuple[Surface, Rules]:
    """:func:`read_surface_async` from synchronous code."""
    return run_sync(read_surface_async(config), timeout=config.thresholds.connect_timeout_s * 4 + 60)


def rules_from_config(config: CutoverConfig, *, admin_role: str = "postgres") -> Rules:
    """The audit's rules from ``[schema]`` and ``[rls]``."""
    from pytest_cutover.checks.rls_audit import qualify

    s, r = config.schema_, config.rls
    return Rules(tenant_columns=tuple(dict.fromkeys([s.tenant_column, *r.tenant_columns])),
                 tenant_tables=tuple(sorted({qualify(t) for t in s.tenant_tables})), org_setting=s.rls_org_setting,
                 user_setting=s.rls_user_setting, user_column=s.user_column,
                 trusted_functions=tuple(r.trusted_functions), public={qualify(k): v for k, v in r.public.items()},
                 accepted=dict(r.accepted), admin_role=admin_role)


# ------------------------------------------------------------------------------------------------ pure analysis
def inventory(surface: Surface, rules: Rules | None = None) -> dict[str, Any]:
    """The figure: per role, every reachable relation and function with what the role may do to it."""
    per_role: dict[str, dict[str, str]] = {role: {} for role in surface.roles}
    for rel in surface.relations:
        for role, privs in rel.privileges.items():
            if role in per_role:
                per_role[role][f"{rel.qname} ({_KINDS.get(rel.kind, rel.kind)})"] = ",".join(privs)
    for seq in surface.sequences:
        for role, privs in seq.privileges.items():
            if role in per_role:
                per_role[role][f"{seq.qname} (sequence)"] = ",".join(privs)
    members: dict[tuple[str, str], int] = {}
    for fn in surface.functions:
        for role in (r for r in fn.executors if r in per_role):
            if fn.extension:  # pgvector alone has ~100: counted per schema, not listed
                members[role, fn.schema] = members.get((role, fn.schema), 0) + 1
                continue
            kind = "function, SECURITY DEFINER" if fn.definer else "function"
            per_role[role][f"{fn.qname}({fn.args}) ({kind})"] = "EXECUTE"
    for (role, schema), n in sorted(members.items()):
        per_role[role][f"{schema}.* (extension functions)"] = f"EXECUTE on {n}"
    figure: dict[str, Any] = {"app_role": surface.app_role, "roles": per_role,
                              "counts": {role: len(objs) for role, objs in per_role.items()}}
    if rules is not None:
        figure["public"] = dict(rules.public)
        figure["tenant_tables"] = {t: k.describe() for t, k in tenant_tables(surface, rules).items()}
    return figure


def tenant_tables(surface: Surface, rules: Rules) -> dict[str, TenantKey]:
    """``schema.table`` -> how it belongs to a tenant (:class:`TenantKey`):

    tables with a tenant column (``org_id``, or a name in ``rls.tenant_columns``); the tables those columns
    reference (``orgs``, key ``id``); configured ``schema.tenant_tables``; and, to a fixed point, tables with
    a foreign key into one of them: into the tenants table the key is the FK column whatever its name
    (``organization_id``), deeper the table is reached through its parent (``comments.thread_id -> threads``).
    """
    tables = {r.qname for r in surface.relations if r.kind in ("r", "p") and r.schema not in MANAGED_SCHEMAS}
    cols: dict[str, set[str]] = {}
    for c in surface.columns:
        cols.setdefault(c.relation, set()).add(c.name)
    found: dict[str, TenantKey] = {}
    for t in sorted(tables):
        key = next((c for c in rules.tenant_columns if c in cols.get(t, ())), None)
        if key:
            found[t] = TenantKey(key)
    roots: dict[str, str] = {}
    for fk in surface.foreign_keys:
        if fk.child in found and len(fk.columns) == 1 and fk.columns[0] in rules.tenant_columns:
            roots[fk.parent] = fk.parent_columns[0]
    for t, key in roots.items():
        if t in tables:
            found.setdefault(t, TenantKey(key))
    for t in rules.tenant_tables:
        found.setdefault(t, TenantKey(next((c for c in rules.tenant_columns if c in cols.get(t, ())), None)))
    changed = True
    while changed:
        changed = False
        for fk in surface.foreign_keys:
            if fk.child in found or fk.child not in tables or fk.parent not in found or len(fk.columns) != 1:
                continue
            direct = fk.parent in roots and roots[fk.parent] == fk.parent_columns[0]
            found[fk.child] = TenantKey(fk.columns[0]) if direct else \
                TenantKey(fk.columns[0], fk.parent, fk.parent_columns[0])
            changed = True
    return dict(sorted(found.items()))


def _roles_sql(roles: Iterable[str]) -> str:
    return ", ".join(shown_ident(r, dotted=False) for r in roles)


def _reads(surface: Surface, view: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every relation ``view`` reads, through other views too."""
    out: set[str] = set()
    for rel in surface.view_reads.get(view, ()):
        if rel not in seen:
            out.add(rel)
            out |= _reads(surface, rel, seen | {view})
    return out


def _policy_unbound(policy: PolicyRow, key: TenantKey, rules: Rules) -> list[str]:
    """The branches of ``policy`` that do not bind the tenant; through a parent, a subquery over the parent
    (whose own policies filter it) binds."""
    settings = (rules.org_setting, rules.user_setting)
    out = []
    for expr in (policy.using, policy.check):
        if key.parent is not None:
            name = key.parent.split(".", 1)[1]
            # Subqueries over the parent are filtered by the parent's own RLS (SECURITY INVOKER semantics).
            expr = re.sub(r"\bFROM\s+(?:\w+\.)?" + re.escape(name) + r"\b", "FROM __tenant_parent__", expr or "",
                          flags=re.I) or None
            branches = unbound_branches(expr, "__no_column__", settings, user_column=rules.user_column)
            out += [b for b in branches if "__tenant_parent__" not in b]
        else:
            out += unbound_branches(expr, key.column or "", settings, trusted_functions=rules.trusted_functions,
                                    user_column=rules.user_column)
    return out


def _per_row(expr: str | None) -> list[str]:
    """Supabase's auth_rls_initplan: the current_setting()/auth.*() calls made per row, not ``(select ...)``."""
    low = (expr or "").lower()
    return [call for call in ("auth.uid()", "auth.jwt()", "auth.role()", "auth.email()", "current_setting(")
            if call in low and f"select {call}" not in low]


def accepted(found: Sequence[Finding], rules: Rules) -> tuple[list[Finding], dict[str, str]]:
    """``found`` without the findings ``[rls] accepted`` takes (by object, with a reason), and those taken."""
    taken = {f.object: rules.accepted[f.object] for f in found if f.object in rules.accepted}
    return [f for f in found if f.object not in rules.accepted], taken


@dataclass(frozen=True)
class _Audit:
    """What every part of :func:`findings` reads: the surface, the rules, and the tenant tables and policies."""

    surface: Surface
    rules: Rules
    tenants: dict[str, TenantKey]
    rels: dict[str, Relation]
    policies: dict[str, list[PolicyRow]]

    @classmethod
    def of(cls, surface: Surface, rules: Rules) -> _Audit:
        policies: dict[str, list[PolicyRow]] = {}
        for p in surface.policies:
            policies.setdefault(p.relation, []).append(p)
        return cls(surface, rules, tenant_tables(surface, rules), {r.qname: r for r in surface.relations}, policies)


def _tenant_table_findings(a: _Audit) -> Iterator[Finding]:
    """Tenant tables: RLS off or not forced, owned by the app role, a permissive policy that binds no tenant."""
    rules, app = a.rules, a.surface.app_role
    for t, key in a.tenants.items():
        rel = a.rels.get(t)
        if rel is None or t in rules.public or not rel.privileges:
            continue
        who = sorted(rel.privileges)
        tn = shown_ident(t)
        pred = key.predicate(rules.org_setting)
        how = key.describe()
        if not rel.rls:
            yield Finding("critical", "tenant-rls-disabled", t,
                          f"tenant table ({how}) without row level security, reachable by {', '.join(who)}: every "
                          f"tenant's rows are visible", f"ALTER TABLE {tn} ENABLE ROW LEVEL SECURITY; ALTER TABLE "
                          f"{tn} FORCE ROW LEVEL SECURITY; CREATE POLICY {rel.name}_tenant ON {tn} USING ({pred}) "
                          f"WITH CHECK ({pred})")
        elif not rel.forced:
            yield Finding("high", "tenant-rls-not-forced", t, f"tenant table ({how}) with RLS enabled but not "
                          f"forced: its owner {rel.owner} is not filtered",
                          f"ALTER TABLE {tn} FORCE ROW LEVEL SECURITY")
        if rel.owner == app:
            yield Finding("high", "tenant-owned-by-app", t,
                          f"the app role {app} owns this tenant table and can turn RLS off",
                          f"ALTER TABLE {tn} OWNER TO {rules.admin_role}; GRANT SELECT, INSERT, UPDATE, DELETE ON "
                          f"{tn} TO {app}")
        if rel.rls:
            yield from _unbound_policy_findings(a, t, key, rel)


def _unbound_policy_findings(a: _Audit, t: str, key: TenantKey, rel: Relation) -> Iterator[Finding]:
    tn, pred = shown_ident(t), key.predicate(a.rules.org_setting)
    for p in a.policies.get(t, []):
        exposed = [r for r in p.applies if rel.privileges.get(r)]
        if not p.permissive or not exposed:
            continue
        loose = _policy_unbound(p, key, a.rules)
        pn = shown_ident(p.name, dotted=False)
        if loose:
            yield Finding("critical", "policy-unbound", f"{t} policy {p.name}",
                          f"{p.command} policy for {', '.join(exposed)} has a branch that does not bind the tenant "
                          f"({'; '.join(loose)}): permissive policies are OR'ed, so every tenant's rows pass",
                          f"DROP POLICY {pn} ON {tn}; CREATE POLICY {pn} ON {tn} FOR {p.command} "
                          + (f"USING ({pred})" if p.command in ("SELECT", "DELETE") else
                             f"WITH CHECK ({pred})" if p.command == "INSERT" else
                             f"USING ({pred}) WITH CHECK ({pred})"))


def _policy_findings(a: _Audit) -> Iterator[Finding]:
    """Every policy: user_metadata read from the JWT, per-row calls."""
    rules = a.rules
    for p in a.surface.policies:
        text = f"{p.using or ''} {p.check or ''}".lower()
        if "user_metadata" in text or "raw_user_meta_data" in text:
            pn, rn = shown_ident(p.name, dotted=False), shown_ident(p.relation)
            yield Finding("critical", "policy-user-metadata", f"{p.relation} policy {p.name}",
                          "reads user_metadata from the JWT, which every user can edit for themselves",
                          f"keep the tenant in app_metadata (set server-side) and compare with ((select auth.jwt()) "
                          f"-> 'app_metadata' ->> '{rules.tenant_columns[0]}'): DROP POLICY {pn} ON {rn}; CREATE "
                          f"POLICY {pn} ON {rn} ... ")
        schema = p.relation.split(".", 1)[0]
        calls = sorted(set(_per_row(p.using) + _per_row(p.check)))
        if schema not in MANAGED_SCHEMAS and calls:
            names = [c if c.endswith(")") else c + ")" for c in calls]
            yield Finding("low", "policy-per-row", f"{p.relation} policy {p.name}",
                          f"calls {', '.join(names)} once per row (Supabase lint auth_rls_initplan)",
                          "wrap each call in a scalar subquery, evaluated once per statement: "
                          + ", ".join(f"(select {n})" for n in names)
                          + (f", e.g. {tenant_predicate(rules.tenant_columns[0], rules.org_setting)}"
                             if "current_setting()" in names else ""))


def _view_findings(a: _Audit) -> Iterator[Finding]:
    """Views and materialized views over tenant (or auth) tables that bypass RLS."""
    surface, app = a.surface, a.surface.app_role
    auth_rels = {r.qname for r in surface.relations if r.schema == "auth"}
    for rel in surface.relations:
        if rel.kind not in ("v", "m") or rel.schema in MANAGED_SCHEMAS or rel.extension:
            continue
        readers = sorted(r for r, privs in rel.privileges.items() if "SELECT" in privs)
        if not readers or rel.qname in a.rules.public:
            continue
        over = sorted(_reads(surface, rel.qname) & (set(a.tenants) | auth_rels))
        data = f"reads {', '.join(over)}" if over else "reads no tenant table"
        vn = shown_ident(rel.qname)
        if rel.kind == "m" and over:
            yield Finding("critical", "matview-exposed", rel.qname, f"materialized view ({data}) readable by "
                          f"{', '.join(readers)}: a materialized view has no row level security",
                          f"REVOKE ALL ON {vn} FROM PUBLIC, {_roles_sql(readers)}; serve it through a view WITH "
                          f"(security_invoker = on) over the tables instead")
        elif rel.kind == "v" and not rel.invoker and (over or [r for r in readers if r != app]):
            yield Finding("critical" if over else "medium", "view-security-definer", rel.qname,
                          f"view without security_invoker ({data}), readable by {', '.join(readers)}: it runs with "
                          f"its owner {rel.owner}'s rights, so the tables' RLS does not filter the caller",
                          f"ALTER VIEW {vn} SET (security_invoker = on)")


def _auth_findings(a: _Audit) -> Iterator[Finding]:
    """Auth schema tables granted to anyone."""
    for rel in a.surface.relations:
        if rel.schema == "auth" and rel.privileges:
            yield Finding("critical", "auth-exposed", rel.qname,
                          f"auth table readable/writable by {', '.join(sorted(rel.privileges))}: users' emails, "
                          "hashes, tokens",
                          f"REVOKE ALL ON {shown_ident(rel.qname)} FROM PUBLIC, {_roles_sql(sorted(rel.privileges))}")


def _function_findings(a: _Audit) -> Iterator[Finding]:
    """Executable SECURITY DEFINER functions, and functions without a fixed search_path."""
    rules = a.rules
    for fn in a.surface.functions:
        callers = list(fn.executors)
        if fn.schema in MANAGED_SCHEMAS or fn.extension or not callers:
            continue
        # Declared membership helpers must be callable from policies (and are usually definer, to avoid
        # recursing into the policy they serve): their search_path is still checked.
        if fn.definer and fn.qname not in rules.public and fn.qname not in rules.trusted_functions:
            yield Finding("high", "definer-function-executable", f"{fn.qname}({fn.args})",
                          f"SECURITY DEFINER function executable by {', '.join(callers)}: it runs as {fn.owner} "
                          f"and bypasses RLS on whatever it reads or writes",
                          f"REVOKE EXECUTE ON FUNCTION {fn.signature} FROM PUBLIC, {_roles_sql(callers)}; or ALTER "
                          f"FUNCTION {fn.signature} SECURITY INVOKER")
        if not fn.fixed_search_path:
            yield Finding("critical" if fn.definer else "medium", "function-search-path-mutable",
                          f"{fn.qname}({fn.args})",
                          f"{'SECURITY DEFINER ' if fn.definer else ''}function without a fixed search_path, "
                          f"executable by {', '.join(callers)}: a caller's objects can shadow the ones it means",
                          f"ALTER FUNCTION {fn.signature} SET search_path = ''")


def _anon_findings(a: _Audit) -> Iterator[Finding]:
    """anon: nothing unless declared public (and then only reads): relations, functions, sequences."""
    surface, rules = a.surface, a.rules
    if "anon" not in surface.roles:
        return
    for rel in surface.relations:
        privs = rel.privileges.get("anon", ())
        if rel.schema in MANAGED_SCHEMAS or rel.extension or not privs:
            continue
        extra = [p for p in privs if not (p == "SELECT" and rel.qname in rules.public)]
        if extra:
            yield Finding("high", "anon-grant", rel.qname,
                          f"anon (anyone holding the public anon key) may {', '.join(extra)} on this "
                          f"{_KINDS.get(rel.kind, rel.kind)}, which is not declared public",
                          f"REVOKE {', '.join(extra)} ON {shown_ident(rel.qname)} FROM PUBLIC, anon; and for the next "
                          f"tables (Supabase grants anon every new table in public by default): ALTER DEFAULT "
                          f"PRIVILEGES FOR ROLE {rel.owner} IN SCHEMA {rel.schema} REVOKE ALL ON TABLES FROM anon"
                          + ("" if rel.qname in rules.public else
                             f" (or declare it in [rls] public = {{\"{rel.qname}\" = \"why everyone may read it\"}})"))
    for fn in surface.functions:
        if fn.schema in MANAGED_SCHEMAS or fn.extension or "anon" not in fn.executors or fn.qname in rules.public:
            continue
        yield Finding("high", "anon-grant", f"{fn.qname}({fn.args})",
                      "anon may EXECUTE this function, which is not declared public (EXECUTE goes to PUBLIC by "
                      "default)",
                      f"REVOKE EXECUTE ON FUNCTION {fn.signature} FROM PUBLIC, anon; ALTER DEFAULT PRIVILEGES REVOKE "
                      f"EXECUTE ON FUNCTIONS FROM PUBLIC")
    for seq in surface.sequences:
        privs = seq.privileges.get("anon", ())
        if seq.schema in MANAGED_SCHEMAS or seq.extension or not privs or seq.qname in rules.public:
            continue
        yield Finding("low", "anon-sequence", seq.qname,
                      f"anon may {', '.join(privs)} on this sequence: it learns how many rows were ever inserted "
                      "(currval/last_value) and can burn ids (nextval/setval) without touching a table",
                      f"REVOKE ALL ON SEQUENCE {shown_ident(seq.qname)} FROM PUBLIC, anon; ALTER DEFAULT "
                      f"PRIVILEGES FOR ROLE {seq.owner} IN SCHEMA {seq.schema} REVOKE ALL ON SEQUENCES FROM anon")


def _secret_findings(a: _Audit) -> Iterator[Finding]:
    """Secret-looking columns readable by anyone but the tenant itself behind a binding policy."""
    roles, rules = a.surface.roles, a.rules
    bound = {t for t, key in a.tenants.items()
             if (r := a.rels.get(t)) is not None and r.rls and (r.forced or r.owner not in roles)
             and not any(_policy_unbound(p, key, rules) for p in a.policies.get(t, []) if p.permissive)}
    secret_cols: dict[str, list[Column]] = {}
    for c in a.surface.columns:
        schema = c.relation.split(".", 1)[0]
        if c.readers and schema not in MANAGED_SCHEMAS and is_secret_column(c.name):
            secret_cols.setdefault(c.relation, []).append(c)
    for relation, cols in sorted(secret_cols.items()):
        readers = sorted({r for c in cols for r in c.readers})
        names = ", ".join(c.name for c in cols)
        if relation in bound and "anon" not in readers:
            continue  # the tenant's own secrets behind a policy that binds the tenant
        rn = shown_ident(relation)
        yield Finding("critical", "secret-readable", f"{relation} ({names})",
                      f"secret-looking column(s) readable by {', '.join(readers)}"
                      + ("" if relation in a.tenants else " on a table with no tenant key"),
                      f"REVOKE SELECT ON {rn} FROM PUBLIC, {_roles_sql(readers)}; GRANT SELECT (<the other columns>) "
                      f"ON {rn} TO {_roles_sql(readers)}; or move it to a schema those roles have no USAGE on")


def _extension_findings(a: _Audit) -> Iterator[Finding]:
    """Extensions installed in public, an API schema."""
    for ext, schema in sorted(a.surface.extensions.items()):
        if schema == "public" and ext != "plpgsql":
            yield Finding("medium", "extension-in-public", f"extension {ext}",
                          "installed in public, an API schema: its functions and types are on the exposed surface",
                          f"CREATE SCHEMA IF NOT EXISTS extensions; ALTER EXTENSION {ext} SET SCHEMA extensions "
                          "(and put extensions on the roles' search_path)")


_AUDITS: tuple[Callable[[_Audit], Iterator[Finding]], ...] = (
    _tenant_table_findings, _policy_findings, _view_findings, _auth_findings, _function_findings, _anon_findings,
    _secret_findings, _extension_findings)


def findings(surface: Surface, rules: Rules) -> list[Finding]:
    """Every leak on the surface, most severe first (then by object): one audit function per kind of object."""
    audit = _Audit.of(surface, rules)
    out = [f for part in _AUDITS for f in part(audit)]
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(out, key=lambda f: (order[f.severity], f.object, f.rule))


def check_surface(surface: Surface, rules: Rules) -> CheckResult:
    """Every finding as a problem; the inventory and the declared-public objects as figures."""
    found, taken = accepted(findings(surface, rules), rules)
    figure = inventory(surface, rules)
    figure["accepted"] = taken
    counts = figure["counts"]
    evidence = (f"exposed surface of {', '.join(f'{r}: {n} objects' for r, n in counts.items())}; "
                f"{len(rules.public)} declared public; {len(found)} findings ({len(taken)} more accepted)")
    by_severity = {s: sum(f.severity == s for f in found) for s in SEVERITIES}
    # One report section "surface" (report/build.py merge_figure): the inventory and the findings' counts.
    return result("exposed-surface", [f.line() for f in found], evidence,
                  {"surface": {**figure, "findings": len(found), "findings_by_severity": by_severity}})


# ------------------------------------------------------------------------------------------------ live probes
@dataclass(frozen=True)
class Probe:
    """One read the rls stage makes: ``role`` reads ``relation`` as a caller of org A and counts org B's rows
    (``column`` None: ``anon`` reading tenant data, where any row is a leak)."""

    role: str
    relation: str
    column: str | None


def plan_probes(surface: Surface, rules: Rules) -> list[Probe]:
    """Every relation an audited role can SELECT outside the managed schemas that holds tenant rows: tenant
    tables with their own key, and views over tenant data (keyed by a tenant column they expose).  Tables
    reached only through a parent, and relations declared public, are not probed."""
    tenants = tenant_tables(surface, rules)
    cols: dict[str, set[str]] = {}
    for c in surface.columns:
        cols.setdefault(c.relation, set()).add(c.name)
    out = []
    for rel in surface.relations:
        if rel.schema in MANAGED_SCHEMAS or rel.extension or rel.qname in rules.public:
            continue
        key = tenants.get(rel.qname)
        if key is not None:
            column = key.column if key.parent is None else None
            tenant_data = True
        else:
            column = next((c for c in rules.tenant_columns if c in cols.get(rel.qname, ())), None)
            tenant_data = bool(_reads(surface, rel.qname) & set(tenants)) or column is not None
        if not tenant_data:
            continue
        for role, privs in rel.privileges.items():
            if "SELECT" not in privs:
                continue
            if column is not None:
                out.append(Probe(role, rel.qname, column))
            elif role == "anon":
                out.append(Probe(role, rel.qname, None))
    return sorted(out, key=lambda p: (p.relation, p.role))


#: Argument types the function probe fills without input: the other tenant's key (cast from text) or NULL.
_FILLABLE = frozenset(("text", "character varying", "uuid", "integer", "bigint", "smallint", "boolean"))
#: Calls whose effects a rollback does not undo: HTTP (pg_net, pgsql-http), other databases (dblink), other
#: sessions, server files.  A function calling one is not probed.
_EXTERNAL = re.compile(r"\b(dblink\w*|http\w*|net\.\w+|pg_(?:terminate|cancel)_backend|lo_(?:import|export)|"
                       r"pg_file_write)\s*\(", re.I)
#: How argument names usually dress a column name: ``p_org_id``, ``_org``, ``in_org_id``.
_ARG_PREFIX = re.compile(r"^(?:_+|p_|in_|arg_|a_|i_|param_)")
#: Rows fetched per call: enough to see another tenant's row, bounded.
_ROW_LIMIT = 1000


@dataclass(frozen=True)
class FunctionProbe:
    """One call the rls stage makes: ``role`` calls ``function`` in a transaction that is rolled back, as a caller of
    org A, with org B's key (``$1``, as text) in each argument named like a tenant key (``tenant_args``), NULL or
    the default in the others.  ``rows``: the result is rows (a set or a composite), judged by their tenant
    columns; else one scalar, judged against the same call with a key no tenant has."""

    role: str
    function: Function
    call: str
    tenant_args: tuple[str, ...]
    rows: bool

    @property
    def label(self) -> str:
        return f"{self.function.qname}({self.function.args})"


def tenant_key_names(surface: Surface, rules: Rules) -> frozenset[str]:
    """Column names that hold a tenant key: the configured ones and every tenant table's own key but ``id``."""
    keys = {k.column for k in tenant_tables(surface, rules).values() if k.parent is None and k.column}
    return frozenset({*rules.tenant_columns, *keys} - {"id"})


def is_tenant_arg(name: str, key_names: Iterable[str]) -> bool:
    """``p_org_id``, ``_org``, ``org`` or ``orgid`` for a tenant column ``org_id``."""
    keys = set(key_names)
    stems = keys | {k[:-3] for k in keys if k.endswith("_id")} | {k.replace("_", "") for k in keys}
    return bool(name) and _ARG_PREFIX.sub("", name.lower()) in stems


def _unprobeable(fn: Function, rules: Rules) -> str | None:
    """Why ``fn`` is not called (None: it is)."""
    if fn.qname in rules.public:
        return "declared public in [rls] public"
    if fn.kind == "p":
        return "a procedure: CALL is not a query and it may commit or roll back by itself"
    if fn.returns in ("trigger", "event_trigger"):
        return "a trigger function: only its trigger can call it"
    if fn.returns == "record" and not fn.out_columns:
        return "returns an anonymous record: a call needs a column definition list"
    if fn.return_kind == "p" and fn.returns not in ("record", "void"):
        return f"returns the pseudo-type {fn.returns}: not callable from SQL with plain arguments"
    if fn.variadic:
        return "takes variadic arguments"
    required = len(fn.arg_types) - fn.defaults          # the others keep their default
    for i, (name, typ) in enumerate(zip(fn.arg_names, fn.arg_types, strict=False)):
        label = name or f"${i + 1}"
        if name and is_secret_column(_ARG_PREFIX.sub("", name.lower())):
            return f"takes a secret ({label})"
        if typ not in _FILLABLE and i < required:
            return f"argument {label} of type {typ} cannot be filled without input"
    external = _EXTERNAL.search(fn.source)
    if external:
        return f"calls {external.group(1)}(), whose effect a rollback does not undo"
    return None


def _call_sql(fn: Function, key_names: Iterable[str]) -> tuple[str, tuple[str, ...], bool]:
    """``select ... from f(...)`` with ``$1`` in the tenant arguments; the tenant arguments; rows or a scalar."""
    keys = frozenset(key_names)
    named = bool(fn.arg_names) and all(fn.arg_names)
    first_default = len(fn.arg_types) - fn.defaults
    values: list[str | None] = []
    tenant_args = []
    for i, typ in enumerate(fn.arg_types):
        name = fn.arg_names[i] if i < len(fn.arg_names) else ""
        if is_tenant_arg(name, keys):
            values.append(f"$1::text::{typ}")
            tenant_args.append(name)
        else:
            values.append(None if i >= first_default else f"NULL::{typ}")
    if named:
        parts = [f"{quote_ident(n)} => {v}" for n, v in zip(fn.arg_names, values, strict=False) if v is not None]
    else:
        while values and values[-1] is None:
            values.pop()
        parts = [v if v is not None else f"NULL::{fn.arg_types[i]}" for i, v in enumerate(values)]
    call = f"{shown_ident(fn.qname)}({', '.join(parts)})"
    rows = fn.retset or fn.return_kind == "c" or fn.returns == "record"
    sql = (f"select to_jsonb(r)::text from {call} as r limit {_ROW_LIMIT + 1}" if rows else
           f"select ({call})::text")
    return sql, tuple(tenant_args), rows


def plan_function_probes(surface: Surface, rules: Rules) -> tuple[list[FunctionProbe], dict[str, str]]:
    """A call per (function, audited role that may EXECUTE it) outside the managed schemas and extensions, and
    the functions not called with the reason (:func:`_unprobeable`).  Aggregates and window functions are not
    in the inventory (they cannot be called on their own)."""
    keys = tenant_key_names(surface, rules)
    probes: list[FunctionProbe] = []
    skipped: dict[str, str] = {}
    for fn in surface.functions:
        callers = [r for r in surface.roles if r in fn.executors]
        if fn.schema in MANAGED_SCHEMAS or fn.extension or not callers:
            continue
        reason = _unprobeable(fn, rules)
        if reason:
            skipped[f"{fn.qname}({fn.args})"] = reason
            continue
        sql, tenant_args, rows = _call_sql(fn, keys)
        probes.extend(FunctionProbe(role, fn, sql, tenant_args, rows) for role in callers)
    return probes, skipped


def _tenant_rows(rows: Sequence[Any], keys: frozenset[str], fn: Function, tenants: Mapping[str, TenantKey],
                 org: str | None) -> int | None:
    """How many result rows carry tenant ``org``'s key (``org`` None: any tenant's row, what ``anon`` must never
    get); None when the result has no tenant column to judge by.  A function returning a tenant table's rows is
    keyed by that table's own key (``orgs.id``), and every such row counts for ``anon``."""
    key = tenants.get(fn.returns_relation or "")
    own = key.column if key is not None and key.parent is None else None
    cols = keys | ({own} if own else set())
    known = (key is not None and (own is not None or org is None)) or bool(set(fn.out_columns) & cols)
    hits = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        present = [c for c in cols if c in row]
        known = known or bool(present)
        values = [str(row[c]) for c in present if row[c] is not None]
        if (org is None and (values or key is not None)) or (org is not None and org in values):
            hits += 1
    return hits if known else None


def _caller(config: CutoverConfig, app_role: str, app: asyncpg.Connection, control: asyncpg.Connection
            ) -> Callable[..., Awaitable[Any]]:
    """``call(role, org_a, org_b, fetch)``: run ``fetch(conn)`` as ``role`` in a transaction that is always rolled
    back: the app role through its own URL with org A's context set like the app; an API role on the control
    connection with ``SET LOCAL ROLE`` and the claims PostgREST sets; ``role`` None: the BYPASSRLS control itself,
    with org A's context.  ``timeout_ms`` also sets a statement_timeout."""
    import json
    import uuid

    from pytest_cutover.checks.isolation import _in_tx

    async def call(role: str | None, org_a: str, org_b: str | None,
                   fetch: Callable[[asyncpg.Connection], Awaitable[Any]], timeout_ms: int | None = None) -> Any:
        api = role is not None and role != app_role
        conn = app if role == app_role else control

        async def body() -> Any:
            if timeout_ms:
                await conn.execute("select set_config('statement_timeout', $1, true)", f"{timeout_ms}ms")
            if api:
                claims: dict[str, Any] = {"role": role, "iss": "supabase"}
                if role != "anon":  # a signed-in user of org A, as PostgREST passes a verified JWT's claims,
                    # who wrote org B into the user_metadata every user may edit for themselves
                    tenant = config.schema_.tenant_column
                    claims.update(sub=str(uuid.uuid4()), aud=role, org_id=org_a, app_metadata={tenant: org_a},
                                  user_metadata={tenant: org_b})
                await conn.execute(f"set local role {quote_ident(role or '')}")
                await conn.execute("select set_config('request.jwt.claims', $1, true)", json.dumps(claims))
            return await fetch(conn)

        return await _in_tx(conn, config, None if api else org_a, None, body)

    return call


def _no_such_key(fn: Function, tenant_args: Sequence[str]) -> str:
    """A tenant key of the first tenant argument's type that no tenant has."""
    import uuid

    typ = fn.arg_types[fn.arg_names.index(tenant_args[0])] if tenant_args else "text"
    if typ == "uuid":
        return str(uuid.uuid4())
    return "-987654321" if typ in ("integer", "bigint", "smallint") else f"cutover-probe-no-such-org-{uuid.uuid4()}"


def _call_failed(value: Any) -> str | None:
    """What went wrong with one probe call (an error or a timeout), or ``None`` when it answered."""
    import asyncpg

    if isinstance(value, asyncpg.PostgresError):
        return f"{value.sqlstate} {str(value).splitlines()[0][:120]}"
    return "no answer within the timeout" if isinstance(value, TimeoutError) else None


def _function_fix(fn: Function, role: str) -> str:
    """How to close a leaking function: a definer's EXECUTE revoked (or made invoker); an invoker's tables fixed."""
    if fn.definer:
        return (f"REVOKE EXECUTE ON FUNCTION {fn.signature} FROM PUBLIC, {role}; or, if {role} must call it, "
                f"ALTER FUNCTION {fn.signature} SECURITY INVOKER SET search_path = ''")
    return ("it runs as the caller, so a table it reads leaks: see the relation probes and the precutover "
            "exposed-surface audit")


async def _probe_functions(config: CutoverConfig, found: Surface, rules: Rules, call: Callable[..., Awaitable[Any]],
                           org_a: str, org_b: str) -> tuple[list[str], dict[str, Any]]:
    """Every planned function call (:func:`plan_function_probes`); the leaks and the figure."""
    import json

    import asyncpg

    probes, skipped = plan_function_probes(found, rules)
    keys = tenant_key_names(found, rules)
    tenants = tenant_tables(found, rules)
    timeout_ms = 2000
    problems: list[str] = []
    errors: list[str] = []
    not_judged: list[str] = []
    vacuous: list[str] = []
    leaked: set[str] = set()
    judged = 0

    async def run(role: str | None, probe: FunctionProbe, key: str) -> Any:
        """Rows (parsed) or the scalar as text; an error as the exception."""
        args = (key,) if probe.tenant_args else ()

        async def fetch(conn: asyncpg.Connection) -> Any:
            if probe.rows:
                got = await conn.fetch(probe.call, *args, timeout=timeout_ms / 1000 + 5)
                return [None if r[0] is None else json.loads(r[0]) for r in got]
            return await conn.fetchval(probe.call, *args, timeout=timeout_ms / 1000 + 5)

        try:
            return await call(role, org_a, org_b, fetch, timeout_ms)
        except (TimeoutError, asyncpg.PostgresError) as exc:
            return exc

    control: dict[str, tuple[Any, Any, Any]] = {}   # function -> the control's (B, none, none again)
    for p in probes:
        fn = p.function
        if p.label not in control:
            none = _no_such_key(fn, p.tenant_args)
            control[p.label] = (await run(None, p, org_b), await run(None, p, none), await run(None, p, none))
        c_b, c_none, c_none2 = control[p.label]
        got = await run(p.role, p, org_b)
        where = f"{p.label} as {p.role}"
        if _call_failed(got):
            errors.append(f"{where}: {_call_failed(got)}")
            continue
        fix = _function_fix(fn, p.role)
        who = f"{p.role} calls {p.label}" + ("" if p.role == "anon" else f" as a caller of org {org_a}")
        by_rows = _tenant_rows(got, keys, fn, tenants, None if p.role == "anon" else org_b) if p.rows else None
        if by_rows is not None:
            judged += 1
            control_rows = None if _call_failed(c_b) else _tenant_rows(c_b, keys, fn, tenants,
                                                               None if p.role == "anon" else org_b)
            if not control_rows and not by_rows:
                vacuous.append(where)
            if by_rows:
                leaked.add(p.label)
                whose = f"{by_rows} tenant rows" if p.role == "anon" else f"{by_rows} of org {org_b}'s rows"
                problems.append(f"RLS LEAK: {who} and gets {whose}: fix: {fix}")
            continue
        if not p.tenant_args:
            not_judged.append(f"{where}: no tenant argument and no tenant column in its result")
            continue
        none_1 = await run(p.role, p, _no_such_key(fn, p.tenant_args))
        none_2 = await run(p.role, p, _no_such_key(fn, p.tenant_args))
        if _call_failed(none_1) or _call_failed(none_2) or none_1 != none_2:
            not_judged.append(f"{where}: its result with a key no tenant has varies or fails")
            continue
        judged += 1
        if not any(_call_failed(v) for v in (c_b, c_none, c_none2)) and c_none == c_none2 and c_b == c_none:
            vacuous.append(where)
        if got != none_1:
            leaked.add(p.label)
            problems.append(f"RLS LEAK: {who} with org {org_b}'s key ({', '.join(p.tenant_args)}) and gets another "
                            f"result than with a key no tenant has: it reads org {org_b}'s data; fix: {fix}")
    called = {p.label for p in probes}
    managed = sum(1 for fn in found.functions if (fn.schema in MANAGED_SCHEMAS or fn.extension)
                  and any(r in found.roles for r in fn.executors))
    figure = {"called": len(called), "calls": len(probes), "judged": judged, "leaks": len(problems),
              "not_called_managed": managed,
              "leaked": sorted(leaked), "skipped": skipped, "not_judged": not_judged, "errors": errors,
              "control_saw_nothing": vacuous}
    return problems, figure


async def _probe_surface(config: CutoverConfig) -> CheckResult:
    """Each planned read as its role, with the BYPASSRLS control seeing org B's rows first; then each planned
    function call (:func:`_probe_functions`)."""
    from pytest_cutover.checks.isolation import _control_bypasses, _orgs_from_db_async

    found, rules = await read_surface_async(config)
    probes = plan_probes(found, rules)
    problems: list[str] = []
    vacuous: list[str] = []
    leaks = 0
    async with config_connection(config, "target.database_url") as control, \
            config_connection(config, "target.app_database_url") as app:
        await _control_bypasses(control)
        orgs = await _orgs_from_db_async(control, config)
        call = _caller(config, found.app_role, app, control)
        for p in probes:
            rel = shown_ident(p.relation)
            where = f" where {quote_ident(p.column)}::text = $1" if p.column else ""
            if p.column:
                org_b = await control.fetchval(f"select {quote_ident(p.column)}::text from {rel} group by 1 "
                                               f"order by count(*) desc, 1 limit 1")
                args: tuple[Any, ...] = (org_b,)
            else:
                org_b, args = None, ()
            seen = await control.fetchval(f"select count(*) from {rel}{where}", *args)
            if not seen:
                vacuous.append(f"{p.relation} as {p.role}")
                continue
            org_a = next((o for o in orgs if o != org_b), "cutover-probe-no-such-org")
            query = f"select count(*) from {rel}{where}"
            got = await call(p.role, org_a, org_b, lambda conn, q=query, a=args: conn.fetchval(q, *a))
            if got:
                leaks += 1
                whose = f"{got} of org {org_b}'s {seen} rows" if p.column else f"{got} tenant rows"
                problems.append(f"RLS LEAK: {p.role} reads {whose} in {p.relation}"
                                + (f" as a caller of org {org_a}" if p.column and p.role != "anon" else "")
                                + ": fix it as the precutover exposed-surface audit says (test_exposed_surface_"
                                  "does_not_leak)")
        org_b = orgs[0]
        org_a = next((o for o in orgs if o != org_b), "cutover-probe-no-such-org")
        fn_problems, functions = await _probe_functions(config, found, rules, call, org_a, org_b)
    evidence = (f"{len(probes)} reads of the exposed surface as {', '.join(found.roles)}: {leaks} leaks; "
                f"control saw no rows to probe in {len(vacuous)}; {functions['called']} functions called "
                f"({functions['calls']} calls, {functions['judged']} judged): {functions['leaks']} leaks; "
                f"{len(functions['skipped'])} functions not called (and {functions['not_called_managed']} in "
                f"managed schemas or extensions)")
    return result("surface-probe", problems + fn_problems, evidence,
                  {"probes": len(probes), "leaks": leaks, "not_probed_empty": vacuous, "functions": functions})


def probe_surface(config: CutoverConfig) -> CheckResult:
    """The rls stage's reads and calls of the whole exposed surface (:func:`plan_probes`,
    :func:`plan_function_probes`), from synchronous code."""
    return run_sync(_probe_surface(config), timeout=config.thresholds.connect_timeout_s * 4 + 300)
