"""The reference app served by uvicorn from its checkout, against the embedded target as app_user."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import pytest

from pytest_cutover.rehearsal.errors import RehearsalError

from .conftest import ADMIN_TOKEN, Cluster, RunningApp, Storage

pytestmark = pytest.mark.integration


def _thread_ids(cluster: Cluster, org: str) -> set[str]:
    return {str(r["id"]) for r in cluster.fetch("SELECT id FROM threads WHERE org_id = $1", org)}


def test_health_and_json_log_lines(app: RunningApp) -> None:
    response = app.call("GET", "/health", token=None)
    assert (response.status_code, response.json()) == (200, {"status": "healthy"})
    lines = app.log_lines()
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line["logger"] == "app.access" and line["path"] == "/health" and line["status"] == 200
               for line in lines)


def test_maintenance_through_the_admin_endpoint(app: RunningApp) -> None:
    assert app.call("POST", "/admin/maintenance/enable", token=None).status_code == 401
    assert app.call("POST", "/admin/maintenance/enable", token="wrong").status_code == 401
    try:
        assert app.call("POST", "/admin/maintenance/enable", token=ADMIN_TOKEN).json() == {"maintenance": True}
        response = app.call("GET", "/health")
        assert (response.status_code, response.json()) == (503, {"status": "maintenance"})
    finally:
        assert app.call("POST", "/admin/maintenance/disable", token=ADMIN_TOKEN).json() == {"maintenance": False}
    assert app.call("GET", "/health").json() == {"status": "healthy"}


def test_threads_are_scoped_to_the_org_as_app_user(app: RunningApp, cluster: Cluster) -> None:
    counts = {}
    for org in cluster.orgs():
        body = app.call("GET", "/api/threads", org=org).json()
        expected = cluster.fetch("SELECT count(*) AS n FROM threads WHERE org_id = $1", org)[0]["n"]
        assert body["org_id"] == org and body["count"] == expected == len(body["threads"]) > 0
        assert {t["id"] for t in body["threads"]} == _thread_ids(cluster, org)
        counts[org] = expected
    assert app.call("GET", "/api/threads", org="org_9999").json()["count"] == 0
    assert app.call("GET", "/api/threads", org=cluster.orgs()[0], token="wrong").status_code == 401


def test_fault_error_spike_gives_500s_and_error_lines(app: RunningApp, cluster: Cluster) -> None:
    app.new_log_lines()
    app.set_faults({"error-spike": 1.0})
    try:
        statuses = [app.call("GET", "/api/threads", org=cluster.orgs()[0]).status_code for _ in range(3)]
    finally:
        app.set_faults(None)
    assert statuses == [500, 500, 500]
    errors = [line for line in app.new_log_lines() if line["level"] == "ERROR"]
    assert len(errors) == 3 and all("error-spike" in line["msg"] for line in errors)
    assert app.call("GET", "/api/threads", org=cluster.orgs()[0]).status_code == 200


def test_fault_cross_org_leak_serves_another_orgs_rows(app: RunningApp, cluster: Cluster) -> None:
    org_a, org_b = cluster.orgs()[:2]
    assert app.call("GET", "/api/threads", org=org_b).status_code == 200  # an earlier request of org B
    app.set_faults({"cross-org-leak": True})
    try:
        leaked = {t["id"] for t in app.call("GET", "/api/threads", org=org_a).json()["threads"]}
    finally:
        app.set_faults(None)
    assert leaked and leaked == _thread_ids(cluster, org_b) and not leaked & _thread_ids(cluster, org_a)
    clean = {t["id"] for t in app.call("GET", "/api/threads", org=org_a).json()["threads"]}
    assert clean == _thread_ids(cluster, org_a)


def test_fault_maintenance_ignored_keeps_health_healthy(app: RunningApp) -> None:
    flag = app.env["MAINTENANCE_FILE"]
    open(flag, "w").close()  # the "file" maintenance method
    try:
        assert app.call("GET", "/health").status_code == 503
        app.set_faults({"maintenance-ignored": True})
        response = app.call("GET", "/health")
        assert (response.status_code, response.json()) == (200, {"status": "healthy"})
    finally:
        app.set_faults(None)
        import os

        os.unlink(flag)
    assert app.call("GET", "/health").status_code == 200


def test_fault_db_conn_failures_logs_connection_errors(app: RunningApp, cluster: Cluster) -> None:
    app.new_log_lines()
    app.set_faults({"db-conn-failures": True})
    try:
        response = app.call("GET", "/api/threads", org=cluster.orgs()[0])
    finally:
        app.set_faults(None)
    assert response.status_code == 503
    lines = app.new_log_lines()
    assert any(line["level"] == "ERROR" and line.get("category") == "database-connection" for line in lines)


def test_qdrant_search_and_the_folder_is_released_in_maintenance(app: RunningApp, cluster: Cluster) -> None:
    from qdrant_client import QdrantClient

    vector_id, org, fragment_id, _user = cluster.data.points[0]
    vector = [float(x) for x in cluster.data.vectors[0]]
    body = app.call("POST", "/api/search", json={"org_id": org, "vector": vector, "k": 5}).json()
    assert body["backend"] == "qdrant" and body["results"][0]["fragment_id"] == fragment_id
    assert all(r["org_id"] == org for r in body["results"])
    with pytest.raises(RuntimeError, match="already accessed"):
        QdrantClient(path=str(cluster.qdrant_path))  # the app holds the folder now
    app.call("POST", "/admin/maintenance/enable", token=ADMIN_TOKEN)
    try:
        assert app.call("POST", "/api/search", json={"org_id": org, "vector": vector}).status_code == 503
        client = QdrantClient(path=str(cluster.qdrant_path))  # released: the migration could read it now
        assert client.count(body_collection(), exact=True).count == len(cluster.data.points)
        client.close()
    finally:
        app.call("POST", "/admin/maintenance/disable", token=ADMIN_TOKEN)
    again = app.call("POST", "/api/search", json={"org_id": org, "fragment_id": fragment_id, "k": 3}).json()
    assert again["results"][0]["fragment_id"] == fragment_id and vector_id


def body_collection() -> str:
    from pytest_cutover.rehearsal.seed import COLLECTION

    return COLLECTION


def test_attachment_from_file_data_then_from_storage(app: RunningApp, cluster: Cluster, storage: Storage) -> None:
    from storage3 import SyncStorageClient

    att = cluster.data.attachments[0]
    att_id, org, thread_id, filename, ctype, sha = att[0], att[1], att[2], att[4], att[5], att[7]
    response = app.call("GET", f"/api/attachments/{att_id}", org=org)
    assert response.status_code == 200 and response.headers["x-attachment-source"] == "database"
    assert hashlib.sha256(response.content).hexdigest() == sha
    other = next(o for o in cluster.orgs() if o != org)
    assert app.call("GET", f"/api/attachments/{att_id}", org=other).status_code == 404

    import ssl

    import httpx

    path = f"{org}/{thread_id}/{att_id}/{filename}"
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(app.ca_file)))
    headers = {"apikey": storage.service_key, "Authorization": f"Bearer {storage.service_key}"}
    with SyncStorageClient(storage.url + "/", headers, http_client=http) as client:
        client.from_("attachments").upload(path, response.content, {"content-type": ctype})
    cluster.fetch("UPDATE attachments SET storage_path = $1, storage_bucket = 'attachments' WHERE id = $2",
                  path, att_id)
    moved = app.call("GET", f"/api/attachments/{att_id}", org=org)
    assert moved.status_code == 200 and moved.headers["x-attachment-source"] == "storage"
    assert hashlib.sha256(moved.content).hexdigest() == sha


def test_pgvector_backend_after_switch_and_slow_search(app_factory: Callable[..., RunningApp],
                                                       cluster: Cluster) -> None:
    _vector_id, org, fragment_id, user = cluster.data.points[1]
    vector = cluster.data.vectors[1]
    literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
    cluster.fetch("UPDATE memory_fragments SET embedding = $1::vector WHERE id = $2", literal, fragment_id)
    switched = app_factory("pgvector", VECTOR_BACKEND="pgvector")
    as_owner = {"x-user-id": user}  # the fragment may be in the private tier: RLS shows it to its user only
    body = switched.call("POST", "/api/search", json={"org_id": org, "fragment_id": fragment_id, "k": 3},
                         headers=as_owner).json()
    assert body["backend"] == "pgvector"
    assert [r["fragment_id"] for r in body["results"]] == [fragment_id]
    assert body["results"][0]["org_id"] == org and body["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    switched.set_faults({"slow-search": 300})
    try:
        slow = switched.call("POST", "/api/search", json={"org_id": org, "fragment_id": fragment_id},
                             headers=as_owner).json()
    finally:
        switched.set_faults(None)
    assert slow["ms"] >= 300


def test_fault_app_fails_start(app_factory: Callable[..., RunningApp]) -> None:
    broken = app_factory("fails", start=False, faults={"app-fails-start": True})
    started = time.monotonic()
    with pytest.raises(RehearsalError, match="app exited with code"):
        broken.process.start(timeout=30)
    assert time.monotonic() - started < 30 and not broken.process.running
    assert any(line["level"] == "CRITICAL" and "app-fails-start" in line["msg"] for line in broken.log_lines())
