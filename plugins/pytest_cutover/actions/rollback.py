"""The runbook's Quick/Full rollback as ordered, recorded, verified steps.

Order (runbook "Quick Rollback" and "Full Rollback Steps"):

1. ``maintenance-on``: enable maintenance mode immediately (verified by ``/health``).  With the
   env method only the ``.env`` flag is set (it takes effect at step 3, sparing a restart on the
   configuration being rolled back); when the app is down nobody is served, so the step says so
   and the rollback goes on;
2. ``restore-database-url``: put the previous ``DATABASE_URL`` back from the switch's backup;
3. ``restart``: restart the backend; it must come back in maintenance (an endpoint flag the
   restart lost is set again), and must not be seen using the target database;
4. ``verify-old-database``: the ``.env`` holds the pre-switch value again and the old database
   (``[source] database_url``) answers with the sampled org's thread count;
5. ``keep-target-data``: the Supabase data is kept for investigation: only read, counted
   as evidence, never dropped or truncated;
6. ``maintenance-off``: the old system serves users again (``/health`` healthy);
7. ``verify-serving``: the threads API returns, for the sampled org, exactly the old
   database's count, three times in a row.

Each step appends a ``kind: "rollback"`` record ``{step, ok, detail}``.  The first
failing step stops the rollback; maintenance is left on (and turned back on if the
failure came after ``maintenance-off``), and the failure names the step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.base import ActionError, ActionResult, append_action, require
from pytest_cutover.actions.env_switch import KEY, current_database_url, load_backup, restore_database_url
from pytest_cutover.actions.health import HEALTHY, MAINTENANCE, UNREACHABLE, http_client, probe_health
from pytest_cutover.actions.maintenance import Maintenance, restarter
from pytest_cutover.actions.pg import endpoint, non_null_count, sample_org, table_counts, tenant_count
from pytest_cutover.errors import CutoverError
from pytest_cutover.redact import redact, redact_obj

if TYPE_CHECKING:
    from pytest_cutover.actions.restart import ConnectionCounter
    from pytest_cutover.context import RunContext

__all__ = ["SERVING_SAMPLES", "STEPS", "Rollback", "RollbackStep", "alert_rollback", "failed_step", "run_rollback"]

SERVING_SAMPLES = 3
STEPS: tuple[str, ...] = ("maintenance-on", "restore-database-url", "restart", "verify-old-database",
                          "keep-target-data", "maintenance-off", "verify-serving")


@dataclass(frozen=True)
class RollbackStep:
    """One step's outcome, as recorded in the ledger."""

    step: str
    ok: bool
    detail: str
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failed_step(steps: list[RollbackStep]) -> RollbackStep | None:
    """The step that stopped the rollback, or ``None`` when every step passed."""
    return next((s for s in steps if not s.ok), None)


