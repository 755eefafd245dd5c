"""Restart: stop, drain (observed in pg_stat_activity), start, wait for /health; failures name the step."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.env_switch import switch_database_url
from pytest_cutover.actions.maintenance import Maintenance, restarter
from pytest_cutover.actions.pg import ConnectionCount, app_connections
from pytest_cutover.actions.restart import Restarter, default_connection_counter

from .action_helpers import EmbeddedPg, FakeBackend

NO_DB = {"counter": lambda: ConnectionCount(0, "none")}  # tests without a database: drain reports zero


def test_restart_runs_stop_drain_start_health_and_keeps_maintenance_on(backend: FakeBackend) -> None:
    backend.start()
    pid_before = (backend.app_dir / "app.pid").read_text()
    result = Restarter(backend.ctx(), **NO_DB).restart()
    assert result.ok and result.after["health"] == "healthy"
    assert [s["step"] for s in result.after["steps"]] == ["stop", "drain", "start", "health"]
    assert (backend.app_dir / "app.pid").read_text() != pid_before
    assert backend.health() == "healthy"

    # Inside the maintenance window: the fake app keeps the endpoint flag in memory, so the restart loses it
    # and it must be set again (a restart must not let users in).
    Maintenance(backend.ctx()).enable()
    result = restarter(backend.ctx(), **NO_DB).restart()
    assert [s["step"] for s in result.after["steps"]] == ["stop", "drain", "start", "health", "maintenance"]
    assert result.after["steps"][3]["detail"] == 'HTTP 200 {"status":"healthy"}'
    assert result.after["steps"][4]["detail"].startswith("lost in the restart, set again via endpoint")
    assert result.after["health"] == "maintenance" and backend.health() == "maintenance"


def test_a_restart_not_told_how_to_set_maintenance_again_fails_instead_of_letting_users_in(
        backend: FakeBackend) -> None:
    # restart.py sits below maintenance.py (no import back): a bare Restarter cannot set the lost flag itself,
    # so it must fail loudly rather than report a serving app as a good restart inside the window.
    backend.start()
    Maintenance(backend.ctx()).enable()
    with pytest.raises(ActionError) as info:
        Restarter(backend.ctx(), **NO_DB).restart()
    assert info.value.step == "maintenance"
    assert "came back serving, and this restart was not told how to set it again" in str(info.value)
    assert "actions.maintenance.restarter(ctx)" in (info.value.hint or "")
    assert backend.health() == "healthy"  # the guard reports; it does not pretend to fix


def test_a_failing_start_command_names_the_step_with_output_and_app_log(backend: FakeBackend) -> None:
    script = backend.root / "bad_start.py"
    script.write_text("import sys\nprint('loading settings')\nprint('boom: port already in use', file=sys.stderr)\n"
                      "sys.exit(1)\n")
    backend.sections["app"]["start_command"] = f"{sys.executable} {script}"
    backend.write()
    backend.start()
    with pytest.raises(ActionError) as info:
        Restarter(backend.ctx(), **NO_DB).restart()
    message = str(info.value)
    assert info.value.step == "start"
    assert message.startswith("restart step 'start' failed: ") and "bad_start.py` exited 1" in message
    assert "loading settings" in message and "boom: port already in use" in message
    assert "last lines of the app log" in message and '"msg": "stopped"' in message
    (record,) = [r for r in backend.ledger() if r["kind"] == "action"]
    assert record["action"] == "restart" and record["ok"] is False
    assert [s["step"] for s in record["after"]["steps"]] == ["stop", "drain"]


def test_an_app_that_fails_to_start_times_out_the_health_wait_with_evidence(backend: FakeBackend) -> None:
    backend.sections["thresholds"]["health_timeout_s"] = 1.0
    backend.write()
    backend.start()
    backend.env["APP_FAILS_START"] = "true"  # the app-fails-start fault: its startup raises
    backend.write()
    started = time.monotonic()
    with pytest.raises(ActionError) as info:
        Restarter(backend.ctx(), **NO_DB).restart()
    assert time.monotonic() - started < 15
    message = str(info.value)
    assert info.value.step == "health"
    assert "restart step 'health' failed: the app did not come back:" in message
    assert "still says unreachable after" in message and "no answer (ConnectError" in message
    assert "startup failed: APP_FAILS_START is set" in message


def test_a_hanging_stop_command_is_killed_at_its_timeout(backend: FakeBackend) -> None:
    backend.sections["app"]["stop_command"] = "sleep 30"
    backend.sections["thresholds"]["health_timeout_s"] = 0.5
    backend.write()
    started = time.monotonic()
    with pytest.raises(ActionError, match=r"restart step 'stop' failed: `sleep 30` did not finish within 0.5 s"):
        Restarter(backend.ctx(), **NO_DB).restart()
    assert time.monotonic() - started < 10


def _use_database(backend: FakeBackend, pg: EmbeddedPg) -> None:
    backend.env.update(DATABASE_URL=pg.url("old_app", "app_user", "postgresql+asyncpg"), HOLD_DB_CONNECTION="true")
    backend.sections["source"]["database_url"] = pg.url("old_app")
    backend.sections["target"]["database_url"] = pg.url("target_db")
    backend.write()


@pytest.mark.integration
def test_connections_that_do_not_drain_fail_with_who_holds_them(backend: FakeBackend, embedded_pg: EmbeddedPg) -> None:
    import asyncpg

    _use_database(backend, embedded_pg)
    backend.sections["thresholds"]["drain_timeout_s"] = 0.6
    backend.write()
    backend.start()

    async def hold_and_restart() -> ActionError:
        stray = await asyncpg.connect(embedded_pg.url("old_app", "app_user"),
                                      server_settings={"application_name": "stray-worker"})
        try:
            with pytest.raises(ActionError) as info:
                await asyncio.to_thread(Restarter(backend.ctx()).restart)
            return info.value
        finally:
            await stray.close()

    error = asyncio.run(hold_and_restart())
    assert error.step == "drain"
    assert "restart step 'drain' failed: 1 backends of role app_user on source.database_url" in str(error)
    assert "still open after" in str(error) and "1 idle as app_user (stray-worker)" in str(error)


@pytest.mark.integration
def test_drain_watches_the_apps_backends_and_waits_for_late_ones(backend: FakeBackend,
                                                                  embedded_pg: EmbeddedPg) -> None:
    """The drain polls pg_stat_activity until the last backend is gone (never a fixed sleep)."""
    import asyncpg

    _use_database(backend, embedded_pg)
    backend.start()
    seen_before = app_connections(embedded_pg.url("old_app"), role="app_user")
    assert seen_before.count == 1 and "idle as app_user (fakeapp)" in seen_before.evidence
    assert app_connections(embedded_pg.url("target_db"), role="app_user").count == 0, "counted per database"

    result = Restarter(backend.ctx()).restart()
    drain = next(s for s in result.after["steps"] if s["step"] == "drain")
    assert drain["detail"].startswith("0 backends of role app_user on source.database_url")
    assert app_connections(embedded_pg.url("old_app"), role="app_user").count == 1  # the new instance

    # A worker that finishes late: the real counter sees it, and the drain waits until it has closed.
    real_counter, _ = default_connection_counter(backend.ctx())
    assert real_counter is not None
    seen: list[int] = []

    async def close_late_and_restart() -> dict:
        loop = asyncio.get_running_loop()
        stray = await asyncpg.connect(embedded_pg.url("old_app", "app_user"),
                                      server_settings={"application_name": "late-worker"})

        async def close_soon() -> None:
            await asyncio.sleep(0.5)
            await stray.close()

        def counter() -> ConnectionCount:  # the real pg_stat_activity count; the first poll starts the closer
            observed = real_counter()
            seen.append(observed.count)
            if len(seen) == 1:
                loop.call_soon_threadsafe(lambda: closers.append(asyncio.ensure_future(close_soon())))
            return observed

        closers: list[asyncio.Future] = []
        result = await asyncio.to_thread(Restarter(backend.ctx(), counter=counter).restart)
        await asyncio.gather(*closers)
        return next(s for s in result.after["steps"] if s["step"] == "drain")

    drain = asyncio.run(close_late_and_restart())
    assert seen[0] == 1 and seen[-1] == 0 and len(seen) >= 2, seen
    assert float(drain["detail"].split(" after ")[1].split(" s ")[0]) >= 0.4, drain["detail"]


@pytest.mark.integration
def test_an_env_edit_that_does_not_take_effect_is_caught(backend: FakeBackend, embedded_pg: EmbeddedPg) -> None:
    """The design's switch fault: the config names another .env than the one the app reads, so the switch edits
    a file the app ignores; after the restart the app still talks to the old database and the restart says so."""
    _use_database(backend, embedded_pg)
    decoy = backend.root / "decoy.env"
    decoy.write_bytes(backend.env_file.read_bytes())
    backend.sections["app"]["env_file"] = str(decoy)
    backend.sections["target"]["app_database_url"] = "postgresql+asyncpg://app_user:pw@127.0.0.1:6543/target_db"
    backend.write()
    backend.start()
    switch_database_url(backend.ctx())

    with pytest.raises(ActionError) as info:
        Restarter(backend.ctx()).restart(expect_database="target")

    assert info.value.step == "database"
    message = str(info.value)
    assert "the app has used the source database since the start, not the target one" in message
    assert "source.database_url: 1 of 1 backends of app_user active since the start" in message
    assert "the DATABASE_URL edit did not take effect" in message
