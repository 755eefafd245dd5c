"""STEP 5 of the runbook: smoke tests after the restart, against expected figures from the old database.

Never "found N threads, OK": every count is compared with the old database's count for the same org.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def http(cutover_config: CutoverConfig) -> Any:
    """An HTTPS client trusting the configured CA, with the configured timeout."""
    from pytest_cutover.actions.health import http_client

    with http_client(cutover_config, timeout=cutover_config.thresholds.connect_timeout_s) as client:
        yield client


@pytest.fixture(scope="module")
def orgs(cutover_config: CutoverConfig, sql: Any) -> list[str]:
    """The sampled orgs: ``[monitor] orgs``, else the first few orgs of the old database, sorted."""
    if cutover_config.monitor.orgs:
        return sorted(cutover_config.monitor.orgs)
    sc = cutover_config.schema_
    rows = sql("source.database_url", f"SELECT DISTINCT {sc.tenant_column} AS org FROM {sc.threads_table} "
                                      f"ORDER BY 1 LIMIT {max(2, cutover_config.monitor.sample_orgs)}")
    if len(rows) < 2:
        pytest.skip("the old database has fewer than two orgs with threads: cross-org checks need two")
    return [r["org"] for r in rows]


@pytest.fixture(scope="module")
def expected_threads(cutover_config: CutoverConfig, sql: Any) -> dict[str, int]:
    """Threads per org in the OLD database: what the new one must show."""
    sc = cutover_config.schema_
    rows = sql("source.database_url",
               f"SELECT {sc.tenant_column} AS org, COUNT(*) AS n FROM {sc.threads_table} GROUP BY 1")
    return {r["org"]: r["n"] for r in rows}


def _auth(cutover_config: CutoverConfig, org: str) -> dict[str, str]:
    from pytest_cutover.redact import reveal

    headers = {"x-org-id": org}
    if cutover_config.app.test_token:
        headers["Authorization"] = f"Bearer {reveal(cutover_config.app.test_token)}"
    return headers


@pytest.mark.runbook('Health Check: Expected: {"status": "healthy"}')
def test_health_check(ctx: Any, cutover_config: CutoverConfig, http: Any, needs: Any, record_figure: Any) -> None:
    """The runbook keeps maintenance on until STEP 7, which runs "only if all smoke tests passed": while the
    maintenance window is open the app must answer with its maintenance status; otherwise it must be healthy.
    The monitor stage checks ``healthy`` again once it has turned maintenance off.
    """
    needs("app.health_url")
    started = time.perf_counter()
    response = http.get(cutover_config.app.health_url)
    record_figure("health_ms", round((time.perf_counter() - started) * 1000, 1))
    window_open = _maintenance_window_open(ctx)
    expected = (503, {"status": "maintenance"}) if window_open else (200, {"status": "healthy"})
    got = (response.status_code, response.json() if "json" in response.headers.get("content-type", "") else None)
    assert got == expected, (f"/health answered {response.status_code} {response.text[:200]}, expected "
                             f"{expected[1]} (maintenance window {'open' if window_open else 'closed'}): "
                             "check the app log")


def _maintenance_window_open(ctx: Any) -> bool:
    """Whether this run turned maintenance on (and did not turn it off again), from the ledger's action records."""
    state = False
    for record in ctx.ledger.records():
        if record.get("kind") == "action" and record.get("ok") and record.get("action") in ("maintenance-on",
                                                                                            "maintenance-off"):
            state = record["action"] == "maintenance-on"
    return state


@pytest.mark.runbook("Database Connectivity: Database connected. Thread count equals the old database's, through the "
                     "pooler")
def test_database_connectivity(cutover_config: CutoverConfig, tenant_sql: Any, orgs: list[str],
                               expected_threads: dict[str, int], record_figure: Any) -> None:
    sc = cutover_config.schema_
    seen: dict[str, int] = {}
    started = time.perf_counter()
    for org in orgs:
        (row,) = tenant_sql("target.app_database_url", org, f"SELECT COUNT(*) AS n FROM {sc.threads_table}")
        seen[org] = row["n"]
    record_figure("db_query_ms", round((time.perf_counter() - started) * 1000 / len(orgs), 1))
    record_figure("threads_per_org", seen)
    wrong = {o: (seen[o], expected_threads.get(o, 0)) for o in orgs if seen[o] != expected_threads.get(o, 0)}
    assert not wrong, ("threads visible through the transaction pooler differ from the old database "
                       f"(org: (new, old)): {wrong}")


