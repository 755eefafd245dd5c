"""Step 4: stop the backend, let its connections drain, start it, wait until ``/health`` answers.

The runbook says "wait 30 seconds for connections to drain" and "sleep 10" before
checking health.  Here each wait watches the thing it waits for: the app's
backends in ``pg_stat_activity`` (by role / application_name) until none is
left, then ``/health`` until it reports the expected state, each with a deadline
from ``[thresholds]`` and a timeout error carrying the evidence.  With only a
``restart_command`` (``docker compose restart backend``) there is no moment
between stop and start to observe, so the drain is not checked and the record
says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.base import ActionError, ActionResult, Deadline, config_path, recorded, require
from pytest_cutover.actions.commands import CommandResult, file_tail, run_command
from pytest_cutover.actions.envfile import find_line
from pytest_cutover.actions.health import (
    HEALTHY,
    MAINTENANCE,
    UP,
    HealthObservation,
    http_client,
    probe_health,
    wait_for_health,
)
from pytest_cutover.actions.pg import ConnectionCount, app_connections, endpoint
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import Secret

if TYPE_CHECKING:
    from pytest_cutover.context import RunContext

__all__ = ["EXPECT", "ConnectionCounter", "Restarter", "default_connection_counter", "restart_app"]

ConnectionCounter = Callable[[], ConnectionCount]
EXPECT: dict[str, frozenset[str]] = {HEALTHY: frozenset({HEALTHY}), MAINTENANCE: frozenset({MAINTENANCE}),
                                     "up": UP}
_DRAIN_POLL_S = 0.5


def default_connection_counter(ctx: RunContext) -> tuple[ConnectionCounter | None, str]:
    """Count the app's connections on the database it is connected to now, or say why that cannot be watched.

    The app's ``DATABASE_URL`` (read from its ``.env``) decides which database:
    the old one (``[source] database_url``) before the switch, the target
    (``[target] database_url``) after it.  Through a transaction pooler the
    pooler keeps idle server connections, so only busy backends count there.
    """
    cfg = ctx.config
    if cfg is None:
        return None, "no config"
    app_url: str | None = None
    if cfg.app.env_file:
        line = find_line(config_path(ctx, cfg.app.env_file), "DATABASE_URL")
        app_url = line.value if line else None
    if app_url is None and cfg.target.app_database_url:
        app_url = cfg.target.app_database_url.get()
    if app_url is None:
        return None, "the app's DATABASE_URL is unknown (no [app] env_file line and no target.app_database_url)"
    Secret(app_url)
    app_ep = endpoint(app_url)
    watch: Secret | None
    if cfg.source.database_url and endpoint(cfg.source.database_url).same_place(app_ep):
        watch, where = cfg.source.database_url, "source.database_url"
    else:
        watch, where = cfg.target.database_url, "target.database_url"
    if watch is None:
        return None, f"{where} is not configured"
    role = cfg.app.db_role or app_ep.user or None
    busy_only = not endpoint(watch).same_place(app_ep)
    timeout = cfg.thresholds.connect_timeout_s

    def count() -> ConnectionCount:
        return app_connections(watch, role=role, application_name=cfg.app.db_application_name,
                               busy_only=busy_only, timeout=timeout)

    scope = "busy backends (pooled idle server connections ignored)" if busy_only else "backends"
    return count, f"{scope} of role {role or '*'} on {where} {endpoint(watch)}"


class Restarter:
    """Restart the app by its configured commands and verify it comes back; one ``restart`` action record."""

    def __init__(self, ctx: RunContext, *, counter: ConnectionCounter | None = None,
                 timeout_s: float | None = None) -> None:
        self.ctx = ctx
        cfg = ctx.config
        self.health_url: str = require(ctx, "app.health_url", "verify the app after a restart")
        self.thresholds = cfg.thresholds if cfg is not None else None
        self.drain_timeout = self.thresholds.drain_timeout_s if self.thresholds else 60.0
        self.health_timeout = self.thresholds.health_timeout_s if self.thresholds else 120.0
        self.command_timeout = self.health_timeout
        self.timeout_s = timeout_s or (self.drain_timeout + 3 * self.health_timeout)
        self._counter = counter
        app = cfg.app if cfg is not None else None
        self.stop_command = app.stop_command if app else None
        self.start_command = app.start_command if app else None
        self.restart_command = app.restart_command if app else None
        self.log_file = config_path(ctx, app.log_file) if app and app.log_file else None
        if not (self.stop_command and self.start_command) and not self.restart_command:
            raise ConfigError("missing config keys app.stop_command and app.start_command (or app.restart_command) "
                              "needed to restart the app", hint="set both [app] stop_command and start_command "
                              "(so the drain can be observed), or [app] restart_command")

    def restart(self, expect: str = HEALTHY, *, keep_maintenance: bool = True) -> ActionResult:
        """Stop, drain, start, wait for ``/health`` in state ``expect`` (``healthy``, ``maintenance`` or ``up``).

        With ``keep_maintenance`` (the default), an app that was in maintenance before the restart must be in
        maintenance after it: a restart inside the maintenance window must not let users in.  A flag the
        restart lost (an endpoint flag kept in the app's memory) is set again; the app then reports
        maintenance whatever ``expect`` said.
        """
        if expect not in EXPECT:
            raise ConfigError(f"unknown health expectation {expect!r}", hint="use healthy, maintenance or up")
        deadline = Deadline(self.timeout_s, "restart")
        steps: list[dict[str, Any]] = []
        with http_client(self.ctx.config) as client:
            before = probe_health(client, self.health_url)
            keep = keep_maintenance and before.state == MAINTENANCE
            with recorded(self.ctx, "restart", before={"health": before.state, "evidence": before.evidence()}) as rec:
                try:
                    if self.stop_command and self.start_command:
                        steps.append(self._command("stop", self.stop_command, deadline))
                        steps.append(self._drain(deadline))
                        steps.append(self._command("start", self.start_command, deadline))
                    else:
                        assert self.restart_command is not None
                        steps.append(self._command("restart", self.restart_command, deadline))
                        steps.append({"step": "drain", "ok": True, "detail": "not observed: only a restart_command "
                                      "is configured, so there is no moment between stop and start"})
                    observed = self._health(client, "up" if keep else expect, deadline)
                    steps.append({"step": "health", "ok": True, "detail": observed.evidence()})
                    if keep and observed.state != MAINTENANCE:
                        steps.append(self._maintenance_again())
                        observed = probe_health(client, self.health_url)
                finally:
                    rec.after = {"steps": steps}
                rec.after["health"] = observed.state
                rec.detail = "; ".join(f"{s['step']}: {s['detail']}" for s in steps)
        return rec.outcome()

    def _maintenance_again(self) -> dict[str, Any]:
        """The app was in maintenance before the restart and came back without it: set it again."""
        from pytest_cutover.actions.maintenance import Maintenance

        method = self.ctx.config.app.maintenance if self.ctx.config is not None else None
        if method not in ("endpoint", "file"):
            raise self._fail("maintenance", "the app was in maintenance before the restart but came back serving "
                             f"(maintenance method {method or 'not configured'})",
                             hint="enable maintenance now (`cutover action maintenance on`); with the env method the "
                                  "app ignored MAINTENANCE_MODE in its .env")
        try:
            result = Maintenance(self.ctx, counter=self._counter).enable()
        except ActionError as exc:
            raise self._fail("maintenance", f"maintenance was lost in the restart and could not be set again: "
                             f"{exc.message}", hint=exc.hint or "enable maintenance by hand now") from None
        return {"step": "maintenance", "ok": True,
                "detail": f"lost in the restart, set again via {method}: {result.detail}"}

    def _fail(self, step: str, message: str, hint: str, output: CommandResult | None = None) -> ActionError:
        parts = [f"restart step '{step}' failed: {message}"]
        if output is not None:
            parts.append(f"last output lines of `{output.command}`:\n{output.tail() or '(no output)'}")
        parts.append(f"last lines of the app log {self.log_file or ''}:\n{file_tail(self.log_file)}")
        return ActionError("\n".join(parts), hint=hint, step=step)

    def _command(self, step: str, command: str, deadline: Deadline) -> dict[str, Any]:
        timeout = min(self.command_timeout, deadline.remaining())
        result = run_command(command, timeout=timeout, cwd=self._cwd())
        if result.timed_out:
            raise self._fail(step, f"`{result.command}` did not finish within {timeout:.1f} s (killed)",
                             hint=f"run `{result.command}` by hand to see why it hangs", output=result)
        if not result.ok:
            raise self._fail(step, f"`{result.command}` exited {result.returncode}",
                             hint=f"fix what `{result.command}` reports, then run `cutover action restart` again",
                             output=result)
        return {"step": step, "ok": True, "detail": f"`{result.command}` exited 0 in {result.duration_s:.1f} s"}

    def _cwd(self) -> str | None:
        cfg = self.ctx.config
        if cfg is not None and cfg.app.source_dir:
            path = config_path(self.ctx, cfg.app.source_dir)
            return str(path) if path.is_dir() else None
        return None

    def _drain(self, deadline: Deadline) -> dict[str, Any]:
        if self._counter is not None:
            counter, scope = self._counter, "app connections (configured counter)"
        else:
            counter, scope = default_connection_counter(self.ctx)
        if counter is None:
            return {"step": "drain", "ok": True, "detail": f"not observed: {scope}"}
        drain = deadline.sub(self.drain_timeout, "drain")
        polls = 0
        while True:
            try:
                observed = counter()
            except ActionError as exc:
                raise self._fail("drain", f"cannot count the app's connections ({scope}): {exc.message}",
                                 hint=exc.hint or "check the database URL used to watch the drain") from None
            polls += 1
            if observed.count == 0:
                return {"step": "drain", "ok": True,
                        "detail": f"0 {scope} after {drain.elapsed():.1f} s ({polls} polls)"}
            if drain.expired():
                raise self._fail("drain", f"{observed.count} {scope} still open after {drain.elapsed():.1f} s "
                                 f"({polls} polls): {observed.evidence}",
                                 hint="is the app really stopped? check the stop command and for other instances "
                                      "of the app; raise thresholds.drain_timeout_s only if they are finishing work")
            time.sleep(min(_DRAIN_POLL_S, drain.remaining()))

    def _health(self, client: Any, expect: str, deadline: Deadline) -> HealthObservation:
        wait = deadline.sub(self.health_timeout, "health")
        try:
            return wait_for_health(client, self.health_url, EXPECT[expect], wait, what="the app did not come back",
                                   hint="read the app log lines above; check the new DATABASE_URL and that the app "
                                        "starts by hand", step="health")
        except ActionError as exc:
            raise self._fail("health", exc.message, hint=exc.hint or "", output=None) from None


def restart_app(ctx: RunContext, *, expect: str = HEALTHY, counter: ConnectionCounter | None = None) -> ActionResult:
    """Convenience: ``Restarter(ctx).restart(expect)``."""
    return Restarter(ctx, counter=counter).restart(expect)
