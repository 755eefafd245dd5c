"""The fault catalog: every fault a gate guards against, and how the rehearsal plants it for real.

Each fault names the stage whose gate must catch it (README, "The fault matrix") and *when* it is
planted: ``before`` (after the stack is up, before the suite runs), ``after-sync`` (between the
migration's copy and its verification, by the suite's rehearsal hook) or ``during-monitor`` (partway
through the monitor window).  Planting changes the real system: SQL on the target, commits in the
app's git checkout, points in the Qdrant folder, the app's FAULTS_FILE, the configured URLs, file
times.  Nothing is simulated: a gate catches a planted fault only by looking at the world.

``plant(stack, name)`` takes any object with the attributes of :class:`FaultTarget`
(:mod:`pytest_cutover.rehearsal.protocol`; both stacks have them) and returns one line of evidence
saying what it changed.  This module never imports a stack: the stacks import it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_cutover.actions.envfile import read_value
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.protocol import FaultTarget
from pytest_cutover.rehearsal.services import GIT_IDENTITY
from pytest_cutover.stages import STAGES
from pytest_cutover.util.git import git_or_raise
from pytest_cutover.util.sql import quote_literal

__all__ = [
    "AFTER_PRESYNC",
    "AFTER_SYNC",
    "BEFORE",
    "DURING_MONITOR",
    "FAULTS",
    "SURFACE_FAULTS",
    "Fault",
    "FaultTarget",
    "clear_runtime_faults",
    "faults_due",
    "get_fault",
    "list_faults",
    "plant",
    "plant_due",
    "run_git",
    "undo",
    "validate_faults",
]

PRECUTOVER, SYNC, SWITCH, _SMOKE, RLS, MONITOR = STAGES

When = Literal["before", "after-presync", "after-sync", "during-monitor"]
BEFORE: When = "before"
AFTER_PRESYNC: When = "after-presync"  # after the rehearsal's Day-7 pre-sync, before the first stage
AFTER_SYNC: When = "after-sync"
DURING_MONITOR: When = "during-monitor"

#: The table the table-level RLS faults hit (the one the app's threads API reads).
RLS_FAULT_TABLE = "threads"
#: Days of validity of the certificates issued under ``tls-expiring`` (inside the 14-day warning window).
TLS_EXPIRING_DAYS = 5
#: How far back ``stale-backup`` sets the backup's mtime.
STALE_BACKUP_AGE_H = 72.0


@dataclass(frozen=True)
class Fault:
    """One catalog entry: the gate that must catch it, when it is planted, how."""

    name: str
    stage: str
    when: When
    description: str
    planter: Callable[[Any], str] | None = None
    at_build: bool = False  # True: the stack must know it before it starts (e.g. certificate lifetime)
    #: Puts the stack back as it was before the fault, so one stack serves many faults (None: not reversible,
    #: e.g. data the sync stage migrates, or a certificate issued at build time).
    undoer: Callable[[Any], None] | None = None
    #: ``caught``: the guarding stage must fail.  ``carried``: a change the cutover must carry (points changed in
    #: Qdrant after the pre-sync): the guarding stage must *pass*, its checks having verified every change; the
    #: check that would catch a skipped delta is named in the description (and proven in the unit tests).
    expect: Literal["caught", "carried"] = "caught"

    @property
    def reversible(self) -> bool:
        return self.undoer is not None

    def line(self) -> str:
        return f"{self.name}\t{self.stage}\t{self.when}\t{self.description}"


# ------------------------------------------------------------------------------------------------ helpers
def run_git(checkout: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """git in ``checkout`` with the rehearsal's identity, never prompting; ``check`` raises on failure."""
    return git_or_raise(checkout, *args, config=GIT_IDENTITY, check=check, error=lambda exc: RehearsalError(
        str(exc), hint="the app checkout is not a healthy git repository; rebuild the stack"))


def _commit_and_push(checkout: Path, paths: Sequence[str], message: str, *, merge: bool = False) -> str:
    run_git(checkout, "add", "--", *paths)
    # A merge is concluded with everything staged (git refuses a partial commit during a merge).
    run_git(checkout, "commit", "-q", "-m", message, *(() if merge else ("--", *paths)))
    if run_git(checkout, "remote", check=False).stdout.strip():
        # Pushed like a real change, so only the planted defect (not "unpushed commits") is visible.
        run_git(checkout, "push", "-q", "origin", "HEAD", check=False)
    return run_git(checkout, "rev-parse", "--short", "HEAD").stdout.strip()


