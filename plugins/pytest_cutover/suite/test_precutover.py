"""PRE-CUTOVER VALIDATION (Day 7): every item of the runbook's checklist as a test.

Each test's `runbook` marker quotes the runbook line it covers, verbatim.  The tests are thin: the probes
live in ``pytest_cutover.checks`` and return ``CheckResult(ok, evidence, figures, problems)``; a failing
assertion prints the problems, which say what to do.  A config key a test needs and does not find makes
it skip naming the key (the sign-off needs a waiver for it).  Nothing here knows whether the config
describes production or a rehearsal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.checks import CheckResult
from pytest_cutover.config import CutoverConfig

pytestmark = pytest.mark.precutover


def _config_of(config: pytest.Config) -> CutoverConfig | None:
    from pytest_cutover.session_keys import get_session

    try:
        return get_session(config).cutover_config
    except (KeyError, AttributeError):
        return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tenant tables come from the config (sorted): the same collection on every xdist worker."""
    if "tenant_table" in metafunc.fixturenames:
        from pytest_cutover.checks.rls_audit import configured_tables

        metafunc.parametrize("tenant_table", configured_tables(_config_of(metafunc.config)))


def _verify(check: CheckResult, record_figure: Callable[[str, Any], None], *, prefix: str = "") -> None:
    """Record the check's figures, then fail with its problems (each says what to do)."""
    for name, value in check.figures.items():
        record_figure(f"{prefix}{name}", value)
    ok, message = check.ok, check.message
    assert ok, message


# ------------------------------------------------------------------------------------------------ Code Quality
@pytest.fixture(scope="module")
def checkout_report(cutover_config: CutoverConfig, needs: Any) -> Any:
    """The app checkout as its own interpreter sees it: py_compile of every file, every import resolved."""
    from pytest_cutover.checks import code

    needs("app.source_dir")
    return code.inspect_checkout(cutover_config)


@pytest.mark.runbook("All syntax verified with `py_compile`")
def test_syntax_verified_with_py_compile(cutover_config: CutoverConfig, needs: Any,
                                         checkout_report: Any, record_figure: Any) -> None:
    """Every ``.py`` file of ``app.source_dir`` compiles with ``py_compile`` in the app's interpreter
    (``app.python``); a syntax error names file and line.
    """
    from pytest_cutover.checks import code

    needs("app.source_dir")
    _verify(code.check_syntax(checkout_report, code.source_dir(cutover_config)), record_figure)


@pytest.mark.runbook("All imports verified")
def test_imports_verified(cutover_config: CutoverConfig, needs: Any, checkout_report: Any,
                          record_figure: Any) -> None:
    """Every import of the checkout resolves in the app's interpreter: its own modules on disk (and the
    names imported from them), third-party modules with ``find_spec``.  Optional imports are skipped.
    """
    from pytest_cutover.checks import code

    needs("app.source_dir")
    _verify(code.check_imports(checkout_report, code.source_dir(cutover_config)), record_figure)


@pytest.mark.runbook("Test suite created and ready")
def test_test_suite_created_and_ready(cutover_config: CutoverConfig, needs: Any,
                                      record_figure: Any) -> None:
    """``python -m pytest --collect-only -q`` in the checkout exits 0 and collects at least one test."""
    from pytest_cutover.checks import code

    needs("app.source_dir")
    _verify(code.check_collects(cutover_config), record_figure)


@pytest.mark.runbook("No merge conflicts")
def test_no_merge_conflicts(cutover_config: CutoverConfig, needs: Any, record_figure: Any) -> None:
    """No tracked text file of the checkout contains ``<<<<<<<``/``>>>>>>>`` conflict markers."""
    from pytest_cutover.checks import code

    needs("app.source_dir")
    _verify(code.check_merge_markers(cutover_config), record_figure)


