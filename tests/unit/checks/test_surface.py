"""The exposed-surface audit's pure part: catalog rows in, findings (object, why, fix) out."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pytest_cutover.checks import surface as sf
from pytest_cutover.config import parse_config

APP, ANON, AUTH = "app_user", "anon", "authenticated"
CRUD = ("SELECT", "INSERT", "UPDATE", "DELETE")
ORG = "(org_id = NULLIF(( SELECT current_setting('app.current_org_id'::text, true) AS current_setting), ''::text))"
ID = ORG.replace("(org_id", "(id", 1)


def _table(name: str, *, rls: bool = True, forced: bool = True, owner: str = "postgres",
           privileges: dict[str, tuple[str, ...]] | None = None, kind: str = "r", **kw: Any) -> sf.Relation:
    schema, rel = name.split(".")
    return sf.Relation(schema, rel, kind, owner, rls=rls, forced=forced,
                       privileges={APP: CRUD, AUTH: CRUD} if privileges is None else privileges, **kw)


def _policies(table: str, expr: str, roles: tuple[str, ...] = (APP, AUTH, ANON)) -> list[sf.PolicyRow]:
    return [sf.PolicyRow(table, f"{table.split('.')[1]}_tenant", "ALL", True, roles, expr, expr)]


def _model(**extra: Any) -> sf.Surface:
    """The model target: orgs(id) <- users(org_id) <- threads(org_id), all RLS-bound, nothing for anon."""
    base = dict(
        app_role=APP, roles=(APP, ANON, AUTH),
        relations=(_table("public.orgs"), _table("public.users"), _table("public.threads"),
                   _table("auth.users", privileges={}),
                   _table("storage.objects", privileges={ANON: CRUD, AUTH: CRUD})),
        columns=(sf.Column("public.orgs", "id", (APP, AUTH)), sf.Column("public.users", "org_id", (APP, AUTH)),
                 sf.Column("public.threads", "org_id", (APP, AUTH)), sf.Column("auth.users", "encrypted_password")),
        foreign_keys=(sf.ForeignKey("public.users", ("org_id",), "public.orgs", ("id",)),
                      sf.ForeignKey("public.threads", ("org_id",), "public.orgs", ("id",))),
        policies=(*_policies("public.orgs", ID), *_policies("public.users", ORG), *_policies("public.threads", ORG)),
        functions=(sf.Function("auth", "uid", "", False, False, "supabase_admin", False, (APP, ANON, AUTH)),
                   sf.Function("extensions", "l2_distance", "vector, vector", False, False, "postgres", True,
                               (APP, ANON, AUTH))),
        extensions={"plpgsql": "pg_catalog", "vector": "extensions"}, sequences=(),
    )
    for key, value in extra.items():
        old = base.get(key, {})
        base[key] = (*old, *value) if isinstance(old, tuple) else {**old, **value}
    return sf.Surface(**base)


RULES = sf.Rules(tenant_columns=("org_id",))


def _found(surface: sf.Surface, rules: sf.Rules = RULES) -> dict[tuple[str, str], sf.Finding]:
    return {(f.rule, f.object): f for f in sf.findings(surface, rules)}


def test_the_model_target_has_no_findings_and_an_inventory() -> None:
    model = _model()
    assert sf.findings(model, RULES) == []
    figure = sf.inventory(model, RULES)
    assert figure["roles"][ANON] == {"storage.objects (table)": "SELECT,INSERT,UPDATE,DELETE",
                                     "auth.uid() (function)": "EXECUTE",
                                     "extensions.* (extension functions)": "EXECUTE on 1"}
    assert figure["counts"] == {APP: 5, ANON: 3, AUTH: 6}
    assert figure["tenant_tables"] == {"public.orgs": "tenant key id", "public.threads": "tenant key org_id",
                                       "public.users": "tenant key org_id"}


def test_tenant_tables_by_other_column_name_and_foreign_key_path() -> None:
    model = _model(
        relations=(_table("public.projects", rls=False), _table("public.comments", rls=False),
                   _table("public.plans", privileges={ANON: ("SELECT",)})),
        columns=(sf.Column("public.projects", "organization_id", (APP,)),),
        foreign_keys=(sf.ForeignKey("public.projects", ("organization_id",), "public.orgs", ("id",)),
                      sf.ForeignKey("public.comments", ("thread_id",), "public.threads", ("id",))))
    tenants = sf.tenant_tables(model, RULES)
    assert tenants["public.projects"] == sf.TenantKey("organization_id")
    assert tenants["public.comments"] == sf.TenantKey("thread_id", "public.threads", "id")
    assert "public.plans" not in tenants
    found = _found(model, dataclasses.replace(RULES, public={"public.plans": "pricing, readable by everyone"}))
    projects = found["tenant-rls-disabled", "public.projects"]
    assert projects.severity == "critical"
    assert "ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY" in projects.fix
    assert ("organization_id = nullif((select current_setting('app.current_org_id', true)), '')"
            in projects.fix)
    assert "thread_id in (select id from public.threads)" in found["tenant-rls-disabled", "public.comments"].fix
    assert not [k for k in found if k[1] == "public.plans"], "declared public: readable by anon on purpose"


@pytest.mark.parametrize(("expr", "leaks"), [
    (ORG, False),
    ("(length(org_id) > 0)", True),
    ("(auth.uid() IS NOT NULL)", True),
    ("(auth.role() = 'authenticated'::text)", True),
    ("(CURRENT_USER = 'app_user'::name)", True),
    ("(org_id = COALESCE(NULLIF(current_setting('app.current_org_id'::text, true), ''::text), org_id))", True),
    (f"({ORG} OR true)", True),
])
def test_policy_must_bind_the_tenant(expr: str, leaks: bool) -> None:
    model = _model(policies=(sf.PolicyRow("public.threads", "threads_extra", "SELECT", True, (AUTH,), expr),))
    found = _found(model)
    assert (("policy-unbound", "public.threads policy threads_extra") in found) is leaks, found
    # A policy for a role with no privilege on the table cannot leak through it.
    quiet = _model(relations=(), policies=(sf.PolicyRow("public.threads", "svc", "SELECT", True, ("service_role",),
                                                         "true"),))
    assert not sf.findings(quiet, RULES)


def test_policy_through_parent_subquery_binds() -> None:
    comments = (_table("public.comments"),)
    fks = (sf.ForeignKey("public.comments", ("thread_id",), "public.threads", ("id",)),)
    ok = _model(relations=comments, foreign_keys=fks, policies=_policies(
        "public.comments", "(thread_id IN ( SELECT threads.id FROM threads))"))
    assert sf.findings(ok, RULES) == []
    loose = _model(relations=comments, foreign_keys=fks,
                   policies=_policies("public.comments", "(thread_id IS NOT NULL)"))
    assert ("policy-unbound", "public.comments policy comments_tenant") in _found(loose)


def test_user_metadata_definer_views_matviews_and_auth() -> None:
    model = _model(
        relations=(_table("public.thread_titles", kind="v", privileges={AUTH: ("SELECT",)}),
                   _table("public.safe_titles", kind="v", invoker=True, privileges={AUTH: ("SELECT",)}),
                   _table("public.org_stats", kind="m", privileges={APP: ("SELECT",)}),
                   _table("public.user_emails", kind="v", privileges={ANON: ("SELECT",)})),
        view_reads={"public.thread_titles": ("public.threads",), "public.safe_titles": ("public.threads",),
                    "public.org_stats": ("public.thread_titles",), "public.user_emails": ("auth.users",)},
        policies=(sf.PolicyRow("public.threads", "meta", "SELECT", True, (AUTH,),
                               "(org_id = ((auth.jwt() -> 'user_metadata'::text) ->> 'org_id'::text))"),))
    found = _found(model)
    assert found["view-security-definer", "public.thread_titles"].fix == \
        "ALTER VIEW public.thread_titles SET (security_invoker = on)"
    assert ("view-security-definer", "public.safe_titles") not in found
    assert "(reads public.threads)" in found["matview-exposed", "public.org_stats"].why
    emails = found["view-security-definer", "public.user_emails"]
    assert emails.severity == "critical" and "auth.users" in emails.why
    assert ("anon-grant", "public.user_emails") in found
    meta = found["policy-user-metadata", "public.threads policy meta"]
    assert "app_metadata" in meta.fix and meta.severity == "critical"
    assert ("policy-unbound", "public.threads policy meta") in found
    exposed = _found(_model(relations=(_table("auth.sessions", privileges={AUTH: ("SELECT",)}),)))
    assert exposed["auth-exposed", "auth.sessions"].fix == "REVOKE ALL ON auth.sessions FROM PUBLIC, authenticated"


def test_functions_grants_secrets_extensions_and_per_row_policies() -> None:
    model = _model(
        functions=(sf.Function("public", "org_report", "org text", True, False, "postgres", False, (APP, ANON, AUTH)),
                   sf.Function("public", "slugify", "t text", False, True, "postgres", False, (APP, AUTH))),
        relations=(_table("public.integration_secrets", rls=False, privileges={AUTH: ("SELECT",)}),
                   _table("public.settings", privileges={ANON: ("SELECT", "INSERT")})),
        columns=(sf.Column("public.integration_secrets", "api_key", (AUTH,)),
                 sf.Column("public.users", "password_hash", (APP,))),
        extensions={"pg_trgm": "public"},
        policies=(sf.PolicyRow("public.users", "slow", "SELECT", True, (APP,),
                               "(org_id = NULLIF(current_setting('app.current_org_id'::text, true), ''::text))"),))
    found = _found(model)
    definer = found["definer-function-executable", "public.org_report(org text)"]
    assert definer.fix.startswith("REVOKE EXECUTE ON FUNCTION public.org_report(org text) FROM PUBLIC, app_user, "
                                  "anon, authenticated")
    assert found["function-search-path-mutable", "public.org_report(org text)"].severity == "critical"
    assert ("function-search-path-mutable", "public.slugify(t text)") not in found
    assert ("anon-grant", "public.org_report(org text)") in found
    assert found["anon-grant", "public.settings"].fix.startswith("REVOKE SELECT, INSERT ON public.settings FROM "
                                                                 "PUBLIC, anon")
    secret = found["secret-readable", "public.integration_secrets (api_key)"]
    assert "no tenant key" in secret.why
    assert ("secret-readable", "public.users (password_hash)") not in found, "behind a binding tenant policy"
    assert found["extension-in-public", "extension pg_trgm"].fix.startswith(
        "CREATE SCHEMA IF NOT EXISTS extensions; ALTER EXTENSION pg_trgm SET SCHEMA extensions")
    slow = found["policy-per-row", "public.users policy slow"]
    assert slow.severity == "low" and "calls current_setting() once per row" in slow.why
    assert slow.fix.startswith("wrap each call in a scalar subquery, evaluated once per statement: "
                               "(select current_setting()), e.g. org_id = nullif((select current_setting(")
    result = sf.check_surface(model, RULES)
    assert not result.ok and result.figures["surface"]["findings"] == len(found)
    assert result.problems[0].startswith("[critical] ")


@pytest.mark.parametrize(("name", "secret"), [("api_key", True), ("github_token", True), ("password_hash", True),
                                              ("token_count", False), ("sha256", False), ("tokens", False)])
def test_secret_column_names(name: str, secret: bool) -> None:
    assert sf.is_secret_column(name) is secret


def test_rules_from_config() -> None:
    cfg = parse_config({"schema": {"tenant_tables": ["notes"]},
                        "rls": {"public": {"plans": "pricing"}, "tenant_columns": ["organization_id"]}})
    rules = sf.rules_from_config(cfg)
    assert rules.tenant_columns == ("org_id", "organization_id")
    assert rules.public == {"public.plans": "pricing"} and rules.tenant_tables == ("public.notes",)


def test_accepted_findings_trusted_helpers_and_quoted_policy_names() -> None:
    helper = "(basejump.has_role_on_account(account_id) = true)"
    model = _model(
        relations=(_table("basejump.account_user"),),
        columns=(sf.Column("basejump.account_user", "account_id", (AUTH,)),),
        policies=(sf.PolicyRow("basejump.account_user", "users can view their teammates", "SELECT", True, (AUTH,),
                               helper),),
        functions=(sf.Function("basejump", "has_role_on_account", "account_id uuid", True, True, "postgres", False,
                               (AUTH,)),))
    rules = dataclasses.replace(RULES, tenant_columns=("org_id", "account_id"))
    found = _found(model, rules)
    unbound = found["policy-unbound", "basejump.account_user policy users can view their teammates"]
    assert unbound.fix.startswith('DROP POLICY "users can view their teammates" ON basejump.account_user;')
    assert ("definer-function-executable", "basejump.has_role_on_account(account_id uuid)") in found
    trusted = dataclasses.replace(rules, trusted_functions=("basejump.has_role_on_account",))
    assert sf.findings(model, trusted) == [], "a declared membership helper binds, and may be executable"
    taken = dataclasses.replace(rules, accepted={
        "basejump.account_user policy users can view their teammates": "reviewed: helper checks membership",
        "basejump.has_role_on_account(account_id uuid)": "policies call it"})
    result = sf.check_surface(model, taken)
    assert result.ok, result.problems
    assert result.figures["surface"]["accepted"] == dict(taken.accepted)


def test_probes_cover_tenant_tables_and_views_over_them_per_reading_role() -> None:
    model = _model(
        relations=(_table("public.thread_titles", kind="v", privileges={AUTH: ("SELECT",), ANON: ("SELECT",)}),
                   _table("public.comments", privileges={ANON: ("SELECT",)}),
                   _table("public.plans", privileges={ANON: ("SELECT",)})),
        columns=(sf.Column("public.thread_titles", "org_id", (AUTH, ANON)),),
        foreign_keys=(sf.ForeignKey("public.comments", ("thread_id",), "public.threads", ("id",)),),
        view_reads={"public.thread_titles": ("public.threads",)})
    probes = {(p.relation, p.role): p.column for p in sf.plan_probes(model, RULES)}
    assert probes[("public.threads", APP)] == probes[("public.threads", AUTH)] == "org_id"
    assert probes[("public.orgs", APP)] == "id"
    assert probes[("public.thread_titles", ANON)] == "org_id"
    assert probes[("public.comments", ANON)] is None, "anon: any row of tenant data is a leak"
    assert not [k for k in probes if k[0] in ("public.plans", "storage.objects")], "not tenant data / managed"


def _fn(name: str, args: tuple[tuple[str, str], ...] = (), *, executors: tuple[str, ...] = (APP, ANON, AUTH),
        **kw: Any) -> sf.Function:
    schema, fn = name.split(".")
    sig = ", ".join(f"{n} {t}".strip() for n, t in args)
    return sf.Function(schema, fn, sig, kw.pop("definer", True), True, "postgres", False, executors,
                       arg_names=tuple(n for n, _ in args), arg_types=tuple(t for _, t in args), **kw)


def test_function_probes_fill_tenant_arguments_and_skip_what_they_cannot_fill() -> None:
    model = _model(functions=(
        _fn("public.org_threads", (("p_org", "text"),), retset=True, returns="threads", return_kind="c",
            returns_relation="public.threads"),
        _fn("public.thread_count", (("p_org_id", "uuid"), ("since", "timestamp with time zone")), defaults=1,
            returns="bigint"),
        _fn("public.stats", (("", "integer"), ("", "text")), defaults=1, returns="bigint", definer=False),
        _fn("public.whoami", returns="text", executors=(AUTH,)),
        _fn("public.search", (("q", "vector"),), returns="record", retset=True, out_columns=("id", "org_id")),
        _fn("public.login", (("p_org", "text"), ("p_password", "text")), returns="boolean"),
        _fn("public.touch", returns="trigger", return_kind="p"),
        _fn("public.raw", returns="record", return_kind="p"),
        _fn("public.rebuild", kind="p", returns="void"),
        _fn("public.notify_hook", (("p_org", "text"),), returns="bigint",
            source="select net.http_post('https://example.invalid', '{}'::jsonb)"),
        _fn("public.plans", returns="text", retset=True),
        _fn("public.handler", returns="language_handler", return_kind="p"),
        _fn("public.hidden", returns="text", executors=("service_role",))))
    rules = dataclasses.replace(RULES, public={"public.plans": "the price list"})
    probes, skipped = sf.plan_function_probes(model, rules)
    calls = {(p.label, p.role): p for p in probes}
    threads = calls["public.org_threads(p_org text)", ANON]
    assert threads.call == ('select to_jsonb(r)::text from public.org_threads("p_org" => $1::text::text) as r '
                            'limit 1001')
    assert threads.rows and threads.tenant_args == ("p_org",)
    assert {role for label, role in calls if label == "public.org_threads(p_org text)"} == {APP, ANON, AUTH}
    count = calls["public.thread_count(p_org_id uuid, since timestamp with time zone)", APP]
    assert count.call == 'select (public.thread_count("p_org_id" => $1::text::uuid))::text', "default left out"
    assert not count.rows
    assert calls["public.stats(integer, text)", APP].call == "select (public.stats(NULL::integer))::text"
    assert calls["public.whoami()", AUTH].tenant_args == () and ("public.whoami()", APP) not in calls
    assert skipped == {
        "public.search(q vector)": "argument q of type vector cannot be filled without input",
        "public.login(p_org text, p_password text)": "takes a secret (p_password)",
        "public.touch()": "a trigger function: only its trigger can call it",
        "public.raw()": "returns an anonymous record: a call needs a column definition list",
        "public.rebuild()": "a procedure: CALL is not a query and it may commit or roll back by itself",
        "public.notify_hook(p_org text)": "calls net.http_post(), whose effect a rollback does not undo",
        "public.plans()": "declared public in [rls] public",
        "public.handler()": "returns the pseudo-type language_handler: not callable from SQL with plain arguments"}
    assert not [k for k in calls if k[0].startswith(("auth.", "extensions.", "public.hidden"))]


@pytest.mark.parametrize(("name", "tenant"), [("p_org", True), ("org_id", True), ("_org_id", True), ("orgid", True),
                                              ("in_org", True), ("organization", False), ("p_user_id", False),
                                              ("", False)])
def test_tenant_arguments_by_name(name: str, tenant: bool) -> None:
    assert sf.is_tenant_arg(name, ("org_id",)) is tenant


def test_result_rows_are_judged_by_their_tenant_columns() -> None:
    model = _model()
    tenants = sf.tenant_tables(model, RULES)
    keys = sf.tenant_key_names(model, RULES)
    threads = _fn("public.org_threads", retset=True, returns_relation="public.threads")
    orgs = _fn("public.my_orgs", retset=True, returns_relation="public.orgs")
    titles = _fn("public.titles", retset=True, returns="text")
    rows = [{"id": 1, "org_id": "b"}, {"id": 2, "org_id": "a"}, {"id": 3, "org_id": None}]
    assert sf._tenant_rows(rows, keys, threads, tenants, "b") == 1
    assert sf._tenant_rows(rows, keys, threads, tenants, None) == 3, "anon: every row of a tenant table"
    assert sf._tenant_rows([], keys, threads, tenants, "b") == 0, "judged even when empty"
    assert sf._tenant_rows([{"id": "b", "name": "B"}], keys, orgs, tenants, "b") == 1, "orgs keyed by id"
    assert sf._tenant_rows(["title 1"], keys, titles, tenants, "b") is None, "no tenant column: not judged here"
    record = _fn("public.rows", retset=True, returns="record", out_columns=("id", "org_id"))
    assert sf._tenant_rows([], keys, record, tenants, "b") == 0


def test_sequences_are_inventoried_and_anon_use_is_a_low_finding() -> None:
    seq = sf.Relation("public", "threads_id_seq", "S", "postgres", privileges={APP: ("USAGE", "SELECT"),
                                                                               ANON: ("USAGE",)})
    managed = sf.Relation("storage", "migrations_id_seq", "S", "supabase_storage_admin", privileges={ANON: ("USAGE",)})
    model = _model(sequences=(seq, managed))
    figure = sf.inventory(model, RULES)
    assert figure["roles"][APP]["public.threads_id_seq (sequence)"] == "USAGE,SELECT"
    assert figure["roles"][ANON]["storage.migrations_id_seq (sequence)"] == "USAGE"
    found = sf.findings(model, RULES)
    assert [(f.severity, f.rule, f.object) for f in found] == [("low", "anon-sequence", "public.threads_id_seq")]
    assert found[0].fix.startswith("REVOKE ALL ON SEQUENCE public.threads_id_seq FROM PUBLIC, anon;")
    assert sf.findings(_model(sequences=(dataclasses.replace(seq, privileges={APP: ("USAGE",)}),)), RULES) == []
