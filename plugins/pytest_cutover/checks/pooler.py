"""Is ``target.app_database_url`` really a transaction pooler?  Ask the behaviour, not the port.

Runbook Step 3a: "Use port **6543** (transaction pooler), NOT 5432 (session pooler)".  A port is only a
convention, so the probe watches what only a transaction pooler does (field notes, measured on PgBouncer
1.18): a session-level setting made by one client stays on the *server* connection and is seen by other
clients that get that backend next, and the client's own next transactions may run on other backends.
Through a session pooler (or a direct connection) the setting follows its client and nobody else sees it.

The probe: client 1 stores a random marker with ``set_config(name, marker, false)`` (session scope) in a
private GUC namespace (``cutover_probe.*``), then it and ``clients`` others run short transactions
concurrently (pool pressure) reading ``pg_backend_pid()`` and the setting.  Any client that sees the
marker clears it on that backend in the same statement, so the probe leaves nothing behind.
Where PgBouncer's admin console is reachable (``monitor.pooler_admin_url``), ``SHOW CONFIG``'s
``pool_mode`` is read too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.pg import endpoint
from pytest_cutover.checks.base import CheckResult, result, run_sync
from pytest_cutover.checks.db import connect, describe
from pytest_cutover.errors import CutoverError
from pytest_cutover.redact import Secret
from pytest_cutover.util.proc import run_psql

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["TRANSACTION_PORT", "PoolBehaviour", "check_pooler", "observe_pool", "pool_mode_from_admin"]

TRANSACTION_PORT = 6543
SESSION_PORT = 5432
_GUC = "cutover_probe.marker"
_PROBE_SQL = ("select pg_backend_pid() as pid, current_setting($1, true) as v, "
              "case when $3 and current_setting($1, true) = $2 then set_config($1, '', false) end as cleared")


@dataclass(frozen=True)
class PoolBehaviour:
    """What the probe saw: ``mode`` is ``transaction`` or ``session`` (a direct connection looks like one)."""

    mode: str
    marker_pid: int
    rounds: int
    clients: int
    seen_by_others: int           # other clients' transactions that saw client 1's session setting
    own_moves: int                # client 1's transactions that ran on another backend or lost the setting
    backends: int                 # distinct backend pids observed
    evidence: str


async def observe_pool(dsn: Secret | str, *, ca_file: str | None, timeout: float = 10.0, rounds: int = 20,
                       clients: int = 4, what: str = "target.app_database_url") -> PoolBehaviour:
    """Run the session-setting probe through ``dsn`` (see the module docstring)."""
    marker = secrets.token_hex(8)
    first = await connect(dsn, ca_file=ca_file, timeout=timeout, what=what)
    others: list[Any] = []
    try:
        row = await first.fetchrow("select pg_backend_pid() as pid, set_config($1, $2, false) as v", _GUC, marker)
        marker_pid = int(row["pid"])
        others = list(await asyncio.gather(*(connect(dsn, ca_file=ca_file, timeout=timeout, what=what)
                                              for _ in range(clients))))
        seen = moves = done = 0
        pids: set[int] = {marker_pid}

        async def other(conn: Any) -> tuple[int, bool]:
            async with conn.transaction():
                r = await conn.fetchrow(_PROBE_SQL, _GUC, marker, True)
                await asyncio.sleep(0.005)  # hold the server connection briefly: pool pressure
            return int(r["pid"]), r["v"] == marker

        for done in range(1, rounds + 1):  # noqa: B007 - done is reported
            own_task = first.fetchrow(_PROBE_SQL, _GUC, marker, False)
            outcomes = await asyncio.wait_for(asyncio.gather(own_task, *(other(c) for c in others)), timeout)
            own = outcomes[0]
            pids.add(int(own["pid"]))
            if int(own["pid"]) != marker_pid or own["v"] != marker:
                moves += 1
            for pid, saw in outcomes[1:]:
                pids.add(pid)
                seen += int(saw)
            if seen or moves:
                break
        mode = "transaction" if (seen or moves) else "session"
        evidence = (f"{describe(dsn)}: session setting made on backend {marker_pid}; {done} rounds x "
                    f"{clients + 1} clients; seen by other clients {seen}x, client 1 moved {moves}x, "
                    f"{len(pids)} backends observed -> {mode} pooling")
        return PoolBehaviour(mode, marker_pid, done, clients, seen, moves, len(pids), evidence)
    finally:
        with contextlib.suppress(Exception):
            await first.fetchrow(_PROBE_SQL, _GUC, marker, True)
        for conn in others:
            with contextlib.suppress(Exception):
                await conn.fetchrow(_PROBE_SQL, _GUC, marker, True)
        for conn in [first, *others]:
            with contextlib.suppress(Exception):
                await conn.close(timeout=5)


def pool_mode_from_admin(admin_url: Secret | str, timeout: float = 10.0) -> str | None:
    """``pool_mode`` from PgBouncer's ``SHOW CONFIG`` (admin console, via psql: it speaks only simple queries)."""
    out = run_psql(admin_url, "SHOW CONFIG", timeout=timeout, tuples_only=True, hint="check monitor.pooler_admin_url",
                   failure_hint="the user needs to be in the pooler's admin_users or stats_users")
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and parts[0].strip() == "pool_mode":
            return parts[1].strip()
    return None


