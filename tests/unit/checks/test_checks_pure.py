"""The checks' pure parts: policy expression analysis, source scanning, attestations, backups, results."""

from __future__ import annotations

import importlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pytest_cutover.checks import app_source, backup, code, rls_audit, team
from pytest_cutover.checks.base import result
from pytest_cutover.config import parse_config

SETTINGS = ("app.current_org_id", "app.current_user_id")
ORG = "(org_id = NULLIF(current_setting('app.current_org_id'::text, true), ''::text))"
USER = "(user_id = NULLIF(current_setting('app.current_user_id'::text, true), ''::text))"


@pytest.mark.parametrize(("expr", "unbound"), [
    (ORG, []),
    (f"({ORG} AND ((tier = 'shared'::text) OR {USER}))", []),
    ("true", ["true"]),
    (f"({ORG} OR (tier = 'shared'::text))", ["tier = 'shared'::text"]),
    (f"({ORG} OR true)", ["true"]),
    ("(org_id IS NOT NULL)", ["org_id IS NOT NULL"]),
    ("(bucket_id = 'attachments'::text)", ["bucket_id = 'attachments'::text"]),
    ("is_member_of(org_id)", ["is_member_of(org_id)"]),
    # The once-per-statement form, JWT app_metadata, a membership lookup keyed by auth.uid(): bound.
    ("(org_id = NULLIF(( SELECT current_setting('app.current_org_id'::text, true) AS current_setting), ''::text))",
     []),
    ("(org_id = ((( SELECT auth.jwt() AS jwt) -> 'app_metadata'::text) ->> 'org_id'::text))", []),
    ("(org_id IN ( SELECT m.org_id FROM memberships m WHERE (m.user_id = ( SELECT auth.uid() AS uid))))", []),
    ("(EXISTS ( SELECT 1 FROM memberships m WHERE ((m.org_id = t.org_id) AND (m.user_id = auth.uid()))))", []),
    # Mentioning the column or a tenant-ish function does not bind; a fail-open fallback does not bind.
    ("(length(org_id) > 0)", ["length(org_id) > 0"]),
    ("(auth.uid() IS NOT NULL)", ["auth.uid() IS NOT NULL"]),
    ("(auth.role() = 'authenticated'::text)", ["auth.role() = 'authenticated'::text"]),
    ("(CURRENT_USER = 'app_user'::name)", ["CURRENT_USER = 'app_user'::name"]),
    ("(org_id = COALESCE(NULLIF(current_setting('app.current_org_id'::text, true), ''::text), org_id))",
     ["org_id = COALESCE(NULLIF(current_setting('app.current_org_id'::text, true), ''::text), org_id)"]),
    ("(org_id = ((auth.jwt() -> 'user_metadata'::text) ->> 'org_id'::text))",
     ["org_id = ((auth.jwt() -> 'user_metadata'::text) ->> 'org_id'::text)"]),
    ("(org_id IN ( SELECT m.org_id FROM memberships m))", ["org_id IN ( SELECT m.org_id FROM memberships m)"]),
    # Any column equal to the caller's own id binds the row to that user; a fallback to the column does not.
    ("(primary_owner_user_id = ( SELECT auth.uid() AS uid))", []),
    ("((created_by)::text = (auth.jwt() ->> 'sub'::text))", []),
    ("(owner_id = COALESCE(auth.uid(), owner_id))", ["owner_id = COALESCE(auth.uid(), owner_id)"]),
    ("(lower(name) = (auth.uid())::text)", ["lower(name) = (auth.uid())::text"]),
    ("(org_id <> NULLIF(current_setting('app.current_org_id'::text, true), ''::text))",
     ["org_id <> NULLIF(current_setting('app.current_org_id'::text, true), ''::text)"]),
    ("(content = 'a OR b'::text)", ["content = 'a OR b'::text"]),
    (None, []),
])
def test_unbound_branches(expr: str | None, unbound: list[str]) -> None:
    assert rls_audit.unbound_branches(expr, "org_id", SETTINGS) == unbound


