"""The fault catalog, and proof that each stack fault really changes the world it claims to change."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pytest_cutover.rehearsal import faults
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.pgbouncer import client_ssl_context
from pytest_cutover.rehearsal.stack import EmbeddedStack, services_available
from pytest_cutover.stages import STAGES

from .test_stack import TINY

SERVICES_MISSING = services_available()
needs_services = pytest.mark.skipif(SERVICES_MISSING is not None,
                                    reason=f"app and storage not available: {SERVICES_MISSING}")

#: The contract names (the `--fault` catalog other tools rely on; README "The fault matrix"): keep these exactly.
CONTRACT = [
    "rls-disabled", "rls-not-forced", "policy-using-true", "app-role-bypassrls", "session-set", "session-pooler-url",
    "statement-cache-on", "missing-point", "nan-vector", "wrong-dim-vector", "payload-org-mismatch", "vector-altered",
    "blob-corrupt", "bucket-public", "maintenance-ignored", "app-fails-start", "syntax-error", "merge-conflict",
    "stale-backup", "dirty-git", "error-spike", "slow-search", "db-conn-failures", "cross-org-leak", "tls-expiring",
    "private-tier-leak",
]


# ----------------------------------------------------------------------------------------------- catalog
def test_catalog_holds_the_contract_names_in_order_then_its_own() -> None:
    names = [f.name for f in faults.list_faults()]
    assert names[:len(CONTRACT)] == CONTRACT
    assert names[len(CONTRACT):] == ["env-overridden", "missing-attestation", "on-call-gap", *faults.SURFACE_FAULTS,
                                     "qdrant-changed-after-presync"]


def test_every_fault_names_a_stage_a_moment_a_description_and_a_planter() -> None:
    for fault in faults.list_faults():
        assert fault.stage in STAGES
        assert fault.when in (faults.BEFORE, faults.AFTER_PRESYNC, faults.AFTER_SYNC, faults.DURING_MONITOR)
        assert fault.description and fault.planter is not None
        assert fault.line().split("\t")[:3] == [fault.name, fault.stage, fault.when]


@pytest.mark.parametrize(("name", "stage", "when"), [
    ("rls-disabled", "precutover", "before"), ("session-pooler-url", "precutover", "before"),
    ("missing-point", "sync", "before"), ("vector-altered", "sync", "after-sync"),
    ("blob-corrupt", "sync", "after-sync"), ("maintenance-ignored", "sync", "before"),
    ("app-fails-start", "switch", "before"), ("private-tier-leak", "rls", "before"),
    ("error-spike", "monitor", "during-monitor"), ("cross-org-leak", "monitor", "during-monitor"),
])
def test_stage_and_moment_follow_the_design(name: str, stage: str, when: str) -> None:
    fault = faults.get_fault(name)
    assert (fault.stage, fault.when) == (stage, when)


def test_unknown_fault_lists_the_catalog() -> None:
    with pytest.raises(RehearsalError) as info:
        faults.get_fault("rls-off")
    assert str(info.value).startswith("unknown fault 'rls-off' (hint: known faults: rls-disabled, rls-not-forced")
    assert all(name in str(info.value) for name in CONTRACT)


def test_validate_and_due_keep_order_and_drop_duplicates() -> None:
    names = ["error-spike", "rls-disabled", "vector-altered", "rls-disabled"]
    assert [f.name for f in faults.validate_faults(names)] == ["error-spike", "rls-disabled", "vector-altered"]
    assert [f.name for f in faults.faults_due(names, faults.AFTER_SYNC)] == ["vector-altered"]
    assert [f.name for f in faults.faults_due(names, faults.DURING_MONITOR)] == ["error-spike"]


# ----------------------------------------------------------------------------------------------- source faults
@dataclass
class Checkout:
    """Just enough of a FaultTarget for the faults that edit the app's repository."""

    app_dir: Path