def check_pooler(config: CutoverConfig) -> CheckResult:
    """The app's URL connects and behaves as a transaction pooler; the port follows the runbook."""
    dsn = config.target.app_database_url
    if dsn is None:
        raise CutoverError("missing config key target.app_database_url", hint="set it to the 6543 pooler URL")
    timeout = config.thresholds.connect_timeout_s
    behaviour = run_sync(observe_pool(dsn, ca_file=config.target.ca_file, timeout=timeout),
                         timeout=timeout * 8 + 30)
    problems: list[str] = []
    where = endpoint(dsn)
    notes = [behaviour.evidence]
    if behaviour.mode != "transaction":
        problems.append(
            f"target.app_database_url ({where}) is not a transaction pooler: a session-level SET made on backend "
            f"{behaviour.marker_pid} stayed with its client for {behaviour.rounds} transactions and no other of "
            f"{behaviour.clients} clients saw it (session pooler or direct connection); the runbook requires the "
            f"transaction pooler: use the pooler URL on port {TRANSACTION_PORT}")
    if where.port == SESSION_PORT and behaviour.mode != "transaction":
        problems.append(f"target.app_database_url uses port {SESSION_PORT}: on Supabase that is the session pooler "
                        f"(or the direct connection), which loses the RLS context between requests; use port "
                        f"{TRANSACTION_PORT}")
    elif where.port == SESSION_PORT:
        notes.append(f"port {SESSION_PORT} but transaction pooling observed")
    if where.host.endswith(".supabase.com") and where.port != TRANSACTION_PORT:
        problems.append(f"target.app_database_url points at Supabase's pooler on port {where.port}: the transaction "
                        f"pooler is port {TRANSACTION_PORT}")
    admin_mode = None
    admin_url = config.monitor.pooler_admin_url
    if admin_url is not None:
        admin_mode = pool_mode_from_admin(admin_url, timeout)
        notes.append(f"SHOW CONFIG pool_mode={admin_mode}")
        if admin_mode and admin_mode != "transaction":
            problems.append(f"the pooler's SHOW CONFIG says pool_mode={admin_mode}: set pool_mode = transaction")
    figures = {"pool_mode": behaviour.mode, "port": where.port, "backends_observed": behaviour.backends,
               "probe_rounds": behaviour.rounds, "admin_pool_mode": admin_mode}
    return result("pooler-transaction-mode", problems, "; ".join(notes), figures)