def test_unbound_branches_user_column_storage_path_and_trusted_helpers() -> None:
    assert rls_audit.unbound_branches("(user_id = ( SELECT auth.uid() AS uid))", "org_id", SETTINGS,
                                      user_column="user_id") == []
    storage = ("((bucket_id = 'attachments'::text) AND "
               "((storage.foldername(name))[1] = (auth.jwt() ->> 'org_id'::text)))")
    assert rls_audit.unbound_branches(storage, "name", ()) == []
    assert rls_audit.unbound_branches("is_member_of(org_id)", "org_id", SETTINGS,
                                      trusted_functions=["is_member_of"]) == []


def _posture(**table: Any) -> rls_audit.Posture:
    policy = rls_audit.Policy("p_all", "ALL", True, ("public",), True, ORG, ORG)
    t = rls_audit.TablePosture(**{"table": "public.notes", "exists": True, "owner": "postgres", "enabled": True,
                                  "forced": True, "policies": (policy,), **table})
    return rls_audit.Posture(role=rls_audit.RolePosture("app_user", False, False), tables={"public.notes": t},
                             keys={"public.notes": "org_id"}, discovered=("public.notes",), configured=(),
                             tenant_column="org_id", org_setting=SETTINGS[0], user_setting=SETTINGS[1])


def test_audit_table_messages_are_actions() -> None:
    assert rls_audit.audit_table(_posture(), "notes").ok
    missing = rls_audit.audit_table(_posture(policies=(rls_audit.Policy("sel", "SELECT", True, ("public",), True,
                                                                         ORG, None),)), "notes")
    assert missing.problems[0].startswith("no permissive policy for INSERT, UPDATE, DELETE on notes applies to "
                                          "app_user: those commands are denied to the app; add CREATE POLICY "
                                          "notes_tenant_insert ON notes FOR INSERT")
    other_role = rls_audit.Policy("svc", "SELECT", True, ("service_role",), False, "true", None)
    assert rls_audit.audit_table(_posture(policies=(*_posture().tables["public.notes"].policies, other_role)),
                                 "notes").ok, "a USING (true) policy for another role does not concern the app"
    gone = rls_audit.audit_table(_posture(), "archive")
    assert gone.problems == ("tenant table archive does not exist on the target: create it, or remove it from "
                             "schema.tenant_tables",)


def test_configured_tables_default_to_the_runbook_tables() -> None:
    assert rls_audit.configured_tables(None) == ["attachments", "memory_fragments", "messages", "orgs", "threads",
                                                 "users"]
    cfg = parse_config({"schema": {"tenant_tables": ["public.b", "a", "crm.c"]}})
    assert rls_audit.configured_tables(cfg) == ["a", "b", "crm.c"]


def test_app_source_scan_finds_safe_and_unsafe_context(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "db.py").write_text(
        '"""SET app.current_org_id = x in a docstring is ignored."""\n'
        "import asyncpg\n"
        "async def pool(url):\n"
        "    return await asyncpg.create_pool(url, statement_cache_size=0)\n"
        "SAFE = \"SELECT set_config('app.current_org_id', $1, true)\"\n"
        "LOCAL = 'SET LOCAL app.current_user_id = 42'\n"
        "def bad(org):\n"
        "    a = f\"SELECT set_config('app.current_org_id', '{org}', true)\"\n"
        "    b = \"SELECT set_config('app.current_org_id', 'fixed', true)\"\n"
        "    c = 'SET SESSION app.current_org_id = ' + org\n"
        "    return a, b, c\n", encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_db.py").write_text("X = \"SET app.current_org_id = 'leak'\"\n", encoding="utf-8")
    scan = app_source.scan_app_source(tmp_path, "app.current_org_id")
    assert scan.files == 1, "tests are not the app"
    assert scan.engines == [("app/db.py:4", "asyncpg.create_pool")]
    assert [w for w, _ in scan.safe_context] == ["app/db.py:5", "app/db.py:6"]
    whys = sorted(why.split(":")[0] for _, why in scan.unsafe_context)
    assert len(scan.unsafe_context) == 3, scan.unsafe_context
    assert any("built with string formatting" in why for _, why in scan.unsafe_context)
    assert any("does not bind the value" in why for _, why in scan.unsafe_context)
    assert any(why.startswith("plain SET app.current_org_id is session-scoped") for _, why in scan.unsafe_context)
    assert whys
    cfg = parse_config({"app": {"source_dir": str(tmp_path)}})
    engine = app_source.check_engine_settings(cfg, scan)
    assert engine.ok, engine.message  # asyncpg pool: statement_cache_size=0 is what it needs


