"""Every check passes on the clean rehearsal stack and fails, with its actionable message, on its fault.

Faults are planted with the rehearsal's own planters (``faults.plant``) and undone right after, so one
stack serves the whole module.  Source and file faults go to a private copy of the checkout/backup.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_cutover.checks import (
    app_source,
    backup,
    code,
    counts,
    db,
    isolation,
    pooler,
    rls_audit,
    surface,
    target,
    tls,
)
from pytest_cutover.rehearsal import faults

pytestmark = pytest.mark.integration

TENANT_TABLES = ["attachments", "memory_fragments", "messages", "orgs", "threads", "users"]


@pytest.fixture
def planted(stack: Any) -> Iterator[Callable[[str, str], str]]:
    """``plant(fault, undo_sql)``: plant a fault on the shared stack; the undo runs at teardown."""
    undo: list[tuple[str, str]] = []

    def plant(name: str, revert: str) -> str:
        evidence = faults.plant(stack, name)
        undo.append((name, revert))
        return evidence

    yield plant
    for name, revert in reversed(undo):
        if revert == "app_user":
            stack.set_app_database(user="app_user")
        elif revert == "transaction":
            stack.set_app_database(pooler="transaction")
        else:
            stack.target_sql(revert)
        stack.planted.pop(name, None)


# ------------------------------------------------------------------------------------------------ clean stack
def test_every_precutover_check_passes_on_the_clean_stack(stack_config: Any) -> None:
    cfg = stack_config()
    root = code.source_dir(cfg)
    report = code.inspect_checkout(cfg)
    facts = target.target_facts(cfg)
    info = counts.qdrant_info(cfg)
    source = counts.source_counts(cfg)
    posture = rls_audit.read_posture(cfg)
    checks = [
        code.check_syntax(report, root), code.check_imports(report, root), code.check_collects(cfg),
        code.check_merge_markers(cfg), code.check_git(cfg), backup.check_backup(cfg), counts.check_qdrant(cfg),
        counts.check_fragments(source, cfg), counts.check_blobs(source, cfg), target.check_provisioned(cfg),
        target.check_pgvector(facts), target.check_embedding(facts, cfg, info.dimension),
        target.check_bucket(facts, cfg), target.check_storage_rls(facts, cfg), pooler.check_pooler(cfg),
        app_source.check_engine_settings(cfg), app_source.check_rls_context(cfg), tls.check_api_tls(cfg),
        *(tls.check_database_tls(cfg, key) for key in tls.database_endpoints(cfg)),
        *(rls_audit.audit_table(posture, t) for t in TENANT_TABLES), rls_audit.audit_role(posture),
    ]
    failed = [f"{c.name}: {c.message}" for c in checks if not c.ok]
    assert not failed, failed
    assert report.files > 0 and report.imports > 0
    assert info.points > 0 and info.dimension == 1536
    assert source.fragments_with_vector_id == info.points
    assert sorted(rls_audit.display_name(t) for t in posture.tables) == TENANT_TABLES


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_every_isolation_probe_passes_with_a_seeing_control(stack_config: Any, table: str) -> None:
    cfg = stack_config()
    for probe in isolation.PROBES:
        check = isolation.probe_table(cfg, table, probe)
        assert check.ok, check.message
        assert check.figures["b_rows"] > 0
    read = isolation.probe_table(cfg, table, "read")
    assert read.figures["app_rows_of_b"] == 0
    assert read.figures["control_rows_of_b"] == read.figures["b_rows"]


def test_private_tier_session_and_storage_probes_pass_on_the_clean_stack(stack_config: Any) -> None:
    cfg = stack_config()
    tier = isolation.check_private_tier(cfg)
    assert tier.ok, tier.message
    assert tier.figures["other_user_sees"] == 0 and tier.figures["owner_sees"] > 0
    session = isolation.check_session_leakage(cfg)
    assert session.ok, session.message
    assert session.figures["same_backend_hits"] > 0 and session.figures["control_sightings"] > 0
    storage = isolation.check_storage_isolation(cfg)
    assert storage.ok, storage.message
    assert storage.figures["a_listed"] == 0 and storage.figures["b_listed"] > 0


# ------------------------------------------------------------------------------------------------ database faults
def test_rls_disabled_fails_the_audit_and_the_read_probe(stack_config: Any, planted: Any) -> None:
    planted("rls-disabled", "alter table public.threads enable row level security;")
    cfg = stack_config()
    audit = rls_audit.audit_table(rls_audit.read_posture(cfg), "threads")
    assert not audit.ok
    assert audit.problems[0].startswith("RLS is DISABLED on threads: the app role sees every org's rows: run ALTER "
                                        "TABLE threads ENABLE ROW LEVEL SECURITY")
    probe = isolation.probe_table(cfg, "threads", "read")
    assert not probe.ok and probe.message.startswith("RLS LEAK: threads as app_user with org ")


def test_rls_not_forced_with_app_owner_names_the_fix(stack_config: Any, planted: Any) -> None:
    planted("rls-not-forced", "alter table public.threads owner to postgres; alter table public.threads force row "
                              "level security; grant select, insert, update, delete on public.threads to app_user;")
    cfg = stack_config()
    posture = rls_audit.read_posture(cfg)
    audit = rls_audit.audit_table(posture, "threads")
    assert audit.problems[0] == ("RLS is enabled but not FORCED on threads, and the table owner is the app role "
                                 "app_user: run ALTER TABLE threads FORCE ROW LEVEL SECURITY (and ALTER TABLE threads "
                                 "OWNER TO postgres)")
    role = rls_audit.audit_role(posture)
    assert not role.ok and "the app role app_user owns tenant tables threads" in role.message
    assert isolation.probe_table(cfg, "threads", "read").message.startswith("RLS LEAK")


def test_policy_using_true_is_named(stack_config: Any, planted: Any) -> None:
    planted("policy-using-true", "drop policy threads_read_all on public.threads;")
    cfg = stack_config()
    audit = rls_audit.audit_table(rls_audit.read_posture(cfg), "threads")
    assert audit.message.startswith("policy threads_read_all on threads (SELECT) is USING (true): every org's rows "
                                    "pass it and permissive policies are OR'ed; run DROP POLICY threads_read_all ON "
                                    "threads")
    assert not isolation.probe_table(cfg, "threads", "read").ok


def test_app_role_bypassrls_fails_the_role_audit(stack_config: Any, planted: Any) -> None:
    planted("app-role-bypassrls", "app_user")
    cfg = stack_config()
    posture = rls_audit.read_posture(cfg)
    role = rls_audit.audit_role(posture)
    assert not role.ok
    assert role.problems[0].startswith("the app connects as postgres, which has BYPASSRLS (on Supabase `postgres` "
                                       "has it): RLS never filters its queries")
    assert "the app logs in as the owner; use a dedicated least-privilege role" in role.problems[1]
    table = rls_audit.audit_table(posture, "threads")
    assert table.problems == ("the app role postgres owns threads: the app logs in as the tables' owner, which can "
                              "turn RLS off and rewrite its policies; give the app a least-privilege role (CREATE ROLE "
                              "app_user LOGIN NOSUPERUSER NOBYPASSRLS; GRANT SELECT, INSERT, UPDATE, DELETE ON threads "
                              "TO app_user) and put it in target.app_database_url",)
    probe = isolation.probe_table(cfg, "memory_fragments", "read")
    assert probe.message.startswith("RLS LEAK: memory_fragments as postgres")


def test_session_pooler_url_is_not_a_transaction_pooler(stack_config: Any, planted: Any) -> None:
    planted("session-pooler-url", "transaction")
    check = pooler.check_pooler(stack_config())
    assert not check.ok and check.figures["pool_mode"] == "session"
    assert check.problems[0].startswith("target.app_database_url (app_user@127.0.0.1:")
    assert "is not a transaction pooler" in check.problems[0] and "port 6543" in check.problems[0]


def test_bucket_public_fails_the_bucket_check(stack_config: Any, planted: Any) -> None:
    planted("bucket-public", "update storage.buckets set public = false where id = 'attachments';")
    cfg = stack_config()
    check = target.check_bucket(target.target_facts(cfg), cfg)
    assert check.message.startswith("storage bucket attachments is PUBLIC: anyone with an object's path reads it "
                                    "without a JWT")


def test_private_tier_leak_passes_the_static_audit_but_fails_the_probe(stack_config: Any, planted: Any) -> None:
    planted("private-tier-leak", "drop policy memory_fragments_org_read on public.memory_fragments;")
    cfg = stack_config()
    audit = rls_audit.audit_table(rls_audit.read_posture(cfg), "memory_fragments")
    assert audit.ok, audit.message  # org-bound, so the catalog alone cannot tell: the rls stage must probe
    tier = isolation.check_private_tier(cfg)
    assert not tier.ok
    assert tier.problems[0].startswith("RLS LEAK: in org ")
    assert "private fragments in memory_fragments: a permissive policy OR'ed with the tier policy" in tier.problems[0]


def test_session_level_tenant_left_on_pooled_backends_is_detected(stack: Any, stack_config: Any) -> None:
    cfg = stack_config()
    setting = cfg.schema_.rls_org_setting

    async def poison_all(value: str) -> None:
        conns = [await db.connect(cfg.target.app_database_url, ca_file=cfg.target.ca_file, timeout=10)
                 for _ in range(10)]
        try:
            async def one(conn: Any) -> None:
                async with conn.transaction():
                    await conn.execute("select set_config($1, $2, false)", setting, value)
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(one(c) for c in conns))
        finally:
            for conn in conns:
                await conn.close()

    asyncio.run(poison_all("org_0001"))
    try:
        check = isolation.check_session_leakage(cfg)
    finally:
        asyncio.run(poison_all(""))
    assert not check.ok
    assert "already carries app.current_org_id='org_0001'" in check.message
    assert isolation.check_session_leakage(cfg).ok


# ------------------------------------------------------------------------------------------------ source/file faults
def _copy_config(stack_config: Any, copy: Any) -> Any:
    return stack_config(app={"source_dir": str(copy.app_dir)})


@pytest.mark.parametrize(("fault", "check_name", "expected"), [
    ("syntax-error", "syntax", r"app/search.py:\d+: SyntaxError: expected ':'"),
    ("merge-conflict", "markers", r"app/config.py: merge-conflict markers on lines \d+"),
    ("dirty-git", "git", r"1 uncommitted change\(s\) in .*app/config.py: commit \(or discard\) them and push"),
    ("session-set", "context", r"app/security.py:\d+: set_config\('app.current_org_id', \.\.\., false\) is "
                               r"session-scoped"),
    ("statement-cache-on", "engine", r"no statement_cache_size=0 in the app's engine settings \(create_async_engine "
                                     r"at app/database.py:\d+\)"),
])
def test_source_fault_fails_its_check(stack_config: Any, checkout_copy: Any, fault: str, check_name: str,
                                      expected: str) -> None:
    cfg = _copy_config(stack_config, checkout_copy)

    def run() -> Any:
        if check_name in ("syntax",):
            return code.check_syntax(code.inspect_checkout(cfg), checkout_copy.app_dir)
        return {"markers": code.check_merge_markers, "git": code.check_git, "context": app_source.check_rls_context,
                "engine": app_source.check_engine_settings}[check_name](cfg)

    clean = run()
    assert clean.ok, clean.message
    evidence = faults.plant(checkout_copy, fault)
    check = run()
    assert not check.ok, f"{fault} planted ({evidence}) but {check.name} passed: {check.evidence}"
    assert any(re.search(expected, p) for p in check.problems), check.problems


def test_merge_conflict_also_breaks_py_compile_and_collection(stack_config: Any, checkout_copy: Any) -> None:
    cfg = _copy_config(stack_config, checkout_copy)
    faults.plant(checkout_copy, "merge-conflict")
    syntax = code.check_syntax(code.inspect_checkout(cfg), checkout_copy.app_dir)
    assert not syntax.ok and syntax.problems[0].startswith("app/config.py:")
    collect = code.check_collects(cfg)
    assert not collect.ok and "`python -m pytest --collect-only`" in collect.message
    git = code.check_git(cfg)
    assert git.ok, git.message  # committed and pushed: only the markers and the syntax are wrong


def test_unpushed_commit_fails_the_git_check(stack_config: Any, checkout_copy: Any) -> None:
    import subprocess

    cfg = _copy_config(stack_config, checkout_copy)
    (checkout_copy.app_dir / "NOTES.md").write_text("release notes\n", encoding="utf-8")
    for args in (["add", "NOTES.md"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notes"]):
        subprocess.run(["git", "-C", str(checkout_copy.app_dir), *args], check=True, capture_output=True)
    check = code.check_git(cfg)
    assert check.problems == (f"1 commit(s) on main are not on origin/main (HEAD {check.figures['head']}): run "
                              f"git push",)


def test_stale_backup_fails_with_its_age(stack: Any, stack_config: Any, checkout_copy: Any) -> None:
    shutil.copy2(stack.backup_path, checkout_copy.backup_path)
    cfg = stack_config(backup={"path": str(checkout_copy.backup_path)})
    assert backup.check_backup(cfg).ok
    faults.plant(checkout_copy, "stale-backup")
    check = backup.check_backup(cfg)
    assert not check.ok
    assert " is 72.0 h old, over thresholds.backup_max_age_hours = 24: take a fresh backup" in check.message


# ------------------------------------------------------------------------------------------------ connection errors
def test_connect_errors_name_the_cause(stack: Any, stack_config: Any) -> None:
    from pytest_cutover.actions.pg import endpoint
    from pytest_cutover.redact import Secret

    cfg = stack_config()
    url = cfg.target.app_database_url.get()
    where = endpoint(url)

    async def attempt(dsn: str, **kw: Any) -> None:
        conn = await db.connect(Secret(dsn), ca_file=cfg.target.ca_file, timeout=5, what="target.app_database_url",
                                **kw)
        await conn.close()

    closed = pooler_port_free()
    with pytest.raises(db.UnreachableError, match=r"connection refused, nothing listens on that port.*6543"):
        asyncio.run(attempt(url.replace(f":{where.port}/", f":{closed}/")))
    with pytest.raises(db.CredentialsError, match=r"target.app_database_url \(app_user@127.0.0.1:\d+/postgres\): the "
                                                   r"credentials were refused"):
        asyncio.run(attempt(url.replace("app_user:", "app_user:x", 1)))
    with pytest.raises(db.UnreachableError, match="host name cannot be resolved"):
        asyncio.run(attempt(url.replace("127.0.0.1", "no-such-host.invalid")))
    with pytest.raises(db.TlsError, match=r"refused TLS"):
        asyncio.run(attempt(cfg.target.database_url.get(), require_tls=True))
    with pytest.raises(db.TlsError, match="certificate is not trusted"):
        asyncio.run(db.connect(Secret(url), ca_file=None, require_tls=True, timeout=5))


def pooler_port_free() -> int:
    from pytest_cutover.rehearsal.procs import free_port

    return free_port()


def test_qdrant_count_falls_back_to_the_storage_file_when_the_folder_is_held(stack_config: Any) -> None:
    import warnings

    from qdrant_client import QdrantClient

    cfg = stack_config()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        holder = QdrantClient(path=cfg.source.qdrant_path)  # as the app holds it while serving searches
    try:
        held = counts.qdrant_info(cfg)
    finally:
        holder.close()
    free = counts.qdrant_info(cfg)
    assert (held.points, held.dimension) == (free.points, free.dimension)
    assert held.via.endswith("storage.sqlite read-only (the folder is held by another process)")
    assert free.via.startswith("qdrant-client at ")


def test_uuid_tenant_key_with_one_org_and_identity_always(stack: Any, stack_config: Any) -> None:
    """A table unlike the seed's: uuid tenant key, GENERATED ALWAYS identity, a single org (A is a phantom org)."""
    org = "6f1c1d2e-0000-4000-8000-000000000001"
    stack.target_sql(
        "set role postgres;\n"
        "create table public.selftest_notes (id bigint generated always as identity primary key, org_id uuid not "
        "null, body text not null);\n"
        "alter table public.selftest_notes enable row level security;\n"
        "alter table public.selftest_notes force row level security;\n"
        "create policy selftest_all on public.selftest_notes for all using (org_id = nullif(current_setting("
        "'app.current_org_id', true), '')::uuid) with check (org_id = nullif(current_setting('app.current_org_id', "
        "true), '')::uuid);\n"
        "grant select, insert, update, delete on public.selftest_notes to app_user;\n"
        f"insert into public.selftest_notes (org_id, body) values ('{org}', 'a'), ('{org}', 'b');\n"
        "reset role;")
    try:
        cfg = stack_config()
        posture = rls_audit.read_posture(cfg)
        assert rls_audit.audit_table(posture, "selftest_notes").ok
        for probe in isolation.PROBES:
            check = isolation.probe_table(cfg, "selftest_notes", probe)
            assert check.ok, f"{probe}: {check.message}"
            assert check.figures["org_a"] == "00000000-0000-0000-0000-000000000000"
        assert isolation.probe_table(cfg, "selftest_notes", "insert").figures["app_sqlstate"] == "42501"
    finally:
        stack.target_sql("drop table public.selftest_notes;")


