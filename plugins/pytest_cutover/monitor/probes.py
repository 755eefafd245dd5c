"""Synthetic probes over HTTP: health, threads per org, vector search, attachment download.

Each probe is one real request with a timeout; it records ok, latency, status and,
for tenant-scoped answers (threads, search), whether any returned row belongs to
another org (an RLS leak).  A row's org comes from the answer itself (an
``org_id`` on the row, or the answer's top-level ``org_id``) or, when rows carry
no org, from a :class:`LeakOracle` that looks the ids up in the target database.
The bearer token is a :class:`~pytest_cutover.redact.Secret` added per request;
it never lands in a spec, a result or an error.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytest_cutover.monitor.samples import ProbeResult
from pytest_cutover.redact import Secret, redact, reveal

if TYPE_CHECKING:
    import httpx

    from pytest_cutover.config import CutoverConfig

__all__ = ["KINDS", "LeakOracle", "ProbeSet", "ProbeSpec", "build_probe_specs", "probe_set_from_config"]

KINDS: tuple[str, ...] = ("health", "threads", "search", "attachment")
_ERROR_CHARS = 300


class LeakOracle(Protocol):
    """Who owns these rows: ``{id: org}`` for ids of ``table`` (``threads`` or the fragments table)."""

    async def owners(self, kind: str, ids: Sequence[Any]) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class ProbeSpec:
    """One synthetic request (no secrets: the token is added when it is sent)."""

    name: str
    kind: str
    method: str
    url: str
    org: str | None = None
    body: Mapping[str, Any] | None = None
    expect_sha256: str | None = None


def _unit_vector(dim: int) -> list[float]:
    return [1 / math.sqrt(dim)] * dim


def build_probe_specs(api_base: str, *, kinds: Sequence[str] = KINDS, health_url: str | None = None,
                      orgs: Sequence[str] = (), search_fragments: Mapping[str, int] | None = None,
                      attachments: Mapping[str, int] | None = None, search_dim: int = 1536, search_k: int = 10,
                      ) -> list[ProbeSpec]:
    """The probe set of the runbook: one health probe, and threads/search/attachment per sampled org.

    An org without a configured attachment id gets no attachment probe; search uses
    the configured fragment id, or a fixed unit vector of ``search_dim``.
    """
    base = api_base.rstrip("/")
    specs: list[ProbeSpec] = []
    if "health" in kinds:
        specs.append(ProbeSpec("health", "health", "GET", health_url or f"{base}/health"))
    for org in orgs:
        if "threads" in kinds:
            specs.append(ProbeSpec(f"threads:{org}", "threads", "GET", f"{base}/api/threads", org))
        if "search" in kinds:
            body: dict[str, Any] = {"org_id": org, "k": search_k}
            fragment = (search_fragments or {}).get(org)
            if fragment is not None:
                body["fragment_id"] = fragment
            else:
                body["vector"] = _unit_vector(search_dim)
            specs.append(ProbeSpec(f"search:{org}", "search", "POST", f"{base}/api/search", org, body))
        attachment = (attachments or {}).get(org)
        if "attachment" in kinds and attachment is not None:
            specs.append(ProbeSpec(f"attachment:{org}", "attachment", "GET",
                                   f"{base}/api/attachments/{attachment}", org))
    return specs


@dataclass
class ProbeSet:
    """Runs the probes on one ``httpx.AsyncClient``, ``concurrency`` at a time.

    Sequential by default: concurrent probes queue behind each other in a small app
    (one worker, two cores) and their latencies then measure the queue, not the search.
    """

    specs: Sequence[ProbeSpec]
    token: Secret | str | None = None
    timeout_s: float = 5.0
    ca_file: str | None = None
    allow_maintenance: bool = True
    oracle: LeakOracle | None = None
    tenant_column: str = "org_id"
    concurrency: int = 1
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    def _verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    async def _get_client(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), verify=self._verify(),
                                             follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run(self) -> tuple[ProbeResult, ...]:
        """One result per spec, in spec order."""
        client = await self._get_client()
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(spec: ProbeSpec) -> ProbeResult:
            async with gate:
                return await self._probe(client, spec)

        return tuple(await asyncio.gather(*(one(spec) for spec in self.specs)))

    def _headers(self, spec: ProbeSpec) -> dict[str, str]:
        headers = {"accept": "application/json"}
        if spec.org is not None:
            headers["x-org-id"] = spec.org
        token = reveal(self.token)
        if token and spec.kind != "health":
            headers["authorization"] = f"Bearer {token}"
        return headers

    async def _probe(self, client: httpx.AsyncClient, spec: ProbeSpec) -> ProbeResult:
        import httpx

        started = time.perf_counter()
        try:
            response = await client.request(spec.method, spec.url, headers=self._headers(spec),
                                            json=dict(spec.body) if spec.body is not None else None)
        except httpx.TimeoutException as exc:
            return ProbeResult(spec.name, spec.kind, False, _ms(started), None, spec.org,
                               f"timeout after {self.timeout_s:g} s ({type(exc).__name__})", timed_out=True)
        except httpx.HTTPError as exc:
            return ProbeResult(spec.name, spec.kind, False, _ms(started), None, spec.org,
                               redact(f"{type(exc).__name__}: {exc}")[:_ERROR_CHARS])
        latency = _ms(started)
        try:
            return await self._judge(spec, response, latency)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return ProbeResult(spec.name, spec.kind, False, latency, response.status_code, spec.org,
                               redact(f"unexpected answer: {type(exc).__name__}: {exc}")[:_ERROR_CHARS])

    async def _judge(self, spec: ProbeSpec, response: httpx.Response, latency: float) -> ProbeResult:
        status = response.status_code
        fail = f"http {status}: {redact(response.text[:200])}" if status != 200 else None
        if spec.kind == "health":
            ok = status == 200
            if not ok and status == 503 and self.allow_maintenance:
                ok = _json(response).get("status") == "maintenance"
            return ProbeResult(spec.name, spec.kind, ok, latency, status, None, None if ok else fail)
        if status != 200:
            return ProbeResult(spec.name, spec.kind, False, latency, status, spec.org, fail)
        if spec.kind == "attachment":
            import hashlib

            body = response.content
            if not body:
                return ProbeResult(spec.name, spec.kind, False, latency, status, spec.org, "empty attachment body")
            if spec.expect_sha256 and hashlib.sha256(body).hexdigest() != spec.expect_sha256:
                return ProbeResult(spec.name, spec.kind, False, latency, status, spec.org, "attachment sha256 differs")
            return ProbeResult(spec.name, spec.kind, True, latency, status, spec.org, rows=1)
        data = _json(response)
        rows = data["threads"] if spec.kind == "threads" else data["results"]
        if not isinstance(rows, list):
            raise TypeError(f"{spec.kind} answer has no list of rows")
        note = None
        try:
            leaked = await self._leaked_orgs(spec, data, rows)
        except Exception as exc:  # the oracle's database is down: the answer worked, the leak check did not
            leaked, note = (), redact(f"leak check failed: {type(exc).__name__}: {exc}")[:_ERROR_CHARS]
        return ProbeResult(spec.name, spec.kind, True, latency, status, spec.org, note, leak=bool(leaked),
                           leaked_orgs=leaked, rows=len(rows))

    async def _leaked_orgs(self, spec: ProbeSpec, data: Mapping[str, Any], rows: list[Any]) -> tuple[str, ...]:
        """Orgs other than the probe's own that own any returned row."""
        col = self.tenant_column
        orgs: set[str] = set()
        top = data.get(col)
        if top is not None and str(top) != spec.org:
            orgs.add(str(top))
        unknown: list[Any] = []
        for row in rows:
            if isinstance(row, Mapping) and row.get(col) is not None:
                orgs.add(str(row[col]))
            elif isinstance(row, Mapping):
                key = row.get("id", row.get("fragment_id"))
                if key is not None:
                    unknown.append(key)
        if unknown and self.oracle is not None:
            owners = await self.oracle.owners(spec.kind, unknown)
            orgs.update(owners.values())
        orgs.discard(spec.org or "")
        return tuple(sorted(orgs))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _json(response: httpx.Response) -> dict[str, Any]:
    data = response.json()
    if not isinstance(data, dict):
        raise TypeError("answer is not a JSON object")
    return data