@pytest.mark.runbook("All changes committed to git")
def test_all_changes_committed_to_git(cutover_config: CutoverConfig, needs: Any,
                                      record_figure: Any) -> None:
    """The working tree is clean (no modified or untracked files) and HEAD is on the remote branch."""
    from pytest_cutover.checks import code

    needs("app.source_dir")
    _verify(code.check_git(cutover_config), record_figure)


# ------------------------------------------------------------------------------------------------ Data Validation
@pytest.mark.runbook("Database backups taken")
def test_database_backups_taken(cutover_config: CutoverConfig, needs: Any, record_figure: Any) -> None:
    """The newest file at ``backup.path`` is non-empty and younger than ``thresholds.backup_max_age_hours``
    (or ``backup.command`` exits 0).
    """
    from pytest_cutover.checks import backup

    needs("backup.path|backup.command")
    _verify(backup.check_backup(cutover_config), record_figure)


@pytest.mark.runbook("Data pre-synced before the window (Day 7)")
def test_data_presynced_and_fresh(ctx: Any, cutover_config: CutoverConfig, record_figure: Any) -> None:
    """The run's ledger holds a passing ``cutover migrate vectors --presync`` (and ``blobs --presync`` when
    Storage is configured) younger than ``migrate.presync_max_age_h``, so the sync stage sends only what
    changed.  Missing or stale fails only with ``migrate.presync_required = true``; otherwise the gap goes to
    the report as a note and the final sync copies everything, as the runbook allows.
    """
    from pytest_cutover.checks import presync

    state = presync.check_presync(cutover_config, ctx.ledger.records(), ctx.run)
    if state.note:
        ctx.ledger.append({"kind": "note", "text": state.note, **ctx.stamp()})
    _verify(state.check, record_figure)


@pytest.fixture(scope="module")
def source_counts(cutover_config: CutoverConfig, needs: Any) -> Any:
    """Fragment and attachment counts of the source (old) database, read once."""
    from pytest_cutover.checks import counts

    needs("source.database_url")
    return counts.source_counts(cutover_config)


@pytest.mark.runbook("Vector count verified in Qdrant")
def test_vector_count_verified_in_qdrant(cutover_config: CutoverConfig, needs: Any, record_figure: Any) -> None:
    """An exact count of ``source.collection`` (and its dimension), recorded as figures."""
    from pytest_cutover.checks import counts

    needs("source.qdrant_url|source.qdrant_path")
    _verify(counts.check_qdrant(cutover_config), record_figure)


@pytest.mark.runbook("Memory fragment count verified")
def test_memory_fragment_count_verified(cutover_config: CutoverConfig, needs: Any, source_counts: Any,
                                        record_figure: Any) -> None:
    """Fragments and fragments with a ``vector_id`` on the source database, recorded as figures."""
    from pytest_cutover.checks import counts

    needs("source.database_url")
    _verify(counts.check_fragments(source_counts, cutover_config), record_figure)


@pytest.mark.runbook("Attachment BLOB count verified")
def test_attachment_blob_count_verified(cutover_config: CutoverConfig, needs: Any, source_counts: Any,
                                        record_figure: Any) -> None:
    """Attachments with a BLOB (and their bytes) on the source database; none may have lost its content."""
    from pytest_cutover.checks import counts

    needs("source.database_url")
    _verify(counts.check_blobs(source_counts, cutover_config), record_figure)


# ------------------------------------------------------------------------------------------------ Infrastructure
@pytest.fixture(scope="module")
def target_facts(cutover_config: CutoverConfig, needs: Any) -> Any:
    """pgvector, the embedding column and the storage bucket as the target's catalog shows them."""
    from pytest_cutover.checks import target

    needs("target.database_url")
    return target.target_facts(cutover_config)


@pytest.mark.runbook("Supabase project fully provisioned")
def test_supabase_project_fully_provisioned(cutover_config: CutoverConfig, needs: Any,
                                            record_figure: Any) -> None:
    """The target answers on ``target.database_url`` and holds every app table and the storage schema."""
    from pytest_cutover.checks import target

    needs("target.database_url")
    _verify(target.check_provisioned(cutover_config), record_figure)


