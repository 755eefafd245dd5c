"""``cutover action NAME`` in-process through click's CliRunner, plus one run of the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.errors import ConfigError

from .action_helpers import ADMIN_TOKEN, HERE, FakeBackend


def _invoke(backend: FakeBackend, *args: str):  # type: ignore[no-untyped-def]
    base = ["--config", str(backend.config_path), "--reports-dir", str(backend.reports), "--run", "t1"]
    return CliRunner().invoke(cli, ["action", *args, *base], standalone_mode=False, catch_exceptions=True)


def test_maintenance_on_status_off(backend: FakeBackend) -> None:
    backend.start()
    on = _invoke(backend, "maintenance", "on")
    assert on.return_value == 0, on.output
    assert on.output.startswith("maintenance-on: ok in ") and "HTTP 503" in on.output
    status = _invoke(backend, "maintenance", "status", "--json")
    assert status.return_value == 0 and json.loads(status.output)["health"] == "maintenance"
    off = _invoke(backend, "maintenance", "off")
    assert off.return_value == 0 and "maintenance-off: ok" in off.output
    assert backend.health() == "healthy"
    assert ADMIN_TOKEN not in on.output + status.output + off.output


def test_a_missing_config_key_is_a_config_error(backend: FakeBackend) -> None:
    del backend.sections["app"]["maintenance"]
    backend.write()
    result = _invoke(backend, "maintenance", "on")
    assert isinstance(result.exception, ConfigError)
    assert "missing config key app.maintenance" in str(result.exception)


def test_restart_with_a_restart_command_waiting_for_up(backend: FakeBackend) -> None:
    ctl = f"{sys.executable} {HERE / 'appctl.py'}"
    backend.sections["app"].update(stop_command=None, start_command=None,
                                   restart_command=f"{ctl} stop {backend.app_dir} && {ctl} start {backend.app_dir}")
    refused = "postgresql://app_user:pw@127.0.0.1:9/dac"  # nothing listens on the discard port: refused at once
    backend.sections["source"]["database_url"] = refused
    backend.sections["target"]["database_url"] = refused.replace("/dac", "/postgres")
    backend.write()
    backend.start()
    result = _invoke(backend, "restart", "--expect", "up", "--json")
    assert result.return_value == 0, result.output
    payload = json.loads(result.output)
    assert payload["action"] == "restart" and payload["ok"] is True
    assert [s["step"] for s in payload["after"]["steps"]] == ["restart", "drain", "health", "database"]
    assert payload["after"]["steps"][1]["detail"].startswith("not observed: only a restart_command is configured")
    assert payload["after"]["database"] == "unknown"
    assert backend.health() == "healthy"


def test_rollback_json_names_the_failed_step(backend: FakeBackend) -> None:
    backend.start()
    result = _invoke(backend, "rollback", "--json")
    assert result.return_value == 1
    payload = json.loads(result.output)
    assert payload["ok"] is False and payload["failed_step"] == "restore-database-url"
    assert [s["step"] for s in payload["steps"]] == ["maintenance-on", "restore-database-url"]
    assert backend.health() == "maintenance"


def test_installed_script_lists_the_actions() -> None:
    exe = shutil.which("cutover")
    argv = [exe] if exe else [sys.executable, "-m", "pytest_cutover"]
    done = subprocess.run([*argv, "action", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for name in ("maintenance", "env-switch", "env-restore", "restart", "rollback"):
        assert name in done.stdout


@pytest.mark.parametrize("module", ["base", "commands", "env_switch", "envfile", "health", "maintenance", "pg",
                                    "restart", "rollback"])
def test_public_names_are_sorted_and_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"pytest_cutover.actions.{module}")
    def isort_key(name: str) -> tuple[int, str]:  # constants, then classes, then functions (ruff RUF022)
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(mod.__all__) == sorted(mod.__all__, key=isort_key)
    assert all(hasattr(mod, name) for name in mod.__all__)
