"""Runbook "Infrastructure": pgvector, the embedding column, the storage bucket and its RLS, on the target.

All read through ``target.database_url`` (the direct/session connection, as ``postgres`` on Supabase),
from the catalog and ``storage.buckets``/``pg_policy``: nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_cutover.checks.base import CheckResult, result, run_sync
from pytest_cutover.checks.db import config_connection
from pytest_cutover.checks.rls_audit import unbound_branches
from pytest_cutover.util.sql import quote_ident

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["TargetFacts", "check_bucket", "check_embedding", "check_pgvector", "check_provisioned", "check_storage_rls",
           "target_facts"]

#: HNSW indexes need pgvector 0.5.0 or later.
MIN_PGVECTOR = (0, 5, 0)


@dataclass(frozen=True)
class TargetFacts:
    """What the target's catalog says (read once)."""

    pgvector: str | None
    pgvector_available: str | None
    embedding_type: str | None          # e.g. vector(1536); None: no such column
    fragments_exists: bool
    storage_schema: bool
    bucket: dict[str, Any] | None
    objects_rls: bool | None
    object_policies: tuple[dict[str, Any], ...] = field(default_factory=tuple)


async def _facts(config: CutoverConfig) -> TargetFacts:
    s = config.schema_
    async with config_connection(config, "target.database_url") as conn:
        ext = await conn.fetchval("select extversion from pg_extension where extname = 'vector'")
        avail = await conn.fetchval("select default_version from pg_available_extensions where name = 'vector'")
        frag = quote_ident(s.fragments_table if "." in s.fragments_table else f"public.{s.fragments_table}")
        exists = bool(await conn.fetchval("select to_regclass($1) is not null", frag))
        col_type = await conn.fetchval(
            "select format_type(atttypid, atttypmod) from pg_attribute where attrelid = to_regclass($1) "
            "and attname = $2 and not attisdropped", frag, s.embedding_column) if exists else None
        storage = bool(await conn.fetchval("select to_regclass('storage.buckets') is not null "
                                           "and to_regclass('storage.objects') is not null"))
        bucket = rls = None
        policies: tuple[dict[str, Any], ...] = ()
        if storage:
            row = await conn.fetchrow("select id, name, public from storage.buckets where id = $1 or name = $1 "
                                      "order by (id = $1) desc limit 1", config.target.bucket)
            bucket = dict(row) if row else None
            rls = await conn.fetchval("select relrowsecurity from pg_class where oid = 'storage.objects'::regclass")
            policies = tuple(dict(r) for r in await conn.fetch(
                "select polname as name, polcmd::text as cmd, polpermissive as permissive, "
                "array(select case when r = 0 then 'public' else pg_get_userbyid(r) end "
                "      from unnest(polroles) r) as roles, "
                "pg_get_expr(polqual, polrelid) as using_expr, pg_get_expr(polwithcheck, polrelid) as check_expr "
                "from pg_policy where polrelid = 'storage.objects'::regclass order by polname"))
    return TargetFacts(ext, avail, col_type, exists, storage, bucket, rls, policies)


def target_facts(config: CutoverConfig) -> TargetFacts:
    """Read the target's facts once (sync)."""
    return run_sync(_facts(config), timeout=config.thresholds.connect_timeout_s + 60)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def check_pgvector(facts: TargetFacts) -> CheckResult:
    """Runbook "pgvector extension enabled" (and recent enough for HNSW)."""
    if facts.pgvector is None:
        avail = f" (version {facts.pgvector_available} is available)" if facts.pgvector_available else \
            " and the server does not even offer it"
        return result("target-pgvector", [f"pgvector is not installed in the target database{avail}: run CREATE "
                                          f"EXTENSION vector (Supabase: Database > Extensions > vector)"],
                      "pgvector: not installed", {"pgvector_version": None})
    problems = []
    if _version(facts.pgvector) < MIN_PGVECTOR:
        problems.append(f"pgvector {facts.pgvector} is older than 0.5.0 and has no HNSW index: run ALTER EXTENSION "
                        f"vector UPDATE")
    return result("target-pgvector", problems, f"pgvector {facts.pgvector} installed",
                  {"pgvector_version": facts.pgvector})


def check_embedding(facts: TargetFacts, config: CutoverConfig, collection_dim: int | None) -> CheckResult:
    """The embedding column exists as ``vector(n)`` and ``n`` is the Qdrant collection's dimension."""
    s = config.schema_
    where = f"{s.fragments_table}.{s.embedding_column}"
    if not facts.fragments_exists:
        return result("target-embedding", [f"table {s.fragments_table} does not exist on the target: run the schema "
                                           f"migration"], f"{s.fragments_table}: missing")
    if facts.embedding_type is None:
        dim = collection_dim or "<dimension>"
        return result("target-embedding", [f"column {where} does not exist on the target: run ALTER TABLE "
                                           f"{s.fragments_table} ADD COLUMN {s.embedding_column} vector({dim})"],
                      f"{where}: missing")
    match = re.fullmatch(r"vector\((\d+)\)", facts.embedding_type)
    dim = int(match.group(1)) if match else None
    problems = []
    if dim is None:
        problems.append(f"{where} is {facts.embedding_type}, not vector(n) with a fixed dimension: pgvector indexes "
                        f"need one; run ALTER TABLE {s.fragments_table} ALTER COLUMN {s.embedding_column} TYPE "
                        f"vector({collection_dim or '<dimension>'})")
    elif collection_dim is not None and dim != collection_dim:
        problems.append(f"{where} is vector({dim}) but the Qdrant collection {config.source.collection} holds "
                        f"{collection_dim}-d vectors: every point would be rejected; change the column to "
                        f"vector({collection_dim})")
    return result("target-embedding", problems,
                  f"{where}: {facts.embedding_type}; collection dimension {collection_dim}",
                  {"embedding_dimension": dim, "collection_dimension": collection_dim})