@pytest.mark.runbook("pgvector extension enabled")
def test_pgvector_extension_enabled(needs: Any, target_facts: Any, record_figure: Any) -> None:
    """``vector`` is installed in the target database (0.5.0 or later, for HNSW); its version is a figure."""
    from pytest_cutover.checks import target

    needs("target.database_url")
    _verify(target.check_pgvector(target_facts), record_figure)


@pytest.mark.runbook("pgvector extension enabled")
def test_embedding_column_matches_collection(cutover_config: CutoverConfig, needs: Any,
                                             target_facts: Any, record_figure: Any) -> None:
    """The embedding column exists as ``vector(n)`` and ``n`` equals the Qdrant collection's dimension
    (otherwise every point would be rejected by the migration).
    """
    from pytest_cutover.checks import counts, target

    needs("target.database_url")
    dim = None
    if cutover_config.source.qdrant_path or cutover_config.source.qdrant_url:
        dim = counts.qdrant_info(cutover_config).dimension
    _verify(target.check_embedding(target_facts, cutover_config, dim), record_figure)


@pytest.mark.runbook("Storage bucket created with RLS policies")
def test_storage_bucket_created_and_private(cutover_config: CutoverConfig, needs: Any,
                                            target_facts: Any, record_figure: Any) -> None:
    """The bucket ``target.bucket`` exists and is NOT public (a public bucket serves every org's files
    without a JWT).
    """
    from pytest_cutover.checks import target

    needs("target.database_url")
    _verify(target.check_bucket(target_facts, cutover_config), record_figure)


@pytest.mark.runbook("Storage bucket created with RLS policies")
def test_storage_rls_policies_exist(cutover_config: CutoverConfig, needs: Any, target_facts: Any,
                                    record_figure: Any) -> None:
    """RLS is enabled on ``storage.objects`` and a SELECT policy covering the bucket ties rows to the
    caller (``auth.jwt()``/``auth.uid()``), with no branch that lets every org through.
    """
    from pytest_cutover.checks import target

    needs("target.database_url")
    _verify(target.check_storage_rls(target_facts, cutover_config), record_figure)


@pytest.mark.runbook("Connection pooler URL working")
def test_connection_pooler_url_working(cutover_config: CutoverConfig, needs: Any,
                                       record_figure: Any) -> None:
    """``target.app_database_url`` connects and behaves as a TRANSACTION pooler (a session-level SET does
    not follow its client; other clients see it on the shared backend), or PgBouncer's ``SHOW CONFIG``
    says so.  Runbook Step 3a: "Use port **6543** (transaction pooler), NOT 5432 (session pooler)".
    """
    from pytest_cutover.checks import pooler

    needs("target.app_database_url")
    _verify(pooler.check_pooler(cutover_config), record_figure, prefix="pooler.")


@pytest.mark.runbook("Connection pooler URL working")
def test_app_engine_settings_fit_the_transaction_pooler(cutover_config: CutoverConfig, needs: Any,
                                                        record_figure: Any) -> None:
    """The app's engine turns asyncpg's and SQLAlchemy's statement caches off (``statement_cache_size=0``,
    ``prepared_statement_cache_size=0``): prepared statements break through a transaction pooler.
    """
    from pytest_cutover.checks import app_source

    needs("app.source_dir")
    _verify(app_source.check_engine_settings(cutover_config), record_figure)


@pytest.mark.runbook("Port 6543: Supports `SET LOCAL` for RLS context ✅")
def test_app_sets_rls_context_per_transaction(cutover_config: CutoverConfig, needs: Any,
                                              record_figure: Any) -> None:
    """The app sets its tenant with ``SET LOCAL``/``set_config(..., true)`` and bound parameters; no plain
    ``SET app.…``, no ``set_config(..., false)``, no string-formatted SQL.
    """
    from pytest_cutover.checks import app_source

    needs("app.source_dir")
    _verify(app_source.check_rls_context(cutover_config), record_figure)