def _git(checkout: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def checkout(scratch: Path) -> Checkout:
    services = pytest.importorskip("pytest_cutover.rehearsal.services")
    return Checkout(services.prepare_app_checkout(scratch / "backend", {"DATABASE_URL": "postgresql://x@y/z"}))


def _clean_and_pushed(checkout: Path) -> bool:
    return _git(checkout, "status", "--porcelain") == "" and \
        _git(checkout, "rev-parse", "HEAD") == _git(checkout, "rev-parse", "origin/main")


@pytest.mark.skipif(SERVICES_MISSING is not None, reason=f"the app template is not available: {SERVICES_MISSING}")
class TestSourceFaults:
    def test_session_set_commits_session_scoped_set_config(self, checkout: Checkout) -> None:
        evidence = faults.plant(checkout, "session-set")
        source = "".join(p.read_text() for p in (checkout.app_dir / "app").rglob("*.py"))
        assert "set_config('app.current_org_id', :org_id, false)" in source
        assert "set_config('app.current_org_id', :org_id, true)" not in source
        assert _clean_and_pushed(checkout.app_dir)
        assert "commit" in evidence

    def test_statement_cache_on_removes_the_setting(self, checkout: Checkout) -> None:
        faults.plant(checkout, "statement-cache-on")
        text = (checkout.app_dir / "app" / "database.py").read_text()
        code = [line for line in text.splitlines() if not line.lstrip().startswith(("#", "(", "``"))]
        assert not any('"statement_cache_size": 0' in line for line in code)
        assert _clean_and_pushed(checkout.app_dir)

    def test_syntax_error_is_committed_and_does_not_compile(self, checkout: Checkout) -> None:
        faults.plant(checkout, "syntax-error")
        done = subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout.app_dir / "app")],
                              capture_output=True, text=True, check=False)
        assert done.returncode != 0 and "SyntaxError" in done.stdout + done.stderr
        assert _clean_and_pushed(checkout.app_dir)

    def test_merge_conflict_commits_real_markers_from_a_real_merge(self, checkout: Checkout) -> None:
        faults.plant(checkout, "merge-conflict")
        text = (checkout.app_dir / "app" / "config.py").read_text()
        assert "<<<<<<< HEAD" in text and "=======" in text and ">>>>>>> feature/search-timeout" in text
        parents = _git(checkout.app_dir, "log", "-1", "--format=%P").split()
        assert len(parents) == 2, "the markers should come from a merge commit"
        assert _clean_and_pushed(checkout.app_dir)

    def test_dirty_git_leaves_an_uncommitted_change(self, checkout: Checkout) -> None:
        assert _git(checkout.app_dir, "status", "--porcelain") == ""
        faults.plant(checkout, "dirty-git")
        assert _git(checkout.app_dir, "status", "--porcelain").strip() == "M app/config.py"


# ----------------------------------------------------------------------------------------------- stack faults
@pytest.fixture
def stack(shared_stack: EmbeddedStack) -> EmbeddedStack:
    return shared_stack


def test_qdrant_and_row_faults_are_in_the_source_the_migration_reads(stack: EmbeddedStack) -> None:
    import warnings

    from qdrant_client import QdrantClient

    before = int(stack.old_sql("select count(*) from memory_fragments").strip())
    planted = {name: stack.plant(name) for name in ("missing-point", "nan-vector", "wrong-dim-vector",
                                                    "payload-org-mismatch")}
    ids = {name: text.split()[1] for name, text in planted.items() if text.startswith("point ")}
    missing_vid = planted["missing-point"].split("vector_id ")[1].split()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = QdrantClient(path=str(stack.qdrant_path))
    try:
        got = {str(p.id): p for p in client.retrieve(stack.collection, [*ids.values(), missing_vid],
                                                      with_vectors=True, with_payload=True)}
    finally:
        client.close()
    assert missing_vid not in got
    nan_vec = got[ids["nan-vector"]].vector
    assert len(nan_vec) == 1536 and any(v != v for v in nan_vec)
    assert not isinstance(got[ids["wrong-dim-vector"]].vector, list)  # no 1536-d dense vector at all
    mismatch = got[ids["payload-org-mismatch"]]
    row_org = stack.target_sql(f"select org_id from memory_fragments where vector_id = '{ids['payload-org-mismatch']}'")
    assert mismatch.payload["org_id"] != row_org.strip()
    # The rows exist in both databases, so relational parity is untouched by the vector faults.
    after_old = int(stack.old_sql("select count(*) from memory_fragments").strip())
    after_target = int(stack.target_sql("select count(*) from memory_fragments").strip())
    assert after_old == after_target == before + 4


def test_stale_backup_ages_the_archive(stack: EmbeddedStack) -> None:
    stack.plant("stale-backup")
    age_h = (time.time() - stack.backup_path.stat().st_mtime) / 3600
    assert age_h >= 71


def test_vector_altered_changes_one_migrated_embedding(stack: EmbeddedStack) -> None:
    with pytest.raises(RehearsalError, match="no migrated embedding"):
        stack.plant("vector-altered")
    # Stand in for the migration: one row gets its embedding (what the sync stage writes).
    stack.target_sql("update memory_fragments set embedding = array_fill(0.25::real, array[1536])::vector "
                     "where id = (select min(id) from memory_fragments)")
    evidence = stack.plant("vector-altered")
    first = stack.target_sql("select (embedding::real[])[1] from memory_fragments "
                             "where id = (select min(id) from memory_fragments)").strip()
    assert float(first) != 0.25
    assert "first embedding component changed" in evidence