def test_team_attestations(tmp_path: Path) -> None:
    cfg = parse_config({"team": {"support_standby": {"who": "Dana (support lead)", "when": "2026-11-25T16:00Z"},
                                 "rollback_plan_documented": {"who": "Ali", "when": "yesterday"}}})
    ok = team.check_team_item(cfg, "support_standby")
    assert ok.ok and ok.evidence == "'Support team on standby': attested by Dana (support lead) at 2026-11-25T16:00Z"
    missing = team.check_team_item(cfg, "escalation_contacts")
    assert missing.problems == ("no attestation for 'Escalation contacts confirmed' (team.escalation_contacts): once "
                                "it is done, add [team.escalation_contacts] who = \"<name>\" and when = \"<ISO "
                                "date/time>\" to the config (attested so far: rollback_plan_documented, "
                                "support_standby)",)
    vague = team.check_team_item(cfg, "rollback_plan_documented")
    assert vague.problems == ("team.rollback_plan_documented.when = 'yesterday' is not an ISO date/time: write when "
                              "it was done, e.g. 2026-11-25T16:00Z",)


def test_backup_newest_file_and_age(tmp_path: Path) -> None:
    folder = tmp_path / "dumps"
    folder.mkdir()
    old, new = folder / "a.dump", folder / "b.dump"
    old.write_bytes(b"x" * 10)
    new.write_bytes(b"y" * 20)
    now = time.time()
    os.utime(old, (now - 3 * 3600, now - 3 * 3600))
    os.utime(new, (now - 30 * 3600, now - 30 * 3600))
    cfg = parse_config({"backup": {"path": str(folder)}})
    check = backup.check_backup(cfg, now=now)
    assert check.ok and check.figures == {"backup_age_hours": 3.0, "backup_bytes": 10}
    glob_cfg = parse_config({"backup": {"path": str(folder / "b*.dump")}})
    stale = backup.check_backup(glob_cfg, now=now)
    assert stale.problems == (f"the newest backup {new} is 30.0 h old, over thresholds.backup_max_age_hours = 24: "
                              f"take a fresh backup before the cutover",)
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in backup.check_backup(parse_config({"backup": {"path": str(empty)}})).message
    none = backup.check_backup(parse_config({"backup": {"path": str(tmp_path / "nope*.dump")}}))
    assert none.message.startswith("no backup file matches backup.path")


def test_backup_command() -> None:
    assert backup.check_backup(parse_config({"backup": {"command": "echo snapshot 2026-11-25T06:00Z"}})).evidence \
        == "backup.command exit 0: snapshot 2026-11-25T06:00Z"
    failed = backup.check_backup(parse_config({"backup": {"command": "echo no snapshot today >&2; exit 3"}}))
    assert failed.problems == ("backup.command exited 3: no snapshot today: no recent backup confirmed; take one",)


