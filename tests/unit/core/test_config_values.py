"""Config values checked at load: every unset ``${VAR}`` at once, empty secrets, URLs that do not parse.

Each error names the file and the key and never quotes any part of a secret value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cutover.config import dsn_notices, load_config, parse_config
from pytest_cutover.dsn import driver_dsn
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import redact

THREE_VARS = """
[source]
database_url = "${OLD_DB_URL}"
qdrant_api_key = "${QDRANT_API_KEY}"
[target]
database_url = "${NEW_DB_URL}"
app_database_url = "${NEW_DB_URL}"
"""


def test_every_unset_variable_is_listed_at_once_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cutover.toml"
    path.write_text(THREE_VARS)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    text = str(err.value)
    assert text.startswith(f"{path}: environment 3 variables are not set: ")
    assert "OLD_DB_URL (needed by source.database_url)" in text
    assert "NEW_DB_URL (needed by target.database_url, target.app_database_url)" in text
    # the hint is a placeholder people can copy; it is not masked as if it were a secret
    assert "export OLD_DB_URL=... QDRANT_API_KEY=... NEW_DB_URL=..." in text
    assert "***" not in text


def test_the_key_value_pattern_leaves_placeholders_alone() -> None:
    assert redact("export QDRANT_API_KEY=...") == "export QDRANT_API_KEY=..."
    assert redact("token=<your-token> password=${PW}") == "token=<your-token> password=${PW}"
    assert redact("ADMIN_TOKEN=abc123xyz") == "ADMIN_TOKEN=***"
    # the terminal is redacted as a whole now: test ids and file:line locations are not key=value secrets
    for text in ("tests/test_passwords.py::test_a_token PASSED", "test_tokens.py:12: AssertionError"):
        assert redact(text) == text


def test_an_empty_secret_is_an_error_naming_the_key_and_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"target": {"jwt_secret": "${JWT}"}}, source="c.toml", env={"JWT": ""})
    assert str(err.value).startswith("c.toml: target.jwt_secret is empty (its value comes from ${JWT})")


HOSTILE = "Xq9/vb#Tz?k@Lm"


@pytest.mark.parametrize(("password", "problem"), [
    ("Xq9/vbTzkLmw", "the password contains `/`: percent-encode it as `%2F`"),
    ("Xq9#vbTzkLmw", "the password contains `#`: percent-encode it as `%23`"),
    ("Xq9?vbTzkLmw", "the password contains `?`: percent-encode it as `%3F`"),
    ("Xq9@vbTzkLmw", "the password contains `@`: percent-encode it as `%40`"),
    ("Xq9%zvbTzkLmw", "the password contains a `%` that does not start a percent-encoding"),
    (HOSTILE, "the password contains `/`: percent-encode it as `%2F`"),
])
def test_a_database_url_that_does_not_parse_is_named_without_quoting_it(password: str, problem: str) -> None:
    env = {"DB_URL": f"postgresql://app:{password}@db.example:6543/postgres"}
    with pytest.raises(ConfigError) as err:
        parse_config({"target": {"app_database_url": "${DB_URL}"}}, source="c.toml", env=env)
    text = str(err.value)
    assert text.startswith(f"c.toml: target.app_database_url: {problem}")
    assert "${DB_URL}" in text
    for fragment in {password, *password.replace("#", "/").replace("?", "/").replace("@", "/").split("/")}:
        if len(fragment) >= 3:
            assert fragment not in text, fragment


def test_percent_encoded_passwords_and_supabase_params_load() -> None:
    url = "postgresql://postgres.ref:Xq9%2Fvb%23Tz%3Fk%40Lm@pooler.example:6543/postgres?pgbouncer=true&connection_limit=1"
    cfg = parse_config({"target": {"app_database_url": url}}, env={})
    assert cfg.target.app_database_url is not None and cfg.target.app_database_url.get() == url  # byte for byte
    assert dsn_notices(cfg) == ["target.app_database_url: ignoring connection_limit, pgbouncer for the suite's own "
                                "connections (no PostgreSQL driver accepts it); the app's URL is used as written"]
    assert driver_dsn(url) == "postgresql://postgres.ref:Xq9%2Fvb%23Tz%3Fk%40Lm@pooler.example:6543/postgres"
    assert driver_dsn("postgresql+asyncpg://u:p@h/d?sslmode=require&pgbouncer=true") == \
        "postgresql://u:p@h/d?sslmode=require"


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("target.database_url", "mysql://u:p@h/d", "does not start with postgresql://"),
    ("target.database_url", "postgresql://u:pw@h:99999/d", "the port is not a number"),
    ("app.health_url", "ftp://h/health", "does not start with http:// or https://"),
    ("source.qdrant_url", "https://h:port", "the port is not a number"),
])
def test_other_broken_urls_name_the_key(key: str, value: str, problem: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as err:
        parse_config({section: {name: value}}, source="c.toml", env={})
    assert str(err.value).startswith(f"c.toml: {key}: {problem}")


def test_config_check_accepts_the_readme_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.cli import main

    path = tmp_path / "cutover.toml"
    path.write_text('[target]\napp_database_url = "postgresql://u:pw0rd-1@h:6543/d?pgbouncer=true"\n')
    for flag in ("--config", "--cutover-config"):
        assert main(["config", "check", flag, str(path)]) == 0
        out = capsys.readouterr().out
        assert "is valid" in out
        assert "notice: target.app_database_url: ignoring pgbouncer" in out
        assert "pw0rd-1" not in out


def test_our_connections_use_the_cleaned_url_and_psql_never_sees_the_password() -> None:
    from pytest_cutover.actions.pg import asyncpg_dsn
    from pytest_cutover.dsn import split_password
    from pytest_cutover.redact import Secret

    url = "postgresql+asyncpg://app:Xq9%2Fvb@pooler.example:6543/postgres?pgbouncer=true&application_name=x"
    assert asyncpg_dsn(Secret(url)) == "postgresql://app:Xq9%2Fvb@pooler.example:6543/postgres?application_name=x"
    assert split_password(url) == ("postgresql://app@pooler.example:6543/postgres?application_name=x", "Xq9/vb")


def test_every_bad_value_is_listed_at_once() -> None:
    env = {"PW": "Kq7Lm/Xp9#Zt4Wq", "EMPTY": ""}
    data = {"target": {"database_url": "postgresql://postgres:${PW}@h:5432/postgres", "storage_key": "${EMPTY}"}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="c.toml", env=env)
    assert str(err.value).startswith("c.toml: target.storage_key is empty (its value comes from ${EMPTY}); "
                                     "target.database_url: the password contains `/`: percent-encode it as `%2F` "
                                     "(its value comes from ${PW})")
    assert "Kq7Lm" not in str(err.value) and "Xp9" not in str(err.value)
