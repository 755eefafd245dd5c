"""Config loading: discovery, interpolation, and one clear line (exit code 2) per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.config import config_hash, load_config, lookup, parse_config
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import Secret

GOOD = """
[run]
id = "prod-2026-11-26"
lead = "Dana"
[target]
database_url = "${SUPABASE_DB_URL}"
app_database_url = "postgresql://app_user:${APP_PW}@pooler.example:6543/postgres"
[thresholds]
search_p95_ms = 80
"""
ENV = {"SUPABASE_DB_URL": "postgresql://postgres:topsecret1@db.example:5432/postgres", "APP_PW": "apppw99"}


def test_a_valid_config_is_typed_and_secrets_are_wrapped(tmp_path: Path) -> None:
    (tmp_path / "cutover.toml").write_text(GOOD)
    config = load_config(cwd=tmp_path, env=ENV)
    assert config is not None
    assert config.run.lead == "Dana"
    assert config.thresholds.search_p95_ms == 80.0
    assert config.thresholds.error_rate == 0.01  # runbook default
    assert config.schema_.fragments_table == "memory_fragments"
    assert isinstance(config.target.database_url, Secret)
    assert config.target.database_url.get() == ENV["SUPABASE_DB_URL"]
    assert str(config.target.app_database_url) == "postgresql://app_user:***@pooler.example:6543/postgres"
    assert "topsecret1" not in repr(config)
    assert lookup(config, "target.bucket") == "attachments"
    assert lookup(config, "app.health_url") is None
    assert lookup(None, "app.health_url") is None


def test_discovery_order(tmp_path: Path) -> None:
    assert load_config(cwd=tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[tool.cutover.run]\nid = "from-pyproject"\n')
    assert load_config(cwd=tmp_path).run.id == "from-pyproject"
    (tmp_path / "cutover.toml").write_text('[run]\nid = "from-cutover-toml"\n')
    assert load_config(cwd=tmp_path).run.id == "from-cutover-toml"
    other = tmp_path / "other.toml"
    other.write_text('[run]\nid = "explicit"\n')
    assert load_config(other, cwd=tmp_path).run.id == "explicit"


def test_config_hash_is_stable_and_reveals_nothing() -> None:
    a = parse_config({"target": {"database_url": "postgresql://u:pw1234@h/db"}})
    b = parse_config({"target": {"database_url": "postgresql://u:pw1234@h/db"}})
    c = parse_config({"target": {"database_url": "postgresql://u:pw5678@h/db"}})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert "pw1234" not in config_hash(a)


BAD_CASES = [
    ("missing", None, "does not exist"),
    ("bad-toml", "[run\nid=1", "invalid TOML"),
    ("unknown-key", "[target]\ndatabse_url = 'x'\n", "unknown key target.databse_url"),
    ("unknown-section", "[targets]\nx = 1\n", "unknown key targets"),
    ("wrong-type", "[thresholds]\nsearch_p95_ms = 'fast'\n",
     "thresholds.search_p95_ms: input should be a valid number"),
    ("below-floor", "[thresholds]\nmigration_success = 0.9\n", "thresholds.migration_success"),
    ("missing-var", "[target]\ndatabase_url = '${NOT_SET_ANYWHERE}'\n",
     "cutover.toml: environment variable is not set: NOT_SET_ANYWHERE (needed by target.database_url)"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_config_is_one_clear_line_and_exit_code_2(tmp_path: Path, name: str, content: str | None,
                                                     message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cutover.toml"
    if content is not None:
        path.write_text(content)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)], standalone_mode=False)
    from pytest_cutover.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["config", "check", "--config", str(path)])
    assert code == 2
    assert result.exception is not None


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"app": {"helth_url": "x"}})
    assert "hint: known keys here:" in str(err.value)
    assert "health_url" in str(err.value)


def test_cli_error_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.cli import main

    path = tmp_path / "cutover.toml"
    path.write_text("[thresholds]\nsearch_p95_ms = 'fast'\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def test_config_check_prints_the_config_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.cli import main

    (tmp_path / "cutover.toml").write_text(GOOD)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert main(["config", "check"]) == 0
    out = capsys.readouterr().out
    assert "is valid (run prod-2026-11-26" in out
    assert "postgresql://postgres:***@db.example:5432/postgres" in out
    assert "topsecret1" not in out and "apppw99" not in out


def test_a_pytest_run_with_a_bad_config_stops_with_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", cutover="[app]\nhelth_url = 'x'\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--cutover-config", "cutover.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *cutover.toml: unknown key app.helth_url*"])


@pytest.mark.parametrize(("data", "known"), [
    ({"people": {"contacts": [{"nmae": "Lee", "role": "support", "channel": "mail:a@b.c"}]}},
     "channel, from, name, note, role, until"),
    ({"team": {"support_standby": {"who": "Lee", "when": "2026-11-25", "wat": 1}}}, "note, when, who"),
])
def test_an_unknown_key_inside_a_list_or_table_of_sections_lists_the_keys_there(data: dict, known: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.hint == f"known keys here: {known}"