def test_merge_markers_and_git_outside_a_repository(tmp_path: Path) -> None:
    (tmp_path / "README.rst").write_text("Title\n=======\n", encoding="utf-8")
    (tmp_path / "a.py").write_text("x = 1\n<<<<<<< HEAD\ny = 2\n=======\ny = 3\n>>>>>>> other\n", encoding="utf-8")
    cfg = parse_config({"app": {"source_dir": str(tmp_path)}})
    markers = code.check_merge_markers(cfg)
    assert markers.problems == ("a.py: merge-conflict markers on lines 2, 4, 6: resolve the conflict, commit and push",)
    git = code.check_git(cfg)
    assert git.problems == (f"{tmp_path} is not a git checkout: deploy from a committed, pushed revision",)


def test_imports_resolve_locally_and_name_missing_ones(tmp_path: Path) -> None:
    pkg = tmp_path / "svc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "core.py").write_text("def run():\n    return 1\n", encoding="utf-8")
    (pkg / "main.py").write_text(
        "import json\nfrom svc.core import run\nfrom svc.core import walk\nfrom . import core\n"
        "import no_such_module_anywhere\n"
        "try:\n    import also_missing\nexcept ImportError:\n    also_missing = None\n", encoding="utf-8")
    cfg = parse_config({"app": {"source_dir": str(tmp_path)}})
    report = code.inspect_checkout(cfg)
    check = code.check_imports(report, tmp_path)
    assert [p.split(":")[0:2] for p in check.problems] == [["svc/main.py", "3"], ["svc/main.py", "5"]]
    assert "name walk from svc.core cannot be resolved" in check.problems[0]
    assert "module no_such_module_anywhere cannot be resolved" in check.problems[1]
    assert code.check_syntax(report, tmp_path).ok
    assert not list(tmp_path.rglob("__pycache__")), "py_compile must not write into the checkout"


def test_collect_fails_without_tests(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    check = code.check_collects(parse_config({"app": {"source_dir": str(tmp_path)}}))
    assert check.problems == (f"the app's test suite in {tmp_path} collects no tests: add tests (runbook: 'Test suite "
                              f"created and ready')",)


def test_the_apps_tests_collect_with_the_apps_env_not_the_operators(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator shell that sourced stack.env has DATABASE_URL set; the app reads its own .env."""
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite://\nexport APP_MODE='x'\n", encoding="utf-8")
    (tmp_path / "test_env.py").write_text(
        "import os\n\nassert 'DATABASE_URL' not in os.environ, 'the operator env leaked into the app'\n"
        "assert 'APP_MODE' not in os.environ\n\ndef test_a():\n    pass\n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", "postgresql://operator:pw@elsewhere/db")
    monkeypatch.setenv("APP_MODE", "operator")
    config = parse_config({"app": {"source_dir": str(tmp_path), "env_file": str(tmp_path / ".env")}})
    check = code.check_collects(config)
    assert check.ok, check.message
    without_env_file = code.check_collects(parse_config({"app": {"source_dir": str(tmp_path)}}))
    assert not without_env_file.ok and "the operator env leaked into the app" in without_env_file.message


def test_results_are_redacted() -> None:
    check = result("x", ["cannot reach postgresql://app:s3cr3t-pw@db:6543/postgres"], "token=abcdefgh1234")
    assert "s3cr3t-pw" not in check.message and "abcdefgh1234" not in check.evidence
    assert not check and check.message == "cannot reach postgresql://app:***@db:6543/postgres"


@pytest.mark.parametrize("module", ["app_source", "backup", "base", "code", "counts", "db", "isolation", "pooler",
                                    "rls_audit", "target", "team", "tls"])
def test_public_api_is_declared(module: str) -> None:
    mod = importlib.import_module(f"pytest_cutover.checks.{module}")
    assert len(set(mod.__all__)) == len(mod.__all__)  # ruff (RUF022) keeps the order
    assert all(hasattr(mod, name) for name in mod.__all__)
    public = {n for n, v in vars(mod).items()
              if not n.startswith("_") and getattr(v, "__module__", None) == mod.__name__
              and not isinstance(v, TypeVar)}
    assert public <= set(mod.__all__), sorted(public - set(mod.__all__))
