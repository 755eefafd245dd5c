"""Steps 1 and 7: maintenance mode on and off, by the method the app supports, verified by ``/health``.

Methods (``[app] maintenance``), as in the runbook's options A/B/C:

- ``endpoint``: ``POST {api_base}/admin/maintenance/enable|disable`` with the admin
  bearer token (TLS verified with the configured CA; retried on connect errors only,
  since a request that reached the app must not be sent twice blindly);
- ``env``: ``MAINTENANCE_MODE=true|false`` in the app's ``.env`` (edited atomically),
  then a restart, because the app reads it at start;
- ``file``: create or remove ``[app] maintenance_file``.

Setting a flag proves nothing by itself: an app that ignores it keeps serving
writes during the sync.  So every change is verified by ``/health`` (maintenance:
HTTP 503 or ``{"status": "maintenance"}``; off: ``{"status": "healthy"}``), and a
flag the app ignores fails with that evidence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.base import ActionError, ActionResult, Deadline, config_path, recorded, require
from pytest_cutover.actions.envfile import atomic_write, read_value, set_value
from pytest_cutover.actions.health import (
    HEALTHY,
    MAINTENANCE,
    UNREACHABLE,
    HealthObservation,
    http_client,
    probe_health,
)
from pytest_cutover.actions.health import wait_for_health as _wait
from pytest_cutover.actions.restart import ConnectionCounter, Restarter
from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import redact

if TYPE_CHECKING:
    import httpx

    from pytest_cutover.context import RunContext

__all__ = ["ENV_KEY", "METHODS", "Maintenance", "MaintenanceStatus", "disable_maintenance", "enable_maintenance",
           "maintenance_status", "restart_app", "restarter"]

ENV_KEY = "MAINTENANCE_MODE"
METHODS = ("endpoint", "env", "file")
_QUICK_VERIFY_S = 15.0


@dataclass(frozen=True)
class MaintenanceStatus:
    """The flag as set by the method (``None`` when it cannot be read back) and what ``/health`` says."""

    method: str
    flag: bool | None
    health: HealthObservation

    @property
    def on(self) -> bool:
        return self.health.state == MAINTENANCE

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "flag": self.flag, "health": self.health.state,
                "evidence": self.health.evidence()}


class Maintenance:
    """Turn maintenance mode on/off by the configured method and verify it through ``/health``."""

    def __init__(self, ctx: RunContext, *, method: str | None = None, verify_timeout_s: float | None = None,
                 counter: ConnectionCounter | None = None) -> None:
        self.ctx = ctx
        chosen = method or require(ctx, "app.maintenance", "choose how maintenance mode is switched")
        if chosen not in METHODS:
            raise ConfigError(f"unknown maintenance method {chosen!r}", hint="use one of: " + ", ".join(METHODS))
        self.method: str = chosen
        self.health_url: str = require(ctx, "app.health_url", "verify maintenance mode through /health")
        t = ctx.config.thresholds if ctx.config is not None else None
        health_timeout = t.health_timeout_s if t is not None else 120.0
        quick = t.maintenance_verify_s if t is not None else _QUICK_VERIFY_S
        # The env method restarts the app, so it gets the full health timeout; the others act at once.
        self.verify_timeout_s = verify_timeout_s or (health_timeout if self.method == "env" else quick)
        self._counter = counter

    # -- the three methods -------------------------------------------------------------------------------
    def _flag(self) -> bool | None:
        cfg = self.ctx.config
        assert cfg is not None
        if self.method == "file":
            return self._file().exists()
        if self.method == "env":
            value = read_value(config_path(self.ctx, require(self.ctx, "app.env_file", "set MAINTENANCE_MODE")),
                               ENV_KEY)
            return None if value is None else value.strip().lower() in ("1", "true", "yes", "on")
        return None  # the endpoint's state lives inside the app: only /health tells

    def _set_budget(self) -> float:
        """Seconds allowed for setting the flag: a whole restart for the env method."""
        if self.method != "env":
            return 30.0
        t = self.ctx.config.thresholds if self.ctx.config is not None else None
        return (t.drain_timeout_s + 3 * t.health_timeout_s) if t is not None else 420.0

    def _file(self) -> Path:
        return config_path(self.ctx, require(self.ctx, "app.maintenance_file", "use the file maintenance method"))

    def _set(self, on: bool, client: httpx.Client, deadline: Deadline) -> str:
        if self.method in ("file", "env"):
            what = self.set_flag(on)
            if self.method == "file":
                return what
            restarter = Restarter(self.ctx, counter=self._counter, timeout_s=deadline.remaining())
            # "up", not the wanted state: if the app ignores the flag, the verify step below says so plainly.
            result = restarter.restart(expect="up", keep_maintenance=False)
            return f"{what}; restarted in {result.duration_s:.1f} s"
        return self._post(on, client, deadline)

    def set_flag(self, on: bool) -> str:
        """Set the env or file flag without restarting or verifying (the rollback restarts the app itself).

        The endpoint method has no flag outside the running app: :class:`ActionError`.
        """
        if self.method == "file":
            path = self._file()
            if on:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(path, b"maintenance enabled by pytest-cutover\n", mode=0o644)
                return f"created {path}"
            try:
                os.unlink(path)
            except FileNotFoundError:
                return f"{path} was already absent"
            return f"removed {path}"
        if self.method == "env":
            env_file = config_path(self.ctx, require(self.ctx, "app.env_file", "set MAINTENANCE_MODE"))
            value = "true" if on else "false"
            previous, changed = set_value(env_file, ENV_KEY, value, append_if_missing=True)
            if not changed:
                return f"{ENV_KEY} was already {previous} in {env_file}"
            return f"set {ENV_KEY}={value} in {env_file}"
        raise ActionError("the endpoint maintenance method keeps its flag inside the running app: it cannot be set "
                          "while the app is down", hint="start the app, then enable maintenance")

    def _post(self, on: bool, client: httpx.Client, deadline: Deadline) -> str:
        import httpx
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay, wait_exponential

        base = require(self.ctx, "app.api_base", "call the maintenance endpoint").rstrip("/")
        token = require(self.ctx, "app.admin_token", "authorise the maintenance endpoint")
        url = f"{base}/admin/maintenance/{'enable' if on else 'disable'}"
        headers = {"Authorization": f"Bearer {token.get()}"}
        try:
            for attempt in Retrying(retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout)),
                                    stop=stop_after_attempt(5) | stop_after_delay(min(10.0, deadline.remaining())),
                                    wait=wait_exponential(multiplier=0.2, max=2.0), reraise=True):
                with attempt:
                    response = client.post(url, headers=headers, timeout=min(10.0, max(1.0, deadline.remaining())))
        except httpx.HTTPError as exc:
            raise ActionError(f"POST {url} failed: {exc.__class__.__name__}: {redact(exc)}",
                              hint="check [app] api_base, that the app is up, and [app] ca_file for TLS") from exc
        if response.status_code in (401, 403):
            raise ActionError(f"POST {url} was refused with HTTP {response.status_code}: the admin token is not "
                              "accepted", hint="check [app] admin_token (ADMIN_TOKEN in the app's .env)")
        if not response.is_success:
            raise ActionError(f"POST {url} answered HTTP {response.status_code}: {redact(response.text[:200])}",
                              hint="read the app log; the maintenance endpoint itself failed")
        return f"POST {url} -> HTTP {response.status_code}"

    # -- public API -------------------------------------------------------------------------------------
    def status(self) -> MaintenanceStatus:
        """The flag and ``/health`` now (no change made, nothing recorded)."""
        with http_client(self.ctx.config) as client:
            return MaintenanceStatus(self.method, self._flag(), probe_health(client, self.health_url))

    def enable(self) -> ActionResult:
        """Maintenance on, verified: ``/health`` must report maintenance within the deadline."""
        return self._switch(True)

    def disable(self) -> ActionResult:
        """Maintenance off, verified: ``/health`` must report healthy within the deadline."""
        return self._switch(False)

    def _switch(self, on: bool) -> ActionResult:
        action = "maintenance-on" if on else "maintenance-off"
        verb = "enabled" if on else "disabled"
        deadline = Deadline(self.verify_timeout_s + self._set_budget(), action)
        with http_client(self.ctx.config) as client:
            before = MaintenanceStatus(self.method, self._flag(), probe_health(client, self.health_url))
            with recorded(self.ctx, action, before=before.as_dict()) as rec:
                how = self._set(on, client, deadline)
                want = MAINTENANCE if on else HEALTHY
                verify = Deadline(min(self.verify_timeout_s, max(deadline.remaining(), 1.0)), f"verify {action}")
                try:
                    observed = _wait(client, self.health_url, {want}, verify, what=f"maintenance was {verb} via "
                                     f"{self.method} but /health does not confirm it", hint="", step="verify")
                except ActionError as exc:
                    last = probe_health(client, self.health_url)
                    rec.after = MaintenanceStatus(self.method, self._flag(), last).as_dict()
                    if last.state == UNREACHABLE:
                        hint = "the app stopped answering: check that it runs and read its log"
                    elif on:
                        hint = (f"the app ignores the {self.method} maintenance flag: make it honour it before the "
                                "sync (users would keep writing to the old database)")
                    else:
                        hint = "the app did not leave maintenance: check the flag and the app log"
                    raise ActionError(
                        f"maintenance was {verb} via {self.method} but /health still says {last.state} after "
                        f"{verify.elapsed():.1f} s ({last.evidence()})", hint=hint, step="verify") from exc
                rec.after = MaintenanceStatus(self.method, self._flag(), observed).as_dict()
                rec.detail = f"{how}; /health: {observed.evidence()}"
        return rec.outcome()


def enable_maintenance(ctx: RunContext, **kwargs: Any) -> ActionResult:
    """``Maintenance(ctx).enable()``."""
    return Maintenance(ctx, **kwargs).enable()


def disable_maintenance(ctx: RunContext, **kwargs: Any) -> ActionResult:
    """``Maintenance(ctx).disable()``."""
    return Maintenance(ctx, **kwargs).disable()


def maintenance_status(ctx: RunContext, **kwargs: Any) -> MaintenanceStatus:
    """``Maintenance(ctx).status()``."""
    return Maintenance(ctx, **kwargs).status()


def restarter(ctx: RunContext, *, counter: ConnectionCounter | None = None,
              timeout_s: float | None = None) -> Restarter:
    """A :class:`~pytest_cutover.actions.restart.Restarter` that keeps the maintenance window: when an app that
    was in maintenance comes back serving (an endpoint flag lives in the app's memory), maintenance is set
    again by the configured method and verified.

    Why it is built here: the env method of maintenance is a restart, so this module uses the restart; the
    restart is told how to set maintenance again instead of importing this module back.
    """
    return Restarter(ctx, counter=counter, timeout_s=timeout_s,
                     reassert=lambda: Maintenance(ctx, counter=counter).enable())


def restart_app(ctx: RunContext, *, expect: str = HEALTHY, counter: ConnectionCounter | None = None,
                keep_maintenance: bool = True, expect_database: str | None = None) -> ActionResult:
    """Convenience: ``restarter(ctx).restart(expect, keep_maintenance=..., expect_database=...)``."""
    return restarter(ctx, counter=counter).restart(expect, keep_maintenance=keep_maintenance,
                                                   expect_database=expect_database)