def test_storage_checks_catch_a_loose_policy_and_a_public_bucket(stack: Any, stack_config: Any,
                                                                  planted: Any) -> None:
    cfg = stack_config()
    stack.target_sql("create policy attachments_any_user_reads on storage.objects for select to authenticated "
                     "using (bucket_id = 'attachments');")
    try:
        static = target.check_storage_rls(target.target_facts(cfg), cfg)
        assert not static.ok
        assert static.problems[0].startswith("storage policy attachments_any_user_reads (SELECT, roles authenticated) "
                                             "USING has a branch that ignores the caller: bucket_id = "
                                             "'attachments'::text")
        probe = isolation.check_storage_isolation(cfg)
        assert not probe.ok and probe.problems[0].startswith("STORAGE LEAK: a user of org ")
        assert probe.figures["a_listed"] > 0 and probe.figures["a_read_status"] == 200
    finally:
        stack.target_sql("drop policy attachments_any_user_reads on storage.objects;")
    planted("bucket-public", "update storage.buckets set public = false where id = 'attachments';")
    public = isolation.check_storage_isolation(stack_config())
    assert [p for p in public.problems if p.startswith("STORAGE LEAK: a user of org ")
            and "downloads org" in p], public.problems


# ------------------------------------------------------------------------------------------------ exposed surface
def test_the_exposed_surface_is_clean_and_its_probes_see_no_leak(stack_config: Any) -> None:
    cfg = stack_config()
    audit = surface.check_surface(*surface.read_surface(cfg))
    assert audit.ok, audit.problems
    probe = surface.probe_surface(cfg)
    assert probe.ok, probe.problems
    assert probe.figures["probes"] >= 12 and probe.figures["not_probed_empty"] == []  # 6 tables x app, authenticated
    functions = probe.figures["functions"]
    assert functions["leaks"] == 0 and functions["errors"] == [], functions
    assert functions["not_called_managed"] > 0, "auth.*, storage.*, pgvector: inventoried, not the project's"