_TLS_ENDPOINTS = ("target.app_database_url", "target.session_pooler_url", "api")


@pytest.mark.runbook("SSL certificates valid")
@pytest.mark.parametrize("endpoint", _TLS_ENDPOINTS)
def test_ssl_certificates_valid(cutover_config: CutoverConfig, needs: Any, endpoint: str,
                                record_figure: Any) -> None:
    """The certificate chain verifies for the host name (``target.ca_file``/``app.ca_file`` or the system
    CAs) and expires no sooner than ``thresholds.tls_min_days``: the database endpoints through
    PostgreSQL's in-protocol TLS negotiation, the API over HTTPS.
    """
    from pytest_cutover.checks import tls

    if endpoint == "api":
        needs("app.api_base|app.health_url")
        check = tls.check_api_tls(cutover_config)
    else:
        needs(endpoint)
        check = tls.check_database_tls(cutover_config, endpoint)
    _verify(check, record_figure, prefix=f"tls.{endpoint}.")


# ------------------------------------------------------------------------------------------------ RLS posture
@pytest.fixture(scope="module")
def rls_posture(cutover_config: CutoverConfig, needs: Any) -> Any:
    """The app role and every tenant table's RLS flags, owner and policies, read once."""
    from pytest_cutover.checks import rls_audit

    needs("target.app_database_url")
    return rls_audit.read_posture(cutover_config)


@pytest.mark.runbook("Supabase project fully provisioned")
def test_rls_enabled_forced_and_tenant_scoped(needs: Any, rls_posture: Any, tenant_table: str,
                                              record_figure: Any) -> None:
    """The tenant table has RLS enabled AND forced, permissive policies for every command that apply to the
    app role, none ``USING (true)`` or OR'ing an org-independent branch, and the app role does not own it.
    """
    from pytest_cutover.checks import rls_audit

    needs("target.app_database_url")
    if rls_audit.qualify(tenant_table) not in rls_posture.tables:
        pytest.skip(f"{tenant_table} is not a tenant table (no {rls_posture.tenant_column} column, not referenced "
                    f"by one) and not in schema.tenant_tables")
    _verify(rls_audit.audit_table(rls_posture, tenant_table), record_figure, prefix=f"rls.{tenant_table}.")


@pytest.mark.runbook("Supabase project fully provisioned")
def test_rls_covers_every_discovered_tenant_table(cutover_config: CutoverConfig, needs: Any,
                                                  rls_posture: Any, record_figure: Any) -> None:
    """Tables found in the catalog with the tenant column but not in the configured list get the same audit,
    so no tenant table escapes it.
    """
    from pytest_cutover.checks import rls_audit

    needs("target.app_database_url")
    listed = {rls_audit.qualify(t) for t in rls_audit.configured_tables(cutover_config)}
    extra = sorted(set(rls_posture.tables) - listed)
    record_figure("rls.unlisted_tenant_tables", [rls_audit.display_name(t) for t in extra])
    problems = [p for t in extra for p in rls_audit.audit_table(rls_posture, t).problems]
    assert not problems, "; ".join(problems)


@pytest.mark.runbook("Supabase project fully provisioned")
def test_app_role_is_not_privileged(needs: Any, rls_posture: Any, record_figure: Any) -> None:
    """The role in ``target.app_database_url`` (what the app's DATABASE_URL becomes) is not a superuser,
    has no BYPASSRLS and owns no tenant table: otherwise RLS never filters the app.
    """
    from pytest_cutover.checks import rls_audit

    needs("target.app_database_url")
    _verify(rls_audit.audit_role(rls_posture), record_figure, prefix="rls.")


