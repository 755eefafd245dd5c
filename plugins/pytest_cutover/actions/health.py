"""Ask the app's ``/health`` what state it is in, and wait (with a deadline) for a wanted state.

The runbook verifies each action with ``curl .../health``: ``{"status": "healthy"}``
when serving, maintenance (HTTP 503 or ``{"status": "maintenance"}``) while in
maintenance.  Here that is an observation with its evidence (HTTP status, body
excerpt, error), so a failed wait can say what the app answered last.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_cutover.actions.base import ActionError, Deadline
from pytest_cutover.redact import redact
from pytest_cutover.util.wait import wait_until

if TYPE_CHECKING:
    import httpx

    from pytest_cutover.config import CutoverConfig

__all__ = ["HEALTHY", "MAINTENANCE", "UNHEALTHY", "UNREACHABLE", "UP", "HealthObservation", "http_client",
           "probe_health", "wait_for_health"]

HEALTHY, MAINTENANCE, UNHEALTHY, UNREACHABLE = "healthy", "maintenance", "unhealthy", "unreachable"
UP = frozenset({HEALTHY, MAINTENANCE})
_POLL_S = 0.2


@dataclass(frozen=True)
class HealthObservation:
    """What ``/health`` answered: a state and the evidence for it."""

    state: str
    http_status: int | None
    body: str
    error: str | None = None

    def evidence(self) -> str:
        if self.http_status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.http_status} {self.body}".strip()


def http_client(config: CutoverConfig | None, timeout: float = 10.0) -> httpx.Client:
    """An httpx client that verifies TLS with the configured CA file (``[app] ca_file``, else ``[target] ca_file``)."""
    import httpx

    ca = (config.app.ca_file or config.target.ca_file) if config is not None else None
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca else True
    # No keep-alive: a connection we hold open would delay the app's graceful stop during a restart.
    return httpx.Client(verify=verify, timeout=timeout, follow_redirects=False,
                        limits=httpx.Limits(max_keepalive_connections=0))


def probe_health(client: httpx.Client, url: str, timeout: float = 5.0) -> HealthObservation:
    """One GET of the health URL, classified; never raises for HTTP or network trouble."""
    import httpx

    try:
        response = client.get(url, timeout=max(0.1, timeout))
    except httpx.HTTPError as exc:
        return HealthObservation(UNREACHABLE, None, "", redact(f"{exc.__class__.__name__}: {exc}"))
    body = redact(response.text[:300].strip())
    status = None
    try:
        payload = response.json()
        status = payload.get("status") if isinstance(payload, dict) else None
    except ValueError:
        pass
    if status == MAINTENANCE or response.status_code == 503:
        return HealthObservation(MAINTENANCE, response.status_code, body)
    if response.status_code == 200 and status == HEALTHY:
        return HealthObservation(HEALTHY, response.status_code, body)
    return HealthObservation(UNHEALTHY, response.status_code, body)


def wait_for_health(client: httpx.Client, url: str, expect: Iterable[str], deadline: Deadline, *,
                    what: str, hint: str, step: str | None = None) -> HealthObservation:
    """Poll until ``/health`` is in one of the ``expect`` states, or raise with the last observation."""
    wanted = frozenset(expect)
    seen: list[HealthObservation] = []

    def arrived() -> bool:
        seen.append(probe_health(client, url, timeout=min(5.0, max(0.2, deadline.remaining()))))
        return seen[-1].state in wanted

    if wait_until(arrived, deadline.remaining(), pause=_POLL_S):
        return seen[-1]
    raise ActionError(f"{what}: {url} still says {seen[-1].state} after {deadline.elapsed():.1f} s "
                      f"({len(seen)} polls; wanted {' or '.join(sorted(wanted))}; last answer: "
                      f"{seen[-1].evidence()})", hint=hint, step=step)