_SELFTEST_FUNCTIONS = """
set role postgres;
create function public.selftest_threads(p_org text) returns setof public.threads language sql stable
    security invoker set search_path = '' as $$ select * from public.threads where org_id = p_org $$;
create function public.selftest_count(p_org text) returns bigint language sql stable
    security definer set search_path = '' as $$ select count(*) from public.threads where org_id = p_org $$;
create function public.selftest_touch(p_org text) returns integer language plpgsql
    security invoker set search_path = '' as $$
    begin update public.threads set title = 'selftest-probed' where org_id = p_org; return 0; end $$;
create function public.selftest_trg() returns trigger language plpgsql set search_path = ''
    as $$ begin return new; end $$;
reset role;
"""


def test_function_probe_calls_in_rolled_back_transactions_and_sees_a_definer_count(stack: Any,
                                                                                     stack_config: Any) -> None:
    """An invoker function over threads is clean, a definer count of another org's threads leaks to every caller
    (judged against a key no tenant has), a writing function's writes are rolled back (also the control's), a
    trigger function is not called."""
    stack.target_sql(_SELFTEST_FUNCTIONS)
    try:
        probe = surface.probe_surface(stack_config())
        functions = probe.figures["functions"]
        assert functions["called"] == 3 and functions["calls"] == 9, functions
        assert functions["skipped"] == {"public.selftest_trg()": "a trigger function: only its trigger can call it"}
        assert functions["leaked"] == ["public.selftest_count(p_org text)"], functions
        leaks = [p for p in probe.problems if "selftest_count" in p]
        assert {p.split(" calls ")[0] for p in leaks} == {"RLS LEAK: app_user", "RLS LEAK: anon",
                                                           "RLS LEAK: authenticated"}, probe.problems
        assert any("fix: REVOKE EXECUTE ON FUNCTION public.selftest_count(p_org text) FROM PUBLIC, app_user; " in p
                   for p in leaks), leaks
        assert len(probe.problems) == 3, probe.problems
        # anon may EXECUTE (PUBLIC) but has no privilege on threads: the invoker functions fail for it, not leak
        assert sorted(e.split(": ")[0] + ": " + e.split(": ")[1][:5] for e in functions["errors"]) == [
            "public.selftest_threads(p_org text) as anon: 42501", "public.selftest_touch(p_org text) as anon: 42501"]
        assert stack.target_sql("select count(*) from public.threads where title = 'selftest-probed';").strip() \
            == "0", "every call is rolled back"
    finally:
        stack.target_sql("set role postgres;\ndrop function public.selftest_threads(text), "
                         "public.selftest_count(text), public.selftest_touch(text), public.selftest_trg();\n"
                         "reset role;")