class Rollback:
    """Run the rollback steps in order; stop at the first failure with maintenance on."""

    def __init__(self, ctx: RunContext, *, org: str | None = None, counter: ConnectionCounter | None = None) -> None:
        self.ctx = ctx
        self.org = org
        self.counter = counter
        self.expected_threads: int | None = None

    # -- steps ------------------------------------------------------------------------------------------
    def _maintenance(self) -> Maintenance:
        return Maintenance(self.ctx, counter=self.counter)

    def step_maintenance_on(self) -> str:
        m = self._maintenance()
        with http_client(self.ctx.config) as client:
            now = probe_health(client, m.health_url)
        if m.method == "env":
            # The .env flag is read at start and the restart step follows at once: setting it here spares a
            # restart on the configuration being rolled back (which may be the reason the app is down).
            return (f"{m.set_flag(True)}; takes effect at the restart step (the app now: {now.state}, "
                    f"{now.evidence()})")
        if now.state == UNREACHABLE:
            # A rollback is often needed because the app is down: nobody is served, so go on and restore.
            done = m.set_flag(True) + "; " if m.method == "file" else ""
            return (f"{done}the app is down ({now.evidence()}): nobody is served; maintenance is verified after "
                    "the restart step")
        return m.enable().detail

    def step_restore_database_url(self) -> str:
        backup = load_backup(self.ctx)
        return restore_database_url(self.ctx).detail + f" (backup saved {backup.created})"

    def step_restart(self) -> str:
        # keep_maintenance: maintenance is on since the first step and must stay on through the restart.
        result = restarter(self.ctx, counter=self.counter).restart(expect="up", keep_maintenance=True,
                                                                   expect_database="source")
        detail = result.detail
        if result.after.get("health") != MAINTENANCE:
            m = self._maintenance()
            if m.method != "endpoint":
                raise ActionError(f"after the restart /health says {result.after.get('health')} although the "
                                  f"{m.method} maintenance flag is set: the app ignores it",
                                  hint="block users another way (load balancer) before going on")
            detail += "; maintenance set after the restart: " + m.enable().detail
        return detail

    def step_verify_old_database(self) -> str:
        cfg = self.ctx.config
        assert cfg is not None
        source = require(self.ctx, "source.database_url", "verify the app is back on the old database")
        backup = load_backup(self.ctx)
        current = current_database_url(self.ctx, backup.env_file)
        if current is None or current != backup.previous:
            where = endpoint(current) if current is not None else "nothing (no line)"
            raise ActionError(f"the app's {KEY} points at {where}, not the value from before the switch "
                              f"({endpoint(backup.previous)})", hint=f"check {backup.env_file} by hand; the previous "
                              f"value is in {backup.path}")
        table, column = cfg.schema_.threads_table, cfg.schema_.tenant_column
        timeout = cfg.thresholds.connect_timeout_s
        org = self.org or sample_org(source, table, column, timeout=timeout)
        if org is None:
            raise ActionError(f"the old database has no rows in {table}: nothing to compare the app's answer with",
                              hint="pass --org ORG explicitly")
        self.org = org
        self.expected_threads = tenant_count(source, table, column, org, timeout=timeout)
        return (f"{KEY} is the value from before the switch ({endpoint(current)}); the old database "
                f"{endpoint(source)} answers with {self.expected_threads} {table} rows for {org}")

    def step_keep_target_data(self) -> str:
        cfg = self.ctx.config
        assert cfg is not None
        target = cfg.target.database_url
        if target is None:
            return "nothing touched on the target; not counted (target.database_url is not configured)"
        counts = table_counts(target, cfg.schema_.parity_tables, timeout=cfg.thresholds.connect_timeout_s * 3)
        vectors = non_null_count(target, cfg.schema_.fragments_table, cfg.schema_.embedding_column)
        shown = ", ".join(f"{t} {n if n is not None else 'absent'}" for t, n in counts.items())
        return (f"target kept intact for investigation (read-only, nothing dropped or truncated): {shown}; "
                f"{cfg.schema_.fragments_table}.{cfg.schema_.embedding_column} "
                + (f"set on {vectors} rows" if vectors is not None else "absent"))

    def step_maintenance_off(self) -> str:
        return self._maintenance().disable().detail

    def step_verify_serving(self) -> str:
        """``SERVING_SAMPLES`` requests in a row must all answer the old database's count (one lucky answer is
        not "serving")."""
        base = require(self.ctx, "app.api_base", "ask the app for the sampled org's threads").rstrip("/")
        token = require(self.ctx, "app.test_token", "authorise the threads API")
        if self.org is None or self.expected_threads is None:
            raise ActionError("the old database's figure is unknown: verify-old-database did not run")
        url = f"{base}/api/threads"
        served: list[int] = []
        with http_client(self.ctx.config) as client:
            for attempt in range(1, SERVING_SAMPLES + 1):
                count = self._threads_count(client, url, token.get(), attempt)
                if count != self.expected_threads:
                    raise ActionError(f"the app serves {count} threads for {self.org} (request {attempt} of "
                                      f"{SERVING_SAMPLES}) but the old database has {self.expected_threads}",
                                      hint=f"the app is not reading the old database: check its {KEY} and restart it")
                served.append(count)
        return (f"GET /api/threads for {self.org}: {SERVING_SAMPLES} of {SERVING_SAMPLES} requests served "
                f"{served[0]} threads, equal to the old database's {self.expected_threads}")

    def _threads_count(self, client: Any, url: str, token: str, attempt: int) -> int:
        import httpx

        try:
            response = client.get(url, headers={"x-org-id": self.org, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise ActionError(f"GET {url} failed (request {attempt} of {SERVING_SAMPLES}): "
                              f"{exc.__class__.__name__}: {redact(exc)}", hint="the app is not serving: read its log"
                              ) from exc
        if response.status_code != 200:
            raise ActionError(f"GET {url} for {self.org} answered HTTP {response.status_code} (request {attempt} of "
                              f"{SERVING_SAMPLES}): {redact(response.text[:200])}",
                              hint="the old system is not serving: read the app log")
        try:
            payload = response.json()
            return int(payload["count"] if "count" in payload else len(payload["threads"]))
        except (ValueError, KeyError, TypeError):
            raise ActionError(f"GET {url} answered something that is not a threads list: "
                              f"{redact(response.text[:200])}") from None

    # -- driver -----------------------------------------------------------------------------------------
    def plan(self) -> list[tuple[str, Callable[[], str]]]:
        return [(name, getattr(self, "step_" + name.replace("-", "_"))) for name in STEPS]

    def run(self) -> list[RollbackStep]:
        """Run every step in order; return the steps run (the last one failed if the rollback stopped)."""
        steps: list[RollbackStep] = []
        start = time.monotonic()
        before = self._health_state()
        maintenance_off_done = False
        for name, func in self.plan():
            t0 = time.monotonic()
            try:
                detail, ok = func(), True
            except (CutoverError, OSError) as exc:
                detail, ok = str(exc), False
                if maintenance_off_done:
                    detail += "; " + self._maintenance_back_on()
                detail += "; rollback stopped here, maintenance left on"
            except Exception as exc:  # a bug or an unexpected driver error: still a named, recorded failure
                detail, ok = f"{exc.__class__.__name__}: {exc}; rollback stopped here, maintenance left on", False
            step = RollbackStep(name, ok, redact(detail), round(time.monotonic() - t0, 3))
            steps.append(step)
            self.ctx.ledger.append({"kind": "rollback", **self.ctx.stamp(), **step.as_dict()})
            if not ok:
                break
            maintenance_off_done = maintenance_off_done or name == "maintenance-off"
        failed = failed_step(steps)
        summary = ("rollback complete: " + ", ".join(s.step for s in steps)) if failed is None else (
            f"rollback failed at step '{failed.step}': {failed.detail}")
        append_action(self.ctx, ActionResult(
            action="rollback", ok=failed is None, before=redact_obj(before), after=redact_obj(
                {**self._health_state(), "steps": [{"step": s.step, "ok": s.ok} for s in steps]}),
            detail=redact(summary), duration_s=round(time.monotonic() - start, 3)))
        return steps

    def _maintenance_back_on(self) -> str:
        try:
            self._maintenance().enable()
            return "maintenance turned back on"
        except CutoverError as exc:
            return f"turning maintenance back on ALSO failed: {exc}"

    def _health_state(self) -> dict[str, Any]:
        url = self.ctx.config.app.health_url if self.ctx.config is not None else None
        if not url:
            return {"health": None}
        with http_client(self.ctx.config) as client:
            observed = probe_health(client, url)
        return {"health": observed.state, "serving": observed.state == HEALTHY}


def run_rollback(ctx: RunContext, *, org: str | None = None, counter: ConnectionCounter | None = None,
                 ) -> list[RollbackStep]:
    """``Rollback(ctx, org=org).run()``."""
    return Rollback(ctx, org=org, counter=counter).run()


def alert_rollback(ctx: RunContext, *, reason: str | None = None) -> list[Any]:
    """Tell the channels subscribed to ``rollback`` (the incident channel) that a rollback starts, the way the
    suite's fixtures do when a trigger fires (runbook: "Alert team: Send incident alert").

    The message carries the run's fired triggers and their evidence from the ledger, or ``reason`` for a
    manual rollback; everything redacted.  Never raises for a receiver that is down (a rollback is never
    held up by a notification): the returned deliveries say what happened, and each is in the ledger.
    """
    from pytest_cutover.notify.dispatch import notify

    fired: dict[str, str] = {}
    for rec in ctx.ledger.records():
        if rec.get("kind") == "trigger" and rec.get("name"):
            fired[str(rec["name"])] = str(rec.get("evidence") or "")
    evidence = "; ".join(f"{name}: {text}" for name, text in fired.items() if text)
    manual = f"manual rollback by {ctx.user}@{ctx.host} (cutover action rollback)"
    details = {"triggers": list(fired), "evidence": "; ".join(p for p in (reason, evidence) if p) or manual,
               "source": "cutover action rollback", "by": f"{ctx.user}@{ctx.host}"}
    return notify(ctx, "rollback", redact_obj(details))
