"""Redaction: one function for every output; a self-test greps every artefact for planted secrets."""

from __future__ import annotations

import pytest

from pytest_cutover.redact import MASK, Secret, redact, redact_obj, register_secret

from .conftest import CutoverPytester


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+asyncpg://postgres:developer%40syntra@db.x.supabase.co:6543/postgres",
         "postgresql+asyncpg://postgres:***@db.x.supabase.co:6543/postgres"),
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
        ("curl -H 'Authorization: Bearer tok_12345'", "curl -H 'Authorization: Bearer ***'"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJl here", "token ***jwt here"),
        ("host=db password=s3cr3t user=app", "host=db password=*** user=app"),
        ('{"storage_key": "sk_live_123"}', '{"storage_key": "***"}'),
        ("ADMIN_TOKEN=abc123xyz", "ADMIN_TOKEN=***"),
        ("plain text: org_0001 has 12 threads at db:6543", "plain text: org_0001 has 12 threads at db:6543"),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_literals_are_masked_anywhere() -> None:
    register_secret("plain-literal-9431")
    assert redact("the key plain-literal-9431 leaked") == f"the key {MASK} leaked"
    assert redact_obj({"a": ["x plain-literal-9431"]}) == {"a": [f"x {MASK}"]}


def test_secret_never_shows_its_value() -> None:
    dsn = Secret("postgresql://app:pa55word-77@db:6543/postgres")
    assert str(dsn) == "postgresql://app:***@db:6543/postgres"
    assert "pa55word-77" not in repr(dsn)
    assert dsn.get().endswith("@db:6543/postgres")
    assert str(Secret("service-key-value-1")) == MASK
    # once wrapped, the password is masked even when printed without its URL
    assert redact("password is pa55word-77") == f"password is {MASK}"


PLANTED = {
    "SUPABASE_DB_URL": ("postgresql://postgres:Pl4nted-DB-pw@db.example:5432/postgres", "Pl4nted-DB-pw"),
    "SUPABASE_SERVICE_KEY": ("planted-service-key-0042", "planted-service-key-0042"),
    "ADMIN_TOKEN": ("planted-admin-token-7788", "planted-admin-token-7788"),
}
CONFIG = """
[run]
lead = "Dana"
[target]
database_url = "${SUPABASE_DB_URL}"
storage_key = "${SUPABASE_SERVICE_KEY}"
[app]
admin_token = "${ADMIN_TOKEN}"
"""
SUITE = '''
import logging, sys
import pytest

@pytest.mark.precutover
def test_passing(cutover_config, record_figure):
    dsn = cutover_config.target.database_url
    record_figure("target", str(dsn))
    print("connecting with", dsn.get())

@pytest.mark.sync
def test_failing(cutover_config):
    raw = cutover_config.target.database_url.get()
    key = cutover_config.target.storage_key.get()
    token = cutover_config.app.admin_token.get()
    logging.getLogger("app").error("storage key %s token %s", key, token)
    print("DATABASE_URL=" + raw, file=sys.stderr)
    assert raw == "", f"could not connect to {raw} with key {key} and token {token}"
'''


def test_planted_secrets_never_reach_reports_or_terminal(cutover_pytester: CutoverPytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (value, _) in PLANTED.items():
        monkeypatch.setenv(name, value)
    cutover_pytester.pytester.makefile(".toml", cutover=CONFIG)
    cutover_pytester.suite(SUITE)
    run = cutover_pytester.run("-rA", "-v", "--cutover-force", f"ok {PLANTED['ADMIN_TOKEN'][0]}", subprocess=True)
    assert run.verdicts() == {"precutover": "passed", "sync": "failed"}
    assert "could not connect to postgresql://postgres:***@db.example:5432/postgres" in run.output
    # the one-line summary keeps the (masked) assertion message, not the first line of the traceback
    assert "FAILED test_cutover_suite.py::test_failing - AssertionError: could not conn" \
        in run.output
    files = [p for p in (cutover_pytester.path / "reports").rglob("*") if p.is_file()]
    assert files, "the run wrote no report files to check"
    for _, secret in PLANTED.values():
        assert secret not in run.output
        for path in files:
            assert secret not in path.read_text(errors="replace"), f"{secret} leaked into {path}"