def test_the_definer_function_fault_is_a_leak_the_rls_probe_sees(stack_config: Any, planted: Any) -> None:
    """The live probe calls the planted SECURITY DEFINER function with org B's key and gets org B's threads, as
    the app role (org A's context), authenticated (org A's claims) and anon."""
    planted("definer-function", f"set role postgres;\n{faults.SURFACE_FAULTS['definer-function'][2]}\nreset role;")
    probe = surface.probe_surface(stack_config())
    leaks = [p for p in probe.problems if "public.org_threads(p_org text)" in p]
    assert {p.split(" calls ")[0] for p in leaks} == {"RLS LEAK: app_user", "RLS LEAK: anon",
                                                       "RLS LEAK: authenticated"}, probe.problems
    app = next(p for p in leaks if p.startswith("RLS LEAK: app_user calls public.org_threads(p_org text) as a "
                                                "caller of org "))
    assert "'s rows: fix: REVOKE EXECUTE ON FUNCTION public.org_threads(p_org text) FROM PUBLIC, app_user; " in app
    assert probe.figures["functions"]["leaked"] == ["public.org_threads(p_org text)"]


@pytest.mark.parametrize(("fault", "leak"), [
    ("definer-view", "RLS LEAK: app_user reads "),
    ("view-no-invoker", "RLS LEAK: authenticated reads "),
    ("tenant-column-renamed", "RLS LEAK: app_user reads "),
    ("policy-user-metadata", "RLS LEAK: authenticated reads "),
    ("policy-unbound", "RLS LEAK: authenticated reads "),
])
def test_surface_faults_are_leaks_the_rls_probe_sees(stack_config: Any, planted: Any, fault: str, leak: str) -> None:
    """The live probe of the whole surface catches what the static audit names, without knowing the fault.
    (anon-grant is not among them: under the tenant policies anon, which cannot set the tenant, reads no row;
    the grant is caught by the static audit only.)"""
    planted(fault, f"set role postgres;\n{faults.SURFACE_FAULTS[fault][2]}\nreset role;")
    probe = surface.probe_surface(stack_config())
    obj = {"definer-view": "public.thread_titles", "view-no-invoker": "public.recent_messages",
           "tenant-column-renamed": "public.projects"}.get(fault, "public.threads")
    assert any(p.startswith(leak) and f" in {obj}" in p for p in probe.problems), probe.problems