def _edit_source(checkout: Path, pattern: re.Pattern[str], replace: str | Callable[[re.Match[str]], str],
                 what: str) -> list[str]:
    changed: list[str] = []
    for path in sorted((checkout / "app").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        new, count = pattern.subn(replace, text)
        if count:
            path.write_text(new, encoding="utf-8")
            changed.append(str(path.relative_to(checkout)))
    if not changed:
        raise RehearsalError(f"cannot plant the fault: no {what} found under {checkout / 'app'}",
                             hint="the reference app changed; update pytest_cutover/rehearsal/faults.py")
    return changed


def _write_runtime_fault(stack: FaultTarget, key: str, value: Any) -> str:
    path = stack.faults_file
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        current = {}
    current[key] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return f"{path.name}: {key} = {json.dumps(value)}"


def clear_runtime_faults(stack: FaultTarget, names: Iterable[str] | None = None) -> None:
    """Remove runtime faults from the app's FAULTS_FILE (all of them when ``names`` is None)."""
    path = stack.faults_file
    if names is None:
        path.unlink(missing_ok=True)
        return
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return
    for name in names:
        current.pop(name, None)
    path.write_text(json.dumps(current, sort_keys=True), encoding="utf-8")


def _runtime(key: str, value: Any) -> Callable[[FaultTarget], str]:
    def planter(stack: FaultTarget) -> str:
        return _write_runtime_fault(stack, key, value)

    return planter


def _clear_runtime(key: str) -> Callable[[FaultTarget], None]:
    def undoer(stack: FaultTarget) -> None:
        clear_runtime_faults(stack, [key])

    return undoer


# ------------------------------------------------------------------------------------------------ database faults
def _rls_disabled(stack: FaultTarget) -> str:
    stack.target_sql(f"alter table public.{RLS_FAULT_TABLE} disable row level security;")
    return f"row level security disabled on {RLS_FAULT_TABLE}"


def _rls_not_forced(stack: FaultTarget) -> str:
    # Without FORCE the owner is not filtered: make the app's role the owner, as a hand-run migration would.
    stack.target_sql(f"alter table public.{RLS_FAULT_TABLE} no force row level security;\n"
                     f"alter table public.{RLS_FAULT_TABLE} owner to app_user;")
    return f"{RLS_FAULT_TABLE}: row level security not forced, owned by app_user"


def _policy_using_true(stack: FaultTarget) -> str:
    stack.target_sql(f"create policy {RLS_FAULT_TABLE}_read_all on public.{RLS_FAULT_TABLE} "
                     "as permissive for select using (true);")
    return f"permissive policy {RLS_FAULT_TABLE}_read_all for select using (true)"


def _private_tier_leak(stack: FaultTarget) -> str:
    # OR'd with the tenant policy: same org, but the private/shared tier check is gone.
    stack.target_sql("create policy memory_fragments_org_read on public.memory_fragments as permissive for select "
                     "using (org_id = nullif((select current_setting('app.current_org_id', true)), ''));")
    return "permissive policy memory_fragments_org_read exposes private fragments within the org"


def _app_role_bypassrls(stack: FaultTarget) -> str:
    stack.set_app_database(user="postgres")
    return "target.app_database_url logs in as postgres (BYPASSRLS)"


def _session_pooler_url(stack: FaultTarget) -> str:
    stack.set_app_database(pooler="session")
    return "target.app_database_url points at the session pooler"


def _bucket_public(stack: FaultTarget) -> str:
    stack.target_sql("update storage.buckets set public = true where id = 'attachments';")
    return "storage bucket attachments is public"


def _vector_altered(stack: FaultTarget) -> str:
    out = stack.target_sql(
        "with victim as (select id from public.memory_fragments where embedding is not null order by id limit 1)\n"
        "update public.memory_fragments m set embedding = array_cat(array[(m.embedding::real[])[1] + 0.0001::real],"
        " (m.embedding::real[])[2:])::vector from victim where m.id = victim.id returning m.id;")
    ids = [line.strip() for line in out.splitlines() if line.strip()]
    if not ids:
        raise RehearsalError("cannot plant vector-altered: no migrated embedding on the target yet",
                             hint="plant it after the vector sync (when='after-sync')")
    return f"memory_fragments id {ids[0]}: first embedding component changed by 1e-4"


def _blob_corrupt(stack: FaultTarget) -> str:
    out = stack.target_sql("select name from storage.objects where bucket_id = 'attachments' order by name limit 1;")
    names = [line.strip() for line in out.splitlines() if line.strip()]
    if not names:
        raise RehearsalError("cannot plant blob-corrupt: no object in the attachments bucket yet",
                             hint="plant it after the blob sync (when='after-sync')")
    files = sorted(p for p in stack.storage_data_dir.rglob("*") if p.is_file() and str(p).endswith(names[0]))
    if not files:
        raise RehearsalError(f"cannot plant blob-corrupt: object {names[0]} has no file under {stack.storage_data_dir}",
                             hint="the storage service's on-disk layout changed; update faults.py")
    data = bytearray(files[0].read_bytes())
    if data:
        data[len(data) // 2] ^= 0xFF
    else:
        data = bytearray(b"\x00")
    files[0].write_bytes(bytes(data))
    return f"storage object {names[0]}: one byte flipped on disk"


def _env_overridden(stack: FaultTarget) -> str:
    """DATABASE_URL also set in the app's process environment (a unit file's Environment= line), which the
    app's settings prefer to ``.env``: the switch's edit is then silently ignored at the restart."""
    from pytest_cutover.rehearsal import ctl

    if stack.workdir is None or stack.env_file is None:
        raise RehearsalError("cannot plant env-overridden: the stack has no app", hint="build the stack with services")
    current = read_value(stack.env_file, "DATABASE_URL")
    if not current:
        raise RehearsalError(f"cannot plant env-overridden: {stack.env_file} has no DATABASE_URL line")
    state = ctl.read_state(stack.workdir)
    app = state.get("app") or {}
    app["env"] = {**(app.get("env") or {}), "DATABASE_URL": current}
    state["app"] = app
    ctl.write_state(stack.workdir, state)
    return "the app's process environment sets DATABASE_URL to the old database; it wins over .env at every restart"


# ------------------------------------------------------------------------------------------------ surface faults
# Mistakes the exposed-surface audit (checks/surface.py) must catch, each a real leak on the target: planted as
# `postgres` (which owns the app's tables and has BYPASSRLS, as on Supabase), undone by dropping or revoking.
#: name -> (description, SQL that plants it, SQL that undoes it)
SURFACE_FAULTS: dict[str, tuple[str, str, str]] = {
    "definer-view": (
        "a view over threads with security_invoker off, readable by the app role: it runs as postgres (BYPASSRLS)",
        "create view public.thread_titles with (security_invoker = off) as "
        "select id, org_id, title from public.threads;\n"
        "grant select on public.thread_titles to app_user;",
        "drop view public.thread_titles;"),
    "view-no-invoker": (
        "a view over messages without security_invoker, readable by authenticated",
        "create view public.recent_messages as select id, org_id, thread_id, content, created_at "
        "from public.messages;\n"
        "grant select on public.recent_messages to authenticated;",
        "drop view public.recent_messages;"),
    "definer-function": (
        "a SECURITY DEFINER function returning any org's threads, executable by everyone (PUBLIC)",
        "create function public.org_threads(p_org text) returns setof public.threads language sql stable "
        "security definer as $$ select * from public.threads where org_id = p_org $$;",
        "drop function public.org_threads(text);"),
    "anon-grant": (
        "SELECT on threads granted to anon (anyone holding the public anon key)",
        "grant select on public.threads to anon;",
        "revoke select on public.threads from anon;"),
    "secrets-table": (
        "a table of API keys without a tenant column or RLS, readable by authenticated and the app role",
        "create table public.integration_credentials (id bigint generated always as identity primary key, "
        "provider text not null, api_key text not null);\n"
        "insert into public.integration_credentials (provider, api_key) values ('mailer', 'rehearsal-not-a-key');\n"
        "grant select on public.integration_credentials to app_user, authenticated;",
        "drop table public.integration_credentials;"),
    "tenant-column-renamed": (
        "a tenant table whose tenant column is organization_id (a foreign key to orgs), without RLS",
        "create table public.projects (id bigint generated always as identity primary key, "
        "organization_id text not null references public.orgs, name text not null);\n"
        "insert into public.projects (organization_id, name) select id, 'project of ' || id from public.orgs;\n"
        "grant select, insert, update, delete on public.projects to app_user, authenticated;",
        "drop table public.projects;"),
    "policy-user-metadata": (
        "a threads policy for authenticated trusting the org in the JWT's user_metadata (the user edits it)",
        "create policy threads_by_metadata on public.threads for select to authenticated using "
        "(org_id = ((select auth.jwt()) -> 'user_metadata' ->> 'org_id'));",
        "drop policy threads_by_metadata on public.threads;"),
    "policy-unbound": (
        "a threads policy for authenticated that checks the role, not the tenant: auth.role() = 'authenticated'",
        "create policy threads_signed_in on public.threads for select to authenticated using "
        "((select auth.role()) = 'authenticated');",
        "drop policy threads_signed_in on public.threads;"),
}


def _surface_fault(name: str) -> Callable[[FaultTarget], str]:
    def planter(stack: FaultTarget) -> str:
        description, sql, _ = SURFACE_FAULTS[name]
        stack.target_sql(f"set role postgres;\n{sql}\nreset role;")
        return description

    return planter


# ------------------------------------------------------------------------------------------------ people faults
def _people_fault(name: str, on: bool) -> Callable[[FaultTarget], Any]:
    """The rehearsal attests the people items and stands every contact itself; these faults write the config
    without one attestation, or with the on-call contact going off duty inside the maintenance window."""
    def change(stack: FaultTarget) -> str:
        stack.set_people_fault(name, on)
        return f"config written {'with' if on else 'without'} {name}"

    return change


# ------------------------------------------------------------------------------------------------ source faults
_SET_LOCAL = re.compile(r"(set_config\('app\.current_(?:org|user)_id',\s*:\w+,\s*)true\)")
_CACHE_LINE = re.compile(r"^[ \t]*[\"'](?:prepared_)?statement_cache_size[\"']:\s*0,?[ \t]*\n", re.M)


def _session_set(stack: FaultTarget) -> str:
    changed = _edit_source(stack.app_dir, _SET_LOCAL, r"\1false)", "set_config(..., true) for the tenant")
    rev = _commit_and_push(stack.app_dir, changed, "Keep the tenant for the whole connection")
    return f"{', '.join(changed)}: set_config(..., false) (session scope), commit {rev}"


def _statement_cache_on(stack: FaultTarget) -> str:
    changed = _edit_source(stack.app_dir, _CACHE_LINE, "", "statement_cache_size=0 in the engine")
    rev = _commit_and_push(stack.app_dir, changed, "Use the driver's default statement cache")
    return f"{', '.join(changed)}: statement_cache_size=0 removed, commit {rev}"


def _syntax_error(stack: FaultTarget) -> str:
    target = stack.app_dir / "app" / "search.py"
    if not target.exists():
        target = sorted((stack.app_dir / "app").glob("*.py"))[-1]
    rel = str(target.relative_to(stack.app_dir))
    with target.open("a", encoding="utf-8") as fh:
        fh.write("\n\ndef rank_results(results)\n    return sorted(results, key=lambda r: -r.score)\n")
    rev = _commit_and_push(stack.app_dir, [rel], "Rank search results")
    return f"{rel}: a def without its colon, commit {rev}"


def _merge_conflict(stack: FaultTarget) -> str:
    """A real conflicting merge whose conflict markers were committed (git commit -a after the failed merge)."""
    checkout = stack.app_dir
    target = checkout / "app" / "config.py"
    rel = str(target.relative_to(checkout))
    base = run_git(checkout, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    original = target.read_text(encoding="utf-8")
    run_git(checkout, "checkout", "-q", "-b", "feature/search-timeout")
    target.write_text(original.replace('"SEARCH_TIMEOUT_MS", "2000"', '"SEARCH_TIMEOUT_MS", "5000"', 1)
                      if '"SEARCH_TIMEOUT_MS", "2000"' in original else original + "\nSEARCH_TIMEOUT_MS = 5000\n",
                      encoding="utf-8")
    run_git(checkout, "commit", "-q", "-am", "Raise the search timeout")
    run_git(checkout, "checkout", "-q", base)
    target.write_text(original.replace('"SEARCH_TIMEOUT_MS", "2000"', '"SEARCH_TIMEOUT_MS", "1000"', 1)
                      if '"SEARCH_TIMEOUT_MS", "2000"' in original else original + "\nSEARCH_TIMEOUT_MS = 1000\n",
                      encoding="utf-8")
    run_git(checkout, "commit", "-q", "-am", "Lower the search timeout")
    merged = run_git(checkout, "merge", "--no-edit", "feature/search-timeout", check=False)
    if "CONFLICT" not in merged.stdout + merged.stderr:
        raise RehearsalError(f"cannot plant merge-conflict: the merge did not conflict ({merged.stdout.strip()})",
                             hint="the reference app changed; update faults.py")
    rev = _commit_and_push(checkout, [rel], "Merge branch 'feature/search-timeout'", merge=True)
    return f"{rel}: conflict markers committed in merge {rev}"


def _dirty_git(stack: FaultTarget) -> str:
    target = stack.app_dir / "app" / "config.py"
    with target.open("a", encoding="utf-8") as fh:
        fh.write("\n# TODO(hotfix): bump pool size before the cutover\n")
    return f"{target.relative_to(stack.app_dir)}: modified, not committed"


def _stale_backup(stack: FaultTarget) -> str:
    path = stack.backup_path
    if not path.exists():
        raise RehearsalError(f"cannot plant stale-backup: backup {path} does not exist",
                             hint="the stack takes the backup at start; check its log")
    old = time.time() - STALE_BACKUP_AGE_H * 3600
    os.utime(path, (old, old))
    return f"{path.name}: modified time set {STALE_BACKUP_AGE_H:.0f} h ago"


def _tls_expiring(stack: FaultTarget) -> str:
    days = getattr(stack, "cert_days", None)
    if days is None or days > TLS_EXPIRING_DAYS:
        raise RehearsalError("tls-expiring must be given when the stack is built (it sets the certificate lifetime)",
                             hint="EmbeddedStack(faults=['tls-expiring']) or cutover rehearse --fault tls-expiring")
    return f"pooler and API certificates expire in {days} days"


# ------------------------------------------------------------------------------------------------ undoing
def _sql_undo(sql: str) -> Callable[[FaultTarget], None]:
    def undoer(stack: FaultTarget) -> None:
        stack.target_sql(sql)

    return undoer


def _app_database_undo(stack: FaultTarget) -> None:
    stack.set_app_database(user="app_user", pooler="transaction")


def _backup_undo(stack: FaultTarget) -> None:
    os.utime(stack.backup_path, None)


def _checkout_undo(stack: FaultTarget) -> None:
    """Back to the commit the stack started from, in the checkout and in its origin (source faults push)."""
    base = getattr(stack, "app_base_rev", None)
    if not base:
        raise RehearsalError("cannot undo a source fault: the stack recorded no base commit of the app checkout",
                             hint="build the stack with EmbeddedStack, which records app_base_rev at start")
    checkout = stack.app_dir
    run_git(checkout, "merge", "--abort", check=False)
    run_git(checkout, "checkout", "-q", "-f", "main")
    run_git(checkout, "reset", "-q", "--hard", base)
    run_git(checkout, "clean", "-q", "-f", "-d")  # -x not given: .env and logs are git-ignored and stay
    for branch in run_git(checkout, "branch", "--format=%(refname:short)").stdout.split():
        if branch != "main":
            run_git(checkout, "branch", "-q", "-D", branch)
    if run_git(checkout, "remote", check=False).stdout.strip():
        run_git(checkout, "push", "-q", "-f", "origin", "HEAD:main")


# ------------------------------------------------------------------------------------------------ qdrant faults
def _first_user(stack: FaultTarget, *, exclude_org: str | None = None) -> tuple[str, str]:
    where = f"where org_id <> {quote_literal(exclude_org)} " if exclude_org else ""
    out = stack.target_sql(f"select org_id || '|' || id from public.users {where}order by id limit 1;")
    line = next((x.strip() for x in out.splitlines() if x.strip()), "")
    if "|" not in line:
        raise RehearsalError("cannot plant the fault: the target has no users (was the seed loaded?)")
    org, user = line.split("|", 1)
    return org, user


def _add_fragment_row(stack: FaultTarget, org: str, user: str, vector_id: str, content: str) -> int:
    """The same fragment row in the old and the target database (so relational parity still holds).

    Every column is copied, ``created_at`` included: a second ``now()`` would differ and break parity.
    """
    cols = "(org_id, user_id, tier, content, vector_id)"
    vals = "(" + ", ".join([quote_literal(org), quote_literal(user), "'shared'", quote_literal(content),
                            quote_literal(vector_id)]) + ")"
    out = stack.old_sql(f"insert into public.memory_fragments {cols} values {vals} "
                        "returning id || '|' || created_at::text;")
    frag_text, created = next(x.strip() for x in out.splitlines() if x.strip()).split("|", 1)
    frag_id = int(frag_text)
    stack.target_sql(
        "insert into public.memory_fragments (id, org_id, user_id, tier, content, vector_id, created_at) "
        f"overriding system value values ({frag_id}, {quote_literal(org)}, {quote_literal(user)}, 'shared', "
        f"{quote_literal(content)}, {quote_literal(vector_id)}, {quote_literal(created)}::timestamptz);\n"
        "select setval(pg_get_serial_sequence('public.memory_fragments', 'id'), "
        "(select max(id) from public.memory_fragments));")
    return frag_id


class _QdrantFolder:
    """The local-mode folder, locked by opening a client (one process at a time), with raw writes.

    qdrant-client's local mode refuses NaN and wrong-size vectors on upsert and cannot even load a
    wrong-size dense vector, so those points are written straight into the collection's storage
    while we hold the folder's lock: the state a damaged or hand-edited source can be in.
    """

    def __init__(self, stack: FaultTarget) -> None:
        import warnings

        from qdrant_client import QdrantClient

        self.stack = stack
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client = QdrantClient(path=str(stack.qdrant_path))
        except RuntimeError as exc:
            raise RehearsalError(f"cannot plant a qdrant fault: folder {stack.qdrant_path} is in use ({exc})",
                                 hint="plant qdrant faults before the app opens the folder") from None
        self.dim = int(self.client.get_collection(stack.collection).config.params.vectors.size)  # type: ignore[union-attr]

    def sample_vector(self) -> list[float]:
        records, _ = self.client.scroll(self.stack.collection, limit=1, with_vectors=True)
        if not records:
            raise RehearsalError(f"cannot plant a qdrant fault: collection {self.stack.collection} is empty")
        return [float(x) for x in records[0].vector]  # type: ignore[union-attr]

    def upsert(self, point_id: str, vector: list[float], payload: dict[str, Any]) -> None:
        from qdrant_client import models

        self.client.upsert(self.stack.collection, points=[models.PointStruct(id=point_id, vector=vector,
                                                                                 payload=payload)], wait=True)

    def raw_write(self, point_id: str, vector: Any, payload: dict[str, Any]) -> None:
        from qdrant_client import models
        from qdrant_client.local.persistence import CollectionPersistence

        folder = Path(self.stack.qdrant_path) / "collection" / self.stack.collection
        store = CollectionPersistence(str(folder))
        try:
            store.persist(models.PointStruct.model_construct(id=point_id, vector=vector, payload=payload))
        finally:
            store.close()

    def close(self) -> None:
        self.client.close()


def _bad_point(kind: str) -> Callable[[FaultTarget], str]:
    def planter(stack: FaultTarget) -> str:
        folder = _QdrantFolder(stack)
        try:
            org, user = _first_user(stack)
            point_id = str(uuid.uuid4())
            vector = folder.sample_vector()
            payload: dict[str, Any] = {"org_id": org, "user_id": user}
            if kind == "payload-org-mismatch":
                other_org, _ = _first_user(stack, exclude_org=org)
                payload["org_id"] = other_org
            frag_id = _add_fragment_row(stack, org, user, point_id, f"rehearsal fault {kind}")
            payload["fragment_id"] = frag_id
            if kind == "nan-vector":
                vector[len(vector) // 2] = float("nan")
                folder.raw_write(point_id, vector, payload)
                detail = "one component is NaN"
            elif kind == "wrong-dim-vector":
                # Stored under a legacy vector name with 768 values: scroll yields no 1536-d vector for it.
                folder.raw_write(point_id, {"legacy-768": vector[:768]}, payload)
                detail = f"a 768-d vector instead of {folder.dim}-d"
            else:
                folder.upsert(point_id, vector, payload)
                detail = f"payload org_id {payload['org_id']} but the row's org is {org}"
        finally:
            folder.close()
        return f"point {point_id} (fragment {frag_id}): {detail}"

    return planter


def _missing_point(stack: FaultTarget) -> str:
    org, user = _first_user(stack)
    point_id = str(uuid.uuid4())
    frag_id = _add_fragment_row(stack, org, user, point_id, "rehearsal fault missing-point")
    return f"fragment {frag_id} has vector_id {point_id} with no point in qdrant"


def _qdrant_changed_after_presync(stack: FaultTarget) -> str:
    """What a live app does between the pre-sync and the window: two vectors re-embedded, one memory moved to
    another org (its point's payload and its row, in both databases), two memories added and one deleted
    (point and row).  The delta final sync must carry every one of them."""
    import numpy as np

    folder = _QdrantFolder(stack)
    try:
        records, _ = folder.client.scroll(stack.collection, limit=20, with_vectors=True, with_payload=True)
        if len(records) < 4:
            raise RehearsalError(f"cannot plant the fault: collection {stack.collection} has fewer than 4 points")
        for record in records[:2]:
            vector = np.roll(np.asarray(record.vector, dtype=np.float32), 1)
            folder.upsert(str(record.id), vector.tolist(), dict(record.payload or {}))
        moved = records[2]
        org = str((moved.payload or {}).get("org_id"))
        other_org, other_user = _first_user(stack, exclude_org=org)
        folder.client.set_payload(stack.collection, {"org_id": other_org}, points=[moved.id], wait=True)
        move = (f"update public.memory_fragments set org_id = {quote_literal(other_org)}, user_id = "
                f"{quote_literal(other_user)} where vector_id = {quote_literal(str(moved.id))};")
        stack.old_sql(move)
        stack.target_sql(move)
        added = []
        for n in range(2):
            point_id = str(uuid.uuid4())
            frag_id = _add_fragment_row(stack, other_org, other_user, point_id,
                                        f"rehearsal fault qdrant-changed-after-presync {n}")
            folder.upsert(point_id, np.roll(np.asarray(records[3 + n].vector, dtype=np.float32), 2).tolist(),
                          {"org_id": other_org, "user_id": other_user, "fragment_id": frag_id})
            added.append(point_id)
        gone = records[5] if len(records) > 5 else records[3]
        from qdrant_client import models

        folder.client.delete(stack.collection, points_selector=models.PointIdsList(points=[gone.id]), wait=True)
        drop = f"delete from public.memory_fragments where vector_id = {quote_literal(str(gone.id))};"
        stack.old_sql(drop)
        stack.target_sql(drop)
    finally:
        folder.close()
    return (f"vectors changed {records[0].id}, {records[1].id}; point {moved.id} moved to {other_org}; added "
            f"{', '.join(added)}; deleted {gone.id}")


# ------------------------------------------------------------------------------------------------ the catalog
_CATALOG: tuple[Fault, ...] = (
    Fault("rls-disabled", PRECUTOVER, BEFORE, f"row level security disabled on {RLS_FAULT_TABLE}", _rls_disabled,
          undoer=_sql_undo(f"alter table public.{RLS_FAULT_TABLE} enable row level security;")),
    Fault("rls-not-forced", PRECUTOVER, BEFORE,
          f"{RLS_FAULT_TABLE}: RLS not forced and owned by the app role, so the owner is not filtered",
          _rls_not_forced, undoer=_sql_undo(
              # Ownership took app_user's grants along (they became owner rights): give them back as well.
              f"alter table public.{RLS_FAULT_TABLE} owner to postgres;\n"
              f"alter table public.{RLS_FAULT_TABLE} force row level security;\n"
              f"grant select, insert, update, delete on public.{RLS_FAULT_TABLE} to app_user;")),
    Fault("policy-using-true", PRECUTOVER, BEFORE,
          f"a permissive cross-org policy for select using (true) on {RLS_FAULT_TABLE}", _policy_using_true,
          undoer=_sql_undo(f"drop policy {RLS_FAULT_TABLE}_read_all on public.{RLS_FAULT_TABLE};")),
    Fault("app-role-bypassrls", PRECUTOVER, BEFORE,
          "the app's database URL logs in as postgres, which has BYPASSRLS", _app_role_bypassrls,
          undoer=_app_database_undo),
    Fault("session-set", PRECUTOVER, BEFORE,
          "the app sets the tenant with set_config(..., false): session scope, leaks through the pooler", _session_set,
          undoer=_checkout_undo),
    Fault("session-pooler-url", PRECUTOVER, BEFORE,
          "the configured app database URL points at the session pooler, not the transaction pooler",
          _session_pooler_url, undoer=_app_database_undo),
    Fault("statement-cache-on", PRECUTOVER, BEFORE,
          "the app's engine keeps asyncpg's statement cache (no statement_cache_size=0)", _statement_cache_on,
          undoer=_checkout_undo),
    Fault("missing-point", SYNC, BEFORE, "a fragment row whose vector_id has no point in qdrant", _missing_point),
    Fault("nan-vector", SYNC, BEFORE, "an extra qdrant point with a NaN component", _bad_point("nan-vector")),
    Fault("wrong-dim-vector", SYNC, BEFORE, "an extra qdrant point without a 1536-d vector (a 768-d one)",
          _bad_point("wrong-dim-vector")),
    Fault("payload-org-mismatch", SYNC, BEFORE, "an extra qdrant point whose payload org_id differs from its row",
          _bad_point("payload-org-mismatch")),
    Fault("vector-altered", SYNC, AFTER_SYNC, "one migrated embedding changed after the copy (bit-exact check)",
          _vector_altered),
    Fault("blob-corrupt", SYNC, AFTER_SYNC, "one migrated storage object corrupted on disk after the upload",
          _blob_corrupt),
    Fault("bucket-public", PRECUTOVER, BEFORE, "the attachments storage bucket is public", _bucket_public,
          undoer=_sql_undo("update storage.buckets set public = false where id = 'attachments';")),
    Fault("maintenance-ignored", SYNC, BEFORE, "the app keeps reporting healthy while maintenance is on",
          _runtime("maintenance-ignored", True), undoer=_clear_runtime("maintenance-ignored")),
    Fault("app-fails-start", SWITCH, BEFORE, "the app raises at start-up, so the restart after the switch fails",
          _runtime("app-fails-start", True), undoer=_clear_runtime("app-fails-start")),
    Fault("syntax-error", PRECUTOVER, BEFORE, "a committed python syntax error in the app", _syntax_error,
          undoer=_checkout_undo),
    Fault("merge-conflict", PRECUTOVER, BEFORE, "committed merge-conflict markers in the app", _merge_conflict,
          undoer=_checkout_undo),
    Fault("stale-backup", PRECUTOVER, BEFORE, f"the backup is {STALE_BACKUP_AGE_H:.0f} h old", _stale_backup,
          undoer=_backup_undo),
    Fault("dirty-git", PRECUTOVER, BEFORE, "an uncommitted change in the app checkout", _dirty_git,
          undoer=_checkout_undo),
    Fault("error-spike", MONITOR, DURING_MONITOR, "30% of /api requests answer 500", _runtime("error-spike", 0.3),
          undoer=_clear_runtime("error-spike")),
    Fault("slow-search", MONITOR, DURING_MONITOR, "250 ms added to every search", _runtime("slow-search", 250),
          undoer=_clear_runtime("slow-search")),
    Fault("db-conn-failures", MONITOR, DURING_MONITOR, "the app's database calls fail with connection errors",
          _runtime("db-conn-failures", True), undoer=_clear_runtime("db-conn-failures")),
    Fault("cross-org-leak", MONITOR, DURING_MONITOR, "the threads API starts serving other orgs' rows",
          _runtime("cross-org-leak", True), undoer=_clear_runtime("cross-org-leak")),
    Fault("tls-expiring", PRECUTOVER, BEFORE,
          f"the pooler and API certificates expire in {TLS_EXPIRING_DAYS} days", _tls_expiring, at_build=True),
    Fault("private-tier-leak", RLS, BEFORE,
          "a permissive policy OR'd in exposes other users' private fragments within the org", _private_tier_leak,
          undoer=_sql_undo("drop policy memory_fragments_org_read on public.memory_fragments;")),
    # Beyond the contract's names (`--list-faults`, which other tools rely on: add more, keep these names):
    Fault("env-overridden", SWITCH, BEFORE,
          "DATABASE_URL is also set in the app's process environment, so the .env edit does not take effect",
          _env_overridden),
    Fault("missing-attestation", PRECUTOVER, BEFORE,
          "the config has no [team.stakeholders_notified] attestation", _people_fault("missing-attestation", True),
          undoer=_people_fault("missing-attestation", False)),
    Fault("on-call-gap", PRECUTOVER, BEFORE,
          "the only on-call contact goes off duty 30 minutes into the maintenance window",
          _people_fault("on-call-gap", True), undoer=_people_fault("on-call-gap", False)),
    *(Fault(name, PRECUTOVER, BEFORE, description, _surface_fault(name),
            undoer=_sql_undo(f"set role postgres;\n{undo_sql}\nreset role;"))
      for name, (description, _, undo_sql) in SURFACE_FAULTS.items()),
    Fault("qdrant-changed-after-presync", SYNC, AFTER_PRESYNC,
          "points changed in qdrant after the pre-sync (vectors, a payload org, added, deleted): the delta final "
          "sync must carry each one (without it, the re-read of qdrant in the sync stage finds them)",
          _qdrant_changed_after_presync, expect="carried"),
)
FAULTS: dict[str, Fault] = {f.name: f for f in _CATALOG}


def list_faults() -> list[Fault]:
    """Every fault, in catalog order."""
    return list(_CATALOG)


def get_fault(name: str) -> Fault:
    """The fault called ``name``; an unknown name is an error listing the catalog."""
    try:
        return FAULTS[name]
    except KeyError:
        raise RehearsalError(f"unknown fault {name!r}",
                             hint="known faults: " + ", ".join(f.name for f in _CATALOG)) from None


def validate_faults(names: Iterable[str]) -> list[Fault]:
    """The faults for ``names`` (unique, in the given order); the first unknown name raises."""
    seen: dict[str, Fault] = {}
    for name in names:
        seen.setdefault(name, get_fault(name))
    return list(seen.values())


def faults_due(names: Iterable[str], when: When) -> list[Fault]:
    """The faults among ``names`` that are planted at moment ``when``."""
    return [f for f in validate_faults(names) if f.when == when]


def plant(stack: FaultTarget, name: str) -> str:
    """Plant fault ``name`` on ``stack`` now; returns one line of evidence (what changed)."""
    fault = get_fault(name)
    if fault.planter is None:  # pragma: no cover - every catalog entry has one
        raise RehearsalError(f"fault {name} has no planter")
    return fault.planter(stack)


def undo(stack: FaultTarget, name: str) -> None:
    """Take fault ``name`` back out of ``stack``; a fault that cannot be undone is an error saying so."""
    fault = get_fault(name)
    if fault.undoer is None:
        raise RehearsalError(f"fault {name} cannot be undone on a running stack",
                             hint="rehearse it on a fresh stack (cutover rehearse --fault NAME)")
    fault.undoer(stack)


def plant_due(stack: FaultTarget, names: Iterable[str], when: When) -> dict[str, str]:
    """Plant every fault among ``names`` whose moment is ``when``; returns name -> evidence."""
    return {f.name: plant(stack, f.name) for f in faults_due(names, when)}