@pytest.mark.runbook("Supabase project fully provisioned")
def test_exposed_surface_does_not_leak(cutover_config: CutoverConfig, needs: Any,
                                      record_figure: Any) -> None:
    """Everything the app role, ``anon`` and ``authenticated`` can reach (tables, views, materialized views,
    functions, in every schema) is inventoried as a figure; each way it leaks (tenant tables without bound
    RLS, definer views, executable SECURITY DEFINER functions, grants to anon, readable secrets,
    user_metadata policies, auth tables, extensions in public) fails naming the object and its fix.
    """
    from pytest_cutover.checks import surface

    needs("target.app_database_url")
    _verify(surface.check_surface(*surface.read_surface(cutover_config)), record_figure)


# ------------------------------------------------------------------------------------------------ Team Communication
def _team(cutover_config: CutoverConfig, item: str, record_figure: Any) -> None:
    from pytest_cutover.checks import team

    check = team.check_team_item(cutover_config, item)
    ok, message = check.ok, check.message
    assert ok, message
    record_figure(f"team.{item}", f"{check.figures['who']} @ {check.figures['when']}")


@pytest.mark.runbook("Stakeholders notified of maintenance window")
def test_stakeholders_notified(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """Attested in the config: ``[team.stakeholders_notified] who = ..., when = ...``."""
    _team(cutover_config, "stakeholders_notified", record_figure)


@pytest.mark.runbook("Support team on standby")
def test_support_team_on_standby(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """Attested in the config: ``[team.support_standby] who = ..., when = ...``."""
    _team(cutover_config, "support_standby", record_figure)


@pytest.mark.runbook("Rollback plan documented")
def test_rollback_plan_documented(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """Attested in the config: ``[team.rollback_plan_documented] who = ..., when = ...``."""
    _team(cutover_config, "rollback_plan_documented", record_figure)


@pytest.mark.runbook("Escalation contacts confirmed")
def test_escalation_contacts_confirmed(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """Attested in the config: ``[team.escalation_contacts] who = ..., when = ...``."""
    _team(cutover_config, "escalation_contacts", record_figure)


# ------------------------------------------------------------------------------------------------ People on duty
def _contacts(cutover_config: CutoverConfig, role: str, record_figure: Any) -> None:
    from pytest_cutover.checks import people

    _verify(people.check_contacts(cutover_config, role), record_figure, prefix=f"people.{role}.")


@pytest.mark.runbook("Escalation contacts confirmed")
def test_escalation_contacts_listed_and_reachable(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """At least one ``[[people.contacts]]`` entry with ``role = "escalation"`` ("CTO or Engineering Lead"); each
    has a name and a channel that parses (``slack:#...``, ``phone:+...``, ``mail:...``), and together they
    cover ``run.maintenance_start``..``maintenance_end`` when their ``from``/``until`` are given.
    """
    _contacts(cutover_config, "escalation", record_figure)


@pytest.mark.runbook("Call: On-call team (see contact list)")
def test_on_call_team_listed_and_reachable(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """The contact list exists: at least one ``role = "on-call"`` entry, each named and reachable on a channel
    that parses, and nobody-on-call gaps inside the maintenance window fail naming the gap.
    """
    _contacts(cutover_config, "on-call", record_figure)


@pytest.mark.runbook("Support team on standby")
def test_support_standby_listed_and_reachable(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """At least one ``role = "support"`` entry, each named and reachable on a channel that parses, on duty
    through the maintenance window.
    """
    _contacts(cutover_config, "support", record_figure)


@pytest.mark.runbook("Rollback plan documented")
def test_rollback_plan_committed_and_complete(cutover_config: CutoverConfig, record_figure: Any) -> None:
    """``[app] rollback_plan`` (relative to the config file) exists, is committed in its git checkout (not
    untracked, ignored or modified), names the host the app's previous ``DATABASE_URL`` points at (never its
    password) and contains the restart command (``app.restart_command``).
    """
    from pytest_cutover.checks import rollback_plan

    _verify(rollback_plan.check_rollback_plan(cutover_config), record_figure, prefix="rollback_plan.")