def check_bucket(facts: TargetFacts, config: CutoverConfig) -> CheckResult:
    """Runbook "Storage bucket created": it exists and is not public."""
    name = config.target.bucket
    if not facts.storage_schema:
        return result("target-bucket", ["the target has no storage.buckets/storage.objects: is this a Supabase "
                                         "project with Storage enabled?"], "no storage schema")
    if facts.bucket is None:
        return result("target-bucket", [f"storage bucket {name} does not exist: create it as a private bucket "
                                         f"(Supabase: Storage > New bucket, Public off)"], f"bucket {name}: missing")
    problems = []
    if facts.bucket["public"]:
        problems.append(f"storage bucket {name} is PUBLIC: anyone with an object's path reads it without a JWT, "
                        f"across every org: run UPDATE storage.buckets SET public = false WHERE id = '{name}' "
                        f"(Supabase: Storage > bucket > Edit > Public off)")
    return result("target-bucket", problems, f"bucket {name}: public={facts.bucket['public']}",
                  {"bucket_public": bool(facts.bucket["public"])})


def check_storage_rls(facts: TargetFacts, config: CutoverConfig) -> CheckResult:
    """Runbook "Storage bucket created with RLS policies": RLS on storage.objects, tenant-scoped read policies."""
    name = config.target.bucket
    if not facts.storage_schema:
        return result("target-storage-rls", ["the target has no storage.objects table"], "no storage schema")
    problems = []
    if not facts.objects_rls:
        problems.append("RLS is DISABLED on storage.objects: every signed-in user can read every object: run ALTER "
                        "TABLE storage.objects ENABLE ROW LEVEL SECURITY")
    literal = f"'{name}'"
    relevant = [p for p in facts.object_policies
                if literal in (p["using_expr"] or "") + (p["check_expr"] or "")
                or "bucket_id" not in (p["using_expr"] or "") + (p["check_expr"] or "")]
    cmds = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    covered = {cmds.get(p["cmd"], p["cmd"]) for p in relevant if p["permissive"]}
    if not ({"SELECT", "ALL"} & covered):
        problems.append(f"no SELECT policy on storage.objects covers bucket {name}: users cannot read their own "
                        f"org's files; add one tied to the caller, e.g. USING (bucket_id = '{name}' AND "
                        f"(storage.foldername(name))[1] = (select auth.jwt()) ->> 'org_id')")
    for p in relevant:
        if not p["permissive"] or set(p["roles"]) <= {"service_role"}:
            continue
        for label, expr in (("USING", p["using_expr"]), ("WITH CHECK", p["check_expr"])):
            loose = unbound_branches(expr, "name", ())
            if loose:
                problems.append(f"storage policy {p['name']} ({cmds.get(p['cmd'], p['cmd'])}, roles "
                                f"{', '.join(p['roles'])}) {label} has a branch that ignores the caller: "
                                f"{'; '.join(loose)}; every org's objects pass it: tie it to auth.jwt()/auth.uid() "
                                f"or drop it (DROP POLICY \"{p['name']}\" ON storage.objects)")
    return result("target-storage-rls", problems,
                  f"storage.objects: rls={facts.objects_rls}, {len(relevant)} policies for bucket {name} "
                  f"({', '.join(sorted(covered)) or 'no commands'})",
                  {"storage_rls": facts.objects_rls, "storage_policies": len(relevant)})


def check_provisioned(config: CutoverConfig) -> CheckResult:
    """Runbook "Supabase project fully provisioned": every app table and the storage schema exist on the target."""
    s = config.schema_
    tables = sorted({*s.parity_tables, *s.tenant_tables, s.fragments_table, s.attachments_table, s.threads_table})

    async def ask() -> tuple[list[str], str, bool]:
        async with config_connection(config, "target.database_url") as conn:
            missing = [t for t in tables if not await conn.fetchval(
                "select to_regclass($1) is not null", quote_ident(t if "." in t else f"public.{t}"))]
            version = await conn.fetchval("show server_version")
            storage = bool(await conn.fetchval("select to_regclass('storage.objects') is not null"))
        return missing, version, storage

    missing, version, storage = run_sync(ask(), timeout=config.thresholds.connect_timeout_s + 60)
    problems = [f"table {t} does not exist on the target: run the schema migration before the cutover"
                for t in missing]
    if not storage:
        problems.append("the target has no storage.objects: enable Supabase Storage for the project")
    return result("target-provisioned", problems,
                  f"PostgreSQL {version}: {len(tables) - len(missing)} of {len(tables)} app tables present, "
                  f"storage schema {'present' if storage else 'missing'}",
                  {"server_version": version, "missing_tables": missing})
