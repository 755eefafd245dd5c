"""Probes against the loopback fake app: outcomes, latencies, leaks, token handling."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_cutover.monitor.probes import ProbeSet, build_probe_specs

from .fakeapp import THREADS, TOKEN, ServedApp


def _run(probe_set: ProbeSet) -> dict[str, Any]:
    async def go() -> Any:
        try:
            return await probe_set.run()
        finally:
            await probe_set.aclose()

    return {r.name: r for r in asyncio.run(go())}


def test_build_specs() -> None:
    specs = build_probe_specs("https://api.example/", orgs=["org_0001"], attachments={"org_0002": 3},
                              search_dim=4, search_k=5)
    assert [(s.name, s.method, s.url) for s in specs] == [
        ("health", "GET", "https://api.example/health"),
        ("threads:org_0001", "GET", "https://api.example/api/threads"),
        ("search:org_0001", "POST", "https://api.example/api/search"),
    ]
    assert specs[2].body == {"org_id": "org_0001", "k": 5, "vector": [0.5, 0.5, 0.5, 0.5]}


def test_clean_probes(fake_app: ServedApp, probe_set: ProbeSet) -> None:
    got = _run(probe_set)
    assert sorted(got) == ["attachment:org_0001", "attachment:org_0002", "health", "search:org_0001",
                           "search:org_0002", "threads:org_0001", "threads:org_0002"]
    assert all(r.ok and r.status == 200 and not r.leak for r in got.values()), got
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in got.values())
    assert got["threads:org_0001"].rows == 2
    assert fake_app.app.seen_auth == {f"Bearer {TOKEN}"}
    assert TOKEN not in repr(got)


def test_error_status_and_wrong_token(fake_app: ServedApp) -> None:
    fake_app.app.faults.error_share = 1.0
    specs = build_probe_specs(fake_app.url, kinds=("threads",), orgs=["org_0001"])
    got = _run(ProbeSet(specs, token=TOKEN))["threads:org_0001"]
    assert (got.ok, got.status) == (False, 500)
    assert got.error.startswith("http 500: ")
    fake_app.app.faults.error_share = 0.0
    bad = _run(ProbeSet(specs, token="not-the-token-123"))["threads:org_0001"]
    assert (bad.ok, bad.status) == (False, 401)


def test_maintenance_health(fake_app: ServedApp) -> None:
    fake_app.app.faults.maintenance = True
    specs = build_probe_specs(fake_app.url, kinds=("health",))
    assert _run(ProbeSet(specs, allow_maintenance=True))["health"].ok
    refused = _run(ProbeSet(specs, allow_maintenance=False))["health"]
    assert (refused.ok, refused.status) == (False, 503)


def test_timeout_is_recorded(fake_app: ServedApp) -> None:
    fake_app.app.faults.slow_search_ms = 600
    specs = build_probe_specs(fake_app.url, kinds=("search",), orgs=["org_0001"], search_dim=4)
    got = _run(ProbeSet(specs, token=TOKEN, timeout_s=0.2))["search:org_0001"]
    assert (got.ok, got.timed_out, got.status) == (False, True, None)
    assert 180 <= got.latency_ms < 600
    assert got.error == "timeout after 0.2 s (ReadTimeout)"


def test_connection_refused_is_a_failure() -> None:
    from pytest_cutover.rehearsal.procs import free_port

    specs = build_probe_specs(f"http://127.0.0.1:{free_port()}", kinds=("health",))
    got = _run(ProbeSet(specs))["health"]
    assert (got.ok, got.status, got.timed_out) == (False, None, False)
    assert got.error.startswith("ConnectError")


def test_search_leak_seen_from_row_org_ids(fake_app: ServedApp, probe_set: ProbeSet) -> None:
    fake_app.app.faults.cross_org_leak = True
    got = _run(probe_set)
    assert got["search:org_0001"].leak and got["search:org_0001"].leaked_orgs == ("org_0002",)
    assert got["search:org_0002"].leaked_orgs == ("org_0001",)


class MemoryOracle:
    """The in-memory fake of the database oracle: who owns a thread id."""

    def __init__(self) -> None:
        self.owner = {tid: org for org, ids in THREADS.items() for tid in ids}
        self.asked: list[tuple[str, int]] = []

    async def owners(self, kind: str, ids: Sequence[Any]) -> Mapping[str, str]:
        self.asked.append((kind, len(ids)))
        return {str(i): self.owner[str(i)] for i in ids if str(i) in self.owner}


def test_threads_leak_needs_the_oracle_when_rows_carry_no_org(fake_app: ServedApp) -> None:
    fake_app.app.faults.cross_org_leak = True
    specs = build_probe_specs(fake_app.url, kinds=("threads",), orgs=["org_0001"])
    blind = _run(ProbeSet(specs, token=TOKEN))["threads:org_0001"]
    assert not blind.leak  # rows are {"id", "title"}: nothing to tell by
    oracle = MemoryOracle()
    seen = _run(ProbeSet(specs, token=TOKEN, oracle=oracle))["threads:org_0001"]
    assert (seen.leak, seen.leaked_orgs, seen.rows) == (True, ("org_0002",), 3)
    assert oracle.asked == [("threads", 3)]
    fake_app.app.faults.row_org_ids = True
    direct = _run(ProbeSet(specs, token=TOKEN))["threads:org_0001"]
    assert direct.leaked_orgs == ("org_0002",)