def probe_set_from_config(config: CutoverConfig, *, orgs: Sequence[str] | None = None,
                          search_fragments: Mapping[str, int] | None = None,
                          attachments: Mapping[str, int] | None = None, oracle: LeakOracle | None = None,
                          ) -> ProbeSet:
    """The configured probe set (``[app]`` api_base/health_url/test_token/ca_file, ``[monitor]`` the rest).

    Arguments override ``[monitor]`` (e.g. targets discovered from the database).
    """
    from pytest_cutover.errors import ConfigError

    app, mon = config.app, config.monitor
    if not app.api_base:
        raise ConfigError("app.api_base is not set: the monitor has nothing to probe",
                          hint="set [app] api_base (and test_token) in cutover.toml")
    specs = build_probe_specs(
        app.api_base, kinds=mon.probes, health_url=app.health_url, orgs=list(orgs if orgs is not None else mon.orgs),
        search_fragments=search_fragments if search_fragments is not None else mon.search_fragments,
        attachments=attachments if attachments is not None else mon.attachments,
        search_dim=mon.search_dim, search_k=mon.search_k)
    return ProbeSet(specs, token=app.test_token, timeout_s=mon.probe_timeout_s, ca_file=app.ca_file,
                    allow_maintenance=mon.allow_maintenance, oracle=oracle,
                    tenant_column=config.schema_.tenant_column)