@pytest.mark.runbook("RLS Testing: org A sees exactly its threads, org B's are invisible")
def test_rls_isolation_through_the_api(cutover_config: CutoverConfig, http: Any, needs: Any, orgs: list[str],
                                       expected_threads: dict[str, int], record_figure: Any) -> None:
    needs("app.api_base")
    seen_ids: dict[str, set[str]] = {}
    for org in orgs:
        response = http.get(f"{cutover_config.app.api_base}/api/threads", headers=_auth(cutover_config, org))
        assert response.status_code == 200, f"/api/threads for {org} answered {response.status_code}"
        body = response.json()
        threads = body.get("threads", [])
        foreign = [t for t in threads if t.get("org_id", org) != org]
        assert not foreign, f"/api/threads for {org} returned rows of other orgs: {foreign[:3]}"
        assert body.get("count", len(threads)) == expected_threads.get(org, 0), (
            f"/api/threads for {org} shows {body.get('count', len(threads))} threads; the old database has "
            f"{expected_threads.get(org, 0)}")
        seen_ids[org] = {str(t["id"]) for t in threads}
    overlap = {(a, b) for a in orgs for b in orgs if a < b and seen_ids[a] & seen_ids[b]}
    assert not overlap, f"orgs share thread ids through the API: {sorted(overlap)}"


@pytest.mark.runbook("Vector Search Test: a known fragment's own embedding returns it first, and never another org's "
                     "rows")
def test_vector_search(cutover_config: CutoverConfig, http: Any, sql: Any, needs: Any, orgs: list[str],
                       record_figure: Any) -> None:
    needs("app.api_base")
    sc = cutover_config.schema_
    latencies = []
    for org in orgs:
        rows = sql("target.database_url",
                   f"SELECT {sc.fragment_key} AS id FROM {sc.fragments_table} WHERE {sc.tenant_column} = $1 "
                   f"AND {sc.embedding_column} IS NOT NULL AND tier = 'shared' ORDER BY 1 LIMIT 1", org)
        if not rows:
            pytest.fail(f"org {org} has no fragment with an embedding in the target: was the sync stage run?")
        fragment = rows[0]["id"]
        started = time.perf_counter()
        response = http.post(f"{cutover_config.app.api_base}/api/search", headers=_auth(cutover_config, org),
                             json={"org_id": org, "fragment_id": fragment, "k": 10})
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, f"/api/search for {org} answered {response.status_code}"
        results = response.json().get("results", [])
        assert results and results[0]["fragment_id"] == fragment, (
            f"searching org {org} with fragment {fragment}'s own embedding did not return it first: "
            f"{[r.get('fragment_id') for r in results[:3]]}")
        foreign = [r for r in results if r.get("org_id") != org]
        assert not foreign, f"vector search for {org} returned fragments of other orgs: {foreign[:3]}"
    record_figure("search_ms", [round(x, 1) for x in latencies])


@pytest.mark.runbook("Storage Access Test: upload, download, checksum, list and delete in the org's folder")
def test_storage_access(cutover_config: CutoverConfig, ctx: Any, http: Any, needs: Any, orgs: list[str],
                        record_figure: Any) -> None:
    needs("target.storage_url", "target.storage_key")
    from pytest_cutover.redact import reveal

    key = reveal(cutover_config.target.storage_key)
    base, bucket = cutover_config.target.storage_url.rstrip("/"), cutover_config.target.bucket
    headers = {"Authorization": f"Bearer {key}", "apikey": key or ""}
    path = f"{orgs[0]}/cutover-smoke/{ctx.run}.txt"
    payload = f"smoke {ctx.run} {time.time()}".encode()
    started = time.perf_counter()
    up = http.post(f"{base}/object/{bucket}/{path}", content=payload,
                   headers={**headers, "Content-Type": "text/plain", "x-upsert": "true"})
    assert up.status_code in (200, 201), f"upload to {bucket}/{path} answered {up.status_code}: {up.text[:200]}"
    down = http.get(f"{base}/object/{bucket}/{path}", headers=headers)
    assert down.status_code == 200, f"download of {bucket}/{path} answered {down.status_code}"
    assert hashlib.sha256(down.content).hexdigest() == hashlib.sha256(payload).hexdigest(), (
        f"{bucket}/{path} came back different from what was uploaded")
    listed = http.post(f"{base}/object/list/{bucket}", headers=headers,
                       json={"prefix": f"{orgs[0]}/cutover-smoke/", "limit": 100})
    assert listed.status_code == 200 and f"{ctx.run}.txt" in {o.get("name") for o in listed.json()}, (
        f"listing {bucket}/{orgs[0]}/cutover-smoke/ did not show the uploaded object")
    gone = http.request("DELETE", f"{base}/object/{bucket}", headers=headers, json={"prefixes": [path]})
    assert gone.status_code == 200, f"deleting {bucket}/{path} answered {gone.status_code}"
    record_figure("storage_roundtrip_ms", round((time.perf_counter() - started) * 1000, 1))


@pytest.mark.runbook("API Endpoint Test: GET /api/threads with x-org-id and a token")
def test_api_endpoint(cutover_config: CutoverConfig, http: Any, needs: Any, orgs: list[str]) -> None:
    needs("app.api_base", "app.test_token")
    response = http.get(f"{cutover_config.app.api_base}/api/threads", headers=_auth(cutover_config, orgs[0]))
    assert response.status_code == 200, f"/api/threads answered {response.status_code}: {response.text[:200]}"
    unauthorised = http.get(f"{cutover_config.app.api_base}/api/threads", headers={"x-org-id": orgs[0]})
    assert unauthorised.status_code in (401, 403), (
        f"/api/threads without a token answered {unauthorised.status_code}: the API is open to anyone")
