"""Step 4: stop the backend, let its connections drain, start it, wait until ``/health`` answers.

The runbook says "wait 30 seconds for connections to drain" and "sleep 10" before
checking health.  Here each wait watches the thing it waits for: the app's
backends in ``pg_stat_activity`` (by role / application_name) until none is
left, then ``/health`` until it reports the expected state, each with a deadline
from ``[thresholds]`` and a timeout error carrying the evidence.  With only a
``restart_command`` (``docker compose restart backend``) there is no moment
between stop and start to observe, so the drain is not checked and the record
says so.  Afterwards the record says which database the new instance has used
since its start (``source``, ``target``, ``both`` or ``unknown``), from the same
``pg_stat_activity`` views: the evidence that the ``.env`` edit took effect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
from pytest_cutover.actions.pg import ConnectionCount, app_connections, endpoint, recent_backends
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import Secret
from pytest_cutover.util.wait import wait_until

if TYPE_CHECKING:
    from pytest_cutover.context import RunContext

__all__ = ["EXPECT", "ConnectionCounter", "Restarter", "Watch", "WatchCounter", "app_watches",
           "default_connection_counter"]

ConnectionCounter = Callable[[], ConnectionCount]
EXPECT: dict[str, frozenset[str]] = {HEALTHY: frozenset({HEALTHY}), MAINTENANCE: frozenset({MAINTENANCE}),
                                     "up": UP}
_DRAIN_POLL_S = 0.5


def _app_urls(ctx: RunContext) -> tuple[str | None, str | None]:
    """The app's ``DATABASE_URL`` for the old database and for the target, as far as they are known.

    Old: the switch's backup (``previous``) if there is one, else the ``.env`` value when it does not
    point at the target.  New: ``[target] app_database_url``, else the ``.env`` value when it does.
    """
    from pytest_cutover.actions.env_switch import backup_path, load_backup

    cfg = ctx.config
    assert cfg is not None
    current: str | None = None
    if cfg.app.env_file:
        path = config_path(ctx, cfg.app.env_file)
        line = find_line(path, "DATABASE_URL") if path.exists() else None
        current = line.value if line else None
    new = cfg.target.app_database_url.get() if cfg.target.app_database_url else None
    on_target = bool(current and new and endpoint(current).same_place(endpoint(new)))
    old = load_backup(ctx).previous.get() if backup_path(ctx).exists() else None
    if old is None and current and not on_target:
        old = current
    if new is None and on_target:
        new = current
    for url in (old, new):
        if url:
            Secret(url)
    return old, new


@dataclass(frozen=True)
class Watch:
    """One database the app may hold connections on, and how its backends are recognised there."""

    label: str
    url: Secret
    role: str | None
    pooled: bool

    def describe(self) -> str:
        kind = "busy backends" if self.pooled else "backends"
        return f"{kind} of role {self.role or '*'} on {self.label} {endpoint(self.url)}"


def _server_role(user: str, pooled: bool) -> str:
    """The role a pooled login becomes on the server: Supavisor logins are ``<role>.<project_ref>``."""
    return user.split(".", 1)[0] if pooled and "." in user else user


def app_watches(ctx: RunContext) -> tuple[list[Watch], str]:
    """The databases to watch for the app's backends (old and target), or why none can be watched.

    Both are watched: during a switch or a rollback the ``.env`` already names the database the app
    will use next, not the one the running app is connected to.  The old database is watched through
    ``[source] database_url`` for the role in the app's old URL, the target through ``[target]
    database_url`` for the role in ``app_database_url`` (``[app] db_role`` overrides both).  Where the
    app reaches a database through a pooler (its URL is not the watching URL's server), the pooler keeps
    idle server connections after the app has gone, so only busy backends count there.
    """
    cfg = ctx.config
    if cfg is None:
        return [], "no config"
    old, new = _app_urls(ctx)
    watches: list[Watch] = []
    for label, watch, app_url in (("source.database_url", cfg.source.database_url, old),
                                  ("target.database_url", cfg.target.database_url, new)):
        if watch is None or app_url is None:
            continue
        pooled = not endpoint(watch).same_place(endpoint(app_url))
        role = cfg.app.db_role or _server_role(endpoint(app_url).user, pooled) or None
        watches.append(Watch(label, watch, role, pooled))
    if not watches:
        return [], ("neither the old nor the target database can be watched (need [source] database_url with "
                    "the app's old DATABASE_URL, or [target] database_url with target.app_database_url)")
    return watches, " and ".join(w.describe() for w in watches)


class WatchCounter:
    """The default :data:`ConnectionCounter`: the app's backends summed over its watched databases.

    It also remembers each database's own clock at the last count, so that the restart can ask which
    database the new instance talks to (:func:`~pytest_cutover.actions.pg.recent_backends`).
    """

    def __init__(self, ctx: RunContext, watches: list[Watch]) -> None:
        cfg = ctx.config
        assert cfg is not None
        self.watches = watches
        self.application_name = cfg.app.db_application_name
        self.timeout = cfg.thresholds.connect_timeout_s
        self.last_now: dict[str, datetime] = {}
        self.unreachable: dict[str, str] = {}

    def __call__(self) -> ConnectionCount:
        total, parts, reached = 0, [], 0
        for w in self.watches:
            if w.label in self.unreachable:  # asked once per restart: connect timeouts add up otherwise
                parts.append(f"{w.label}: not reachable, not watched ({self.unreachable[w.label]})")
                continue
            try:
                seen = app_connections(w.url, role=w.role, application_name=self.application_name,
                                       busy_only=w.pooled, timeout=self.timeout)
            except ActionError as exc:
                # A database we cannot reach holds no connection of the app we could wait for (a rollback
                # is often run because the target is down); say so instead of failing the restart.
                self.unreachable[w.label] = exc.message
                parts.append(f"{w.label}: not reachable, not watched ({exc.message})")
                continue
            reached += 1
            total += seen.count
            if seen.server_now is not None:
                self.last_now[w.label] = seen.server_now
            parts.append(f"{w.label}: {seen.evidence}")
        if not reached:
            raise ActionError("no database could be reached to watch the drain: " + "; ".join(parts),
                              hint="check [source] database_url and [target] database_url")
        return ConnectionCount(total, "; ".join(parts))

    def database_in_use(self) -> tuple[str, str]:
        """Which database the app has used since the last count: source, target, both or unknown."""
        recent: dict[str, int | None] = {}
        parts = []
        for w in self.watches:
            since = self.last_now.get(w.label)
            if since is None or not w.role or w.label in self.unreachable:
                recent[w.label], note = None, "not watched"
            else:
                try:
                    recent[w.label], note = recent_backends(w.url, role=w.role, since=since, timeout=self.timeout)
                except ActionError as exc:
                    recent[w.label], note = None, f"not reachable ({exc.message})"
            parts.append(f"{w.label}: {note}")
        old, new = recent.get("source.database_url"), recent.get("target.database_url")
        verdict = ("both" if old and new else "source" if old else "target" if new else "unknown")
        return verdict, "; ".join(parts)


def default_connection_counter(ctx: RunContext) -> tuple[WatchCounter | None, str]:
    """A :class:`WatchCounter` over :func:`app_watches`, or ``None`` and the reason nothing can be watched."""
    watches, scope = app_watches(ctx)
    return (WatchCounter(ctx, watches) if watches else None), scope


class Restarter:
    """Restart the app by its configured commands and verify it comes back; one ``restart`` action record."""

    def __init__(self, ctx: RunContext, *, counter: ConnectionCounter | None = None,
                 timeout_s: float | None = None, reassert: Callable[[], ActionResult] | None = None) -> None:
        self.ctx = ctx
        # How to set maintenance again when the restart lost it: given by the caller (see
        # actions.maintenance.restarter), since maintenance, whose env method is a restart, sits above this module.
        self._reassert = reassert
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

    def restart(self, expect: str = HEALTHY, *, keep_maintenance: bool = True,
                expect_database: str | None = None) -> ActionResult:
        """Stop, drain, start, wait for ``/health`` in state ``expect`` (``healthy``, ``maintenance`` or ``up``).

        With ``keep_maintenance`` (the default), an app that was in maintenance before the restart must be in
        maintenance after it: a restart inside the maintenance window must not let users in.  A flag the
        restart lost (an endpoint flag kept in the app's memory) is set again by ``reassert`` (see
        :func:`pytest_cutover.actions.maintenance.restarter`; without it the restart fails and says so); the
        app then reports maintenance whatever ``expect`` said.

        With the default watches, the record says which database the new instance has used since its start
        (``after["database"]``: ``source``, ``target``, ``both`` or ``unknown``).  ``expect_database``
        (``source`` or ``target``) fails the restart when the evidence says the other one: an ``.env``
        edit that did not take effect (the app reads another file, or the process environment wins).
        """
        if expect_database not in (None, "source", "target"):
            raise ConfigError(f"unknown database expectation {expect_database!r}", hint="use source or target")
        if expect not in EXPECT:
            raise ConfigError(f"unknown health expectation {expect!r}", hint="use healthy, maintenance or up")
        deadline = Deadline(self.timeout_s, "restart")
        steps: list[dict[str, Any]] = []
        with http_client(self.ctx.config) as client:
            before = probe_health(client, self.health_url)
            keep = keep_maintenance and before.state == MAINTENANCE
            with recorded(self.ctx, "restart", before={"health": before.state, "evidence": before.evidence()}) as rec:
                try:
                    counter, scope = self._counter_and_scope()
                    if self.stop_command and self.start_command:
                        steps.append(self._command("stop", self.stop_command, deadline))
                        steps.append(self._drain(counter, scope, deadline))
                        steps.append(self._command("start", self.start_command, deadline))
                    else:
                        assert self.restart_command is not None
                        if isinstance(counter, WatchCounter):
                            self._count_quietly(counter)  # the databases' clocks before the restart
                        steps.append(self._command("restart", self.restart_command, deadline))
                        steps.append({"step": "drain", "ok": True, "detail": "not observed: only a restart_command "
                                      "is configured, so there is no moment between stop and start"})
                    observed = self._health(client, "up" if keep else expect, deadline)
                    steps.append({"step": "health", "ok": True, "detail": observed.evidence()})
                    if keep and observed.state != MAINTENANCE:
                        steps.append(self._maintenance_again())
                        observed = probe_health(client, self.health_url)
                    database = "unknown"
                    if isinstance(counter, WatchCounter):
                        database, evidence = counter.database_in_use()
                        other = {"source": "target", "target": "source"}.get(expect_database or "")
                        if other is not None and database == other:
                            raise self._fail("database", f"the app has used the {database} database since the start, "
                                             f"not the {expect_database} one ({evidence}): the DATABASE_URL edit "
                                             "did not take effect", hint="check that the app reads [app] env_file "
                                             "and that DATABASE_URL is not also set in its process environment")
                        steps.append({"step": "database", "ok": True,
                                      "detail": f"the app has used {database} since the start ({evidence})"})
                finally:
                    rec.after = {"steps": steps}
                rec.after["health"] = observed.state
                rec.after["database"] = database
                rec.detail = "; ".join(f"{s['step']}: {s['detail']}" for s in steps)
        return rec.outcome()

    def _maintenance_again(self) -> dict[str, Any]:
        """The app was in maintenance before the restart and came back without it: set it again."""
        method = self.ctx.config.app.maintenance if self.ctx.config is not None else None
        if method not in ("endpoint", "file"):
            raise self._fail("maintenance", "the app was in maintenance before the restart but came back serving "
                             f"(maintenance method {method or 'not configured'})",
                             hint="enable maintenance now (`cutover action maintenance on`); with the env method the "
                                  "app ignored MAINTENANCE_MODE in its .env")
        if self._reassert is None:
            raise self._fail("maintenance", "the app was in maintenance before the restart but came back serving, "
                             "and this restart was not told how to set it again",
                             hint="enable maintenance now (`cutover action maintenance on`); restart with "
                                  "pytest_cutover.actions.maintenance.restarter(ctx) to have it set again")
        try:
            result = self._reassert()
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
        if result.returncode is None:
            raise self._fail(step, f"`{result.command}` could not be started: {result.output}",
                             hint=f"check [app] {step}_command (is the program installed and on PATH?)")
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

    def _counter_and_scope(self) -> tuple[ConnectionCounter | None, str]:
        if self._counter is not None:
            return self._counter, "app connections (configured counter)"
        return default_connection_counter(self.ctx)

    @staticmethod
    def _count_quietly(counter: WatchCounter) -> None:
        with contextlib.suppress(ActionError):
            counter()

    def _drain(self, counter: ConnectionCounter | None, scope: str, deadline: Deadline) -> dict[str, Any]:
        if counter is None:
            return {"step": "drain", "ok": True, "detail": f"not observed: {scope}"}
        drain = deadline.sub(self.drain_timeout, "drain")
        polls = 0
        observed: ConnectionCount | None = None

        def drained() -> bool:
            nonlocal polls, observed
            try:
                observed = counter()
            except ActionError as exc:
                raise self._fail("drain", f"cannot count the app's connections ({scope}): {exc.message}",
                                 hint=exc.hint or "check the database URL used to watch the drain") from None
            polls += 1
            return observed.count == 0

        done = wait_until(drained, drain.remaining(), pause=_DRAIN_POLL_S)
        assert observed is not None  # wait_until calls at least once
        if done:
            return {"step": "drain", "ok": True,
                    "detail": f"0 {scope} after {drain.elapsed():.1f} s ({polls} polls): {observed.evidence}"}
        raise self._fail("drain", f"{observed.count} {scope} still open after {drain.elapsed():.1f} s "
                         f"({polls} polls): {observed.evidence}",
                         hint="is the app really stopped? check the stop command and for other instances "
                              "of the app; raise thresholds.drain_timeout_s only if they are finishing work")

    def _health(self, client: Any, expect: str, deadline: Deadline) -> HealthObservation:
        wait = deadline.sub(self.health_timeout, "health")
        try:
            return wait_for_health(client, self.health_url, EXPECT[expect], wait, what="the app did not come back",
                                   hint="read the app log lines above; check the new DATABASE_URL and that the app "
                                        "starts by hand", step="health")
        except ActionError as exc:
            raise self._fail("health", exc.message, hint=exc.hint or "", output=None) from None

