"""Maintenance on/off by each method, verified through the app's /health over verified TLS."""

from __future__ import annotations

import re
import time

import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.health import http_client, probe_health
from pytest_cutover.actions.maintenance import Maintenance
from pytest_cutover.actions.pg import ConnectionCount

from .action_helpers import ADMIN_TOKEN, FakeBackend


def _actions(backend: FakeBackend) -> list[tuple[str, bool]]:
    return [(r["action"], r["ok"]) for r in backend.ledger() if r["kind"] == "action"]


def test_endpoint_method_on_and_off_is_verified_by_health(backend: FakeBackend) -> None:
    backend.start()
    m = Maintenance(backend.ctx())
    assert m.status().health.state == "healthy"

    on = m.enable()
    assert backend.health() == "maintenance"
    assert on.before["health"] == "healthy" and on.after["health"] == "maintenance"
    assert "POST https://127.0.0.1" in on.detail and "/admin/maintenance/enable -> HTTP 200" in on.detail
    assert "HTTP 503" in on.detail
    assert m.status().on

    off = m.disable()
    assert backend.health() == "healthy"
    assert off.after["health"] == "healthy" and '{"status":"healthy"}' in off.detail
    assert _actions(backend) == [("maintenance-on", True), ("maintenance-off", True)]
    assert ADMIN_TOKEN not in backend.ctx().ledger.path.read_text()


def test_a_maintenance_flag_the_app_ignores_is_a_failure_with_evidence(backend: FakeBackend) -> None:
    backend.env["IGNORE_MAINTENANCE"] = "true"
    backend.sections["thresholds"]["maintenance_verify_s"] = 0.6
    backend.write()
    backend.start()
    started = time.monotonic()
    with pytest.raises(ActionError) as info:
        Maintenance(backend.ctx()).enable()
    assert time.monotonic() - started < 10
    message = str(info.value)
    waited = re.search(r"maintenance was enabled via endpoint but /health still says healthy after ([0-9.]+) s",
                       message)
    assert waited is not None and 0.6 <= float(waited.group(1)) < 5, message  # [thresholds] maintenance_verify_s
    assert 'HTTP 200 {"status":"healthy"}' in message
    assert "the app ignores the endpoint maintenance flag" in (info.value.hint or "")
    assert info.value.step == "verify"
    (record,) = [r for r in backend.ledger() if r["kind"] == "action"]
    assert record["ok"] is False and record["after"]["health"] == "healthy"


def test_a_refused_admin_token_is_named(backend: FakeBackend) -> None:
    backend.sections["app"]["admin_token"] = "wrong-token-123"
    backend.write()
    backend.start()
    with pytest.raises(ActionError, match=r"refused with HTTP 401: the admin token is not accepted"):
        Maintenance(backend.ctx()).enable()
    assert backend.health() == "healthy"


def test_file_method_creates_and_removes_the_flag(backend: FakeBackend) -> None:
    flag = backend.app_dir / "maintenance.flag"
    backend.env["MAINTENANCE_FILE"] = str(flag)
    backend.sections["app"]["maintenance"] = "file"
    backend.write()
    backend.start()
    m = Maintenance(backend.ctx())
    on = m.enable()
    assert flag.exists() and backend.health() == "maintenance"
    assert on.before["flag"] is False and on.after["flag"] is True
    m.disable()
    assert not flag.exists() and backend.health() == "healthy"


def test_env_method_edits_the_env_file_and_restarts(backend: FakeBackend) -> None:
    backend.sections["app"]["maintenance"] = "env"
    backend.write()
    backend.start()
    pid_before = (backend.app_dir / "app.pid").read_text()
    other_lines = [line for line in backend.env_file.read_text().splitlines() if "MAINTENANCE_MODE" not in line]

    # No database in this test: the drain is watched through a counter that reports zero connections
    # (the real pg_stat_activity drain is tested against PostgreSQL in test_action_restart.py).
    m = Maintenance(backend.ctx(), counter=lambda: ConnectionCount(0, "none"))
    on = m.enable()
    assert "MAINTENANCE_MODE=true" in backend.env_file.read_text()
    assert (backend.app_dir / "app.pid").read_text() != pid_before, "the env method must restart the app"
    assert backend.health() == "maintenance" and on.after == {**on.after, "flag": True, "health": "maintenance"}
    assert "restarted in" in on.detail

    m.disable()
    assert "MAINTENANCE_MODE=false" in backend.env_file.read_text()
    assert backend.health() == "healthy"
    assert [line for line in backend.env_file.read_text().splitlines() if "MAINTENANCE_MODE" not in line] \
        == other_lines
    assert _actions(backend) == [("restart", True), ("maintenance-on", True), ("restart", True),
                                 ("maintenance-off", True)]


def test_health_is_verified_with_the_configured_ca(backend: FakeBackend) -> None:
    backend.start()
    without_ca = backend.config().model_copy(update={"app": backend.config().app.model_copy(
        update={"ca_file": None})})
    with http_client(without_ca) as client:
        observed = probe_health(client, f"https://127.0.0.1:{backend.port}/health")
    assert observed.state == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in (observed.error or "")