def _https(stack: EmbeddedStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=stack.urls.ca_file)


@needs_services
def test_bucket_public_and_blob_corrupt_on_a_real_object(stack: EmbeddedStack) -> None:
    import httpx

    data = os.urandom(4096)
    name = "org_0001/thread/1/report.bin"
    auth = {"Authorization": f"Bearer {stack.urls.service_key.get()}"}
    up = httpx.post(f"{stack.urls.storage_url}/object/attachments/{name}", content=data,
                    headers={**auth, "Content-Type": "application/octet-stream"}, verify=_https(stack), timeout=10)
    assert up.status_code == 200, up.text
    public_url = f"{stack.urls.storage_url}/object/public/attachments/{name}"
    assert httpx.get(public_url, verify=_https(stack), timeout=10).status_code >= 400
    stack.plant("bucket-public")
    anonymous = httpx.get(public_url, verify=_https(stack), timeout=10)
    assert anonymous.status_code == 200 and anonymous.content == data
    stack.plant("blob-corrupt")
    down = httpx.get(f"{stack.urls.storage_url}/object/attachments/{name}", headers=auth, verify=_https(stack),
                     timeout=10)
    assert down.status_code == 200
    assert hashlib.sha256(down.content).digest() != hashlib.sha256(data).digest()
    assert len(down.content) == len(data)


def _api(stack: EmbeddedStack, path: str, **kw):  # type: ignore[no-untyped-def]
    import httpx

    headers = {"Authorization": f"Bearer {stack.urls.test_token.get()}", "x-org-id": "org_0001"}
    return httpx.get(stack.urls.api_url + path, headers=headers, verify=_https(stack), timeout=10, **kw)


@needs_services
def test_runtime_error_spike_is_seen_by_the_app_and_cleared(stack: EmbeddedStack) -> None:
    assert _api(stack, "/api/threads").status_code == 200
    stack.plant("error-spike")
    try:
        codes = [_api(stack, "/api/threads").status_code for _ in range(40)]
        assert codes.count(500) >= 3, codes  # 30% of 40: P(< 3) is negligible
        assert json.loads(stack.faults_file.read_text()) == {"error-spike": 0.3}
    finally:
        faults.clear_runtime_faults(stack)
    assert all(_api(stack, "/api/threads").status_code == 200 for _ in range(5))


@needs_services
def test_maintenance_ignored_keeps_health_green_in_maintenance(stack: EmbeddedStack) -> None:
    import httpx

    admin = {"Authorization": f"Bearer {stack.urls.admin_token.get()}"}
    health = stack.urls.api_url + "/health"
    stack.plant("maintenance-ignored")
    try:
        enable = httpx.post(stack.urls.api_url + "/admin/maintenance/enable", headers=admin, verify=_https(stack),
                            timeout=10)
        assert enable.status_code == 200, enable.text
        assert httpx.get(health, verify=_https(stack), timeout=10).status_code == 200
        faults.clear_runtime_faults(stack)
        assert httpx.get(health, verify=_https(stack), timeout=10).status_code == 503
    finally:
        faults.clear_runtime_faults(stack)
        httpx.post(stack.urls.api_url + "/admin/maintenance/disable", headers=admin, verify=_https(stack), timeout=10)
    assert httpx.get(health, verify=_https(stack), timeout=10).status_code == 200


@needs_services
def test_app_fails_start_makes_the_restart_command_fail_with_evidence(stack: EmbeddedStack) -> None:
    cfg = tomllib.loads(stack.config_path.read_text(encoding="utf-8"))["app"]
    stack.plant("app-fails-start")
    try:
        done = subprocess.run(cfg["restart_command"], shell=True, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 1
        assert "app exited with code" in done.stderr and "before it was ready" in done.stderr
        assert "app" not in stack.pids()
    finally:
        faults.clear_runtime_faults(stack)
    started = subprocess.run(cfg["start_command"], shell=True, capture_output=True, text=True, timeout=120,
                             check=False)
    assert started.returncode == 0, started.stderr
    assert _api(stack, "/health").status_code == 200


def test_tls_expiring_issues_short_lived_certificates(scratch: Path) -> None:
    from pytest_cutover.util import certs

    with EmbeddedStack(scratch / "tls-stack", size=TINY, services=False, faults=["tls-expiring"]) as running:
        assert "tls-expiring" in running.planted

        async def peer_days() -> float:
            conn = await asyncpg.connect(running.urls.pooler_url.get(), ssl=client_ssl_context(running.urls.ca_file),
                                         statement_cache_size=0, timeout=10)
            try:
                der = conn._transport.get_extra_info("ssl_object").getpeercert(True)
            finally:
                await conn.close()
            return certs.days_left(certs.cert_not_after(der))

        days = asyncio.run(peer_days())
    assert 4.9 < days <= faults.TLS_EXPIRING_DAYS


def test_tls_expiring_cannot_be_planted_on_a_running_stack(stack: EmbeddedStack) -> None:
    with pytest.raises(RehearsalError, match="tls-expiring must be given when the stack is built"):
        stack.plant("tls-expiring")


def test_session_pooler_url_points_the_configured_app_url_at_the_session_pooler(stack: EmbeddedStack) -> None:
    from pytest_cutover.config import load_config
    from pytest_cutover.rehearsal.stack import read_env_file

    def configured_port() -> int:
        cfg = load_config(stack.config_path, env=read_env_file(stack.stack_env_path))
        return int(cfg.target.app_database_url.get().rsplit(":", 1)[1].split("/")[0])

    assert configured_port() == stack.poolers["transaction"].port
    stack.plant("session-pooler-url")
    try:
        assert configured_port() == stack.poolers["session"].port
    finally:
        stack.set_app_database(pooler="transaction")


def test_private_tier_leak_exposes_other_users_private_fragments_in_the_org(stack: EmbeddedStack) -> None:
    # A viewer in an org where another user owns private fragments.
    owner_line = stack.target_sql("select org_id || '|' || user_id from memory_fragments where tier = 'private' "
                                  "order by id limit 1").strip()
    org, owner = owner_line.split("|")
    user = stack.target_sql(f"select id from users where org_id = '{org}' and id <> '{owner}' "
                            "order by id limit 1").strip()

    async def others_private() -> tuple[int, int]:
        conn = await asyncpg.connect(stack.urls.pooler_url.get(), ssl=client_ssl_context(stack.urls.ca_file),
                                     statement_cache_size=0, timeout=10)
        try:
            async with conn.transaction():
                await conn.execute("select set_config('app.current_org_id', $1, true), "
                                   "set_config('app.current_user_id', $2, true)", org, user)
                own = await conn.fetchval("select count(*) from memory_fragments where user_id = $1", user)
                leaked = await conn.fetchval("select count(*) from memory_fragments where tier = 'private' "
                                             "and user_id <> $1", user)
            return int(own), int(leaked)
        finally:
            await conn.close()

    private_elsewhere = int(stack.target_sql(f"select count(*) from memory_fragments where org_id = '{org}' "
                                             f"and tier = 'private' and user_id <> '{user}'").strip())
    assert private_elsewhere > 0, "the seed has no private fragment of another user in the org to leak"
    own, leaked = asyncio.run(others_private())
    assert own > 0 and leaked == 0
    stack.plant("private-tier-leak")
    try:
        own, leaked = asyncio.run(others_private())
        assert leaked == private_elsewhere
    finally:
        stack.target_sql("drop policy memory_fragments_org_read on public.memory_fragments;")


def test_extra_fragment_rows_are_identical_in_old_and_target(stack: EmbeddedStack) -> None:
    """Relational parity must stay green under the vector faults: every column of the added rows matches."""
    stack.plant("missing-point")
    query = ("select md5(string_agg(concat_ws('|', id, org_id, user_id, thread_id, tier, content, vector_id, "
             "created_at), ',' order by id)) from memory_fragments")
    assert stack.old_sql(query).strip() == stack.target_sql(query).strip()


# ----------------------------------------------------------------------------------------------- surface faults
#: fault -> (role, caller's org setting?, JWT claims (B = the other org), query counting what leaks of org B)
SURFACE_LEAKS: dict[str, tuple[str, bool, dict | None, str]] = {
    "definer-view": ("app_user", True, None, "select count(*) from public.thread_titles where org_id = '{B}'"),
    "view-no-invoker": ("authenticated", True, None,
                        "select count(*) from public.recent_messages where org_id = '{B}'"),
    "definer-function": ("anon", False, None, "select count(*) from public.org_threads('{B}')"),
    # The grant is live, only the tenant policy still stands in the way: anon reads org B's threads as soon as
    # anything on its path sets the tenant (through PostgREST alone it cannot; the static audit catches it).
    "anon-grant": ("anon", False, None, "set local app.current_org_id = '{B}'; select count(*) from public.threads"),
    "secrets-table": ("authenticated", False, None, "select count(*) from public.integration_credentials"),
    "tenant-column-renamed": ("app_user", True, None,
                              "select count(*) from public.projects where organization_id = '{B}'"),
    "policy-user-metadata": ("authenticated", False,
                             {"role": "authenticated", "app_metadata": {"org_id": "{A}"},
                              "user_metadata": {"org_id": "{B}"}},
                             "select count(*) from public.threads where org_id = '{B}'"),
    "policy-unbound": ("authenticated", False, {"role": "authenticated", "app_metadata": {"org_id": "{A}"}},
                       "select count(*) from public.threads where org_id = '{B}'"),
}


def _leaked(stack: EmbeddedStack, name: str, org_a: str, org_b: str) -> int | None:
    """Rows of org B the fault's role reads as a caller of org A (None: it cannot even run the query)."""
    role, with_org, claims, query = SURFACE_LEAKS[name]
    sql = f"set local role {role};\n"
    if with_org:
        sql += f"set local app.current_org_id = '{org_a}';\n"
    if claims is not None:
        sql += f"set local request.jwt.claims = '{json.dumps(claims)}';\n"
    sql = (sql + query + ";").replace("{A}", org_a).replace("{B}", org_b)
    try:
        return int(stack.target_sql(sql).strip().splitlines()[-1])
    except RehearsalError as exc:
        assert "does not exist" in str(exc) or "permission denied" in str(exc), exc
        return None


def test_every_surface_fault_has_a_leak_query() -> None:
    assert set(SURFACE_LEAKS) == set(faults.SURFACE_FAULTS)


@pytest.mark.parametrize("name", list(faults.SURFACE_FAULTS))
def test_surface_fault_leaks_for_real_and_the_audit_names_it(stack: EmbeddedStack, name: str) -> None:
    """Each surface fault hands another org's rows (or a secret) to a role that had none, the exposed-surface
    audit names the object, and the undo closes the leak again."""
    from pytest_cutover.checks import surface
    from pytest_cutover.config import load_config
    from pytest_cutover.rehearsal.stack import read_env_file

    cfg = load_config(stack.config_path, env=read_env_file(stack.stack_env_path))
    org_a, org_b = stack.target_sql("select id from public.orgs order by id limit 2").split()
    assert not _leaked(stack, name, org_a, org_b), "the clean target already leaks"
    assert surface.check_surface(*surface.read_surface(cfg)).ok
    stack.plant(name)
    try:
        assert (_leaked(stack, name, org_a, org_b) or 0) > 0, f"{name} planted but nothing leaks"
        check = surface.check_surface(*surface.read_surface(cfg))
        obj = {"definer-view": "public.thread_titles", "view-no-invoker": "public.recent_messages",
               "definer-function": "public.org_threads(p_org text)", "anon-grant": "anon-grant public.threads",
               "secrets-table": "public.integration_credentials (api_key)", "tenant-column-renamed": "public.projects",
               "policy-user-metadata": "threads_by_metadata", "policy-unbound": "threads_signed_in"}[name]
        assert any(obj in p for p in check.problems), check.problems
    finally:
        stack.undo(name)
    assert not _leaked(stack, name, org_a, org_b)


# ----------------------------------------------------------------------------------------------- people faults
def test_people_faults_write_the_config_without_an_attestation_or_with_an_on_call_gap(stack: EmbeddedStack) -> None:
    """The rehearsal attests and stands every contact itself; these two faults prove the people checks can fail."""
    from pytest_cutover.checks import people, team
    from pytest_cutover.config import load_config
    from pytest_cutover.rehearsal.stack import read_env_file

    def config() -> Any:
        return load_config(stack.config_path, env=read_env_file(stack.stack_env_path))

    clean = config()
    assert team.check_team_item(clean, "stakeholders_notified").ok
    assert people.check_contacts(clean, "on-call").ok
    assert "covered" in people.check_contacts(clean, "on-call").evidence, "the rehearsal sets a maintenance window"
    stack.plant("missing-attestation")
    stack.plant("on-call-gap")
    try:
        cfg = config()
        missing = team.check_team_item(cfg, "stakeholders_notified")
        assert not missing.ok and "team.stakeholders_notified" in missing.message
        gap = people.check_contacts(cfg, "on-call")
        assert not gap.ok and gap.message.startswith("no on-call contact is on duty from ")
        assert people.check_contacts(cfg, "support").ok and team.check_team_item(cfg, "support_standby").ok
    finally:
        stack.undo("missing-attestation")
        stack.undo("on-call-gap")
    assert team.check_team_item(config(), "stakeholders_notified").ok and people.check_contacts(config(), "on-call").ok
