"""The reference app's own tests: settings, faults, logs, the RLS context statement, health and admin.

They need no database: endpoints that touch it are exercised by the rehearsal itself.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from app import logging as applog
from app.config import load_settings, read_env_file
from app.database import connect_args
from app.faults import Faults, load_faults
from app.security import bearer_matches, set_rls_context


def test_env_file_parsing(tmp_path):
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nexport A=1\nB='two words'\nC=x # trailing comment\nD=\"q#x\"\nnot a line\n", encoding="utf-8"
    )
    assert read_env_file(env) == {"A": "1", "B": "two words", "C": "x", "D": "q#x"}
    assert read_env_file(tmp_path / "missing") == {}


def test_settings_process_environment_wins(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("VECTOR_BACKEND=qdrant\nMAINTENANCE_MODE=true\nQDRANT_COLLECTION=c1\n", encoding="utf-8")
    monkeypatch.delenv("VECTOR_BACKEND", raising=False)
    settings = load_settings(env)
    assert (settings.vector_backend, settings.maintenance_mode, settings.qdrant_collection) == ("qdrant", True, "c1")
    monkeypatch.setenv("VECTOR_BACKEND", "pgvector")
    assert load_settings(env).vector_backend == "pgvector"


def test_unknown_vector_backend_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VECTOR_BACKEND", "faiss")
    with pytest.raises(ValueError, match="VECTOR_BACKEND"):
        load_settings(tmp_path / ".env")


def test_engine_disables_both_statement_caches(tmp_path):
    args = connect_args(load_settings(tmp_path / ".env"))
    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0


def test_faults_file(tmp_path):
    path = tmp_path / "faults.json"
    assert load_faults(path) == Faults()
    path.write_text(json.dumps({"error-spike": 0.3, "slow-search": 250, "cross-org-leak": True}), encoding="utf-8")
    faults = load_faults(path)
    assert (faults.error_spike, faults.slow_search_ms, faults.cross_org_leak) == (0.3, 250.0, True)
    path.write_text("{not json", encoding="utf-8")
    assert load_faults(path) == Faults()


def test_log_lines_are_json_with_category(tmp_path):
    log_file = tmp_path / "app.log"
    applog.configure_logging(log_file)
    applog.log_event(logging.getLogger("app.test"), logging.ERROR,
                     "database connection error: postgresql://u:hunter2@h/db refused",
                     category=applog.DB_CONNECTION, path="/api/threads", status=503, ms=1.234)
    line = json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])
    assert line["level"] == "ERROR" and line["category"] == "database-connection" and line["status"] == 503
    assert "hunter2" not in line["msg"] and set(line) == {"ts", "level", "logger", "msg", "category", "path",
                                                          "status", "ms"}


class _RecordingSession:
    def __init__(self):
        self.calls = []

    async def execute(self, statement, params=None):
        self.calls.append((str(statement), params))


def test_rls_context_is_transaction_local_and_bound():
    db = _RecordingSession()
    asyncio.run(set_rls_context(db, "org_0001", "user_0001_01"))
    sql, params = db.calls[0]
    assert "set_config('app.current_org_id', :org_id, true)" in sql
    assert "set_config('app.current_user_id', :user_id, true)" in sql
    assert params == {"org_id": "org_0001", "user_id": "user_0001_01"}


def test_bearer_token_check():
    assert bearer_matches("Bearer abc", "abc")
    assert not bearer_matches("Bearer abd", "abc")
    assert not bearer_matches(None, "abc")
    assert not bearer_matches("Bearer ", "")


def _call(method, url, **kwargs):
    from app.main import app

    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def test_health_and_maintenance_endpoint():
    assert _call("GET", "/health").json() == {"status": "healthy"}
    assert _call("POST", "/admin/maintenance/enable").status_code == 401
    admin = {"Authorization": "Bearer test-admin-token"}
    assert _call("POST", "/admin/maintenance/enable", headers=admin).json() == {"maintenance": True}
    response = _call("GET", "/health")
    assert (response.status_code, response.json()) == (503, {"status": "maintenance"})
    assert _call("POST", "/admin/maintenance/disable", headers=admin).json() == {"maintenance": False}
    assert _call("GET", "/health").json() == {"status": "healthy"}


def test_api_requires_the_token_and_an_org():
    assert _call("GET", "/api/threads", headers={"x-org-id": "org_0001"}).status_code == 401
    response = _call("GET", "/api/threads", headers={"Authorization": "Bearer test-api-token"})
    assert response.status_code == 400


def test_storage_errors_name_the_object_and_the_answer():
    from types import SimpleNamespace

    from app.storage import StorageAccessError, StorageService

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/down"):
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(404 if request.method == "GET" else 200, text="no such object")

    service = StorageService(SimpleNamespace(storage_url="http://storage.test", storage_key="k"))
    service._client = httpx.AsyncClient(base_url="http://storage.test/", transport=httpx.MockTransport(answer))

    async def run():
        with pytest.raises(StorageAccessError, match=r"storage answered 404 for b/x\.pdf: no such object"):
            await service.download("b", "x.pdf")
        with pytest.raises(StorageAccessError, match="storage request for b/down failed: ConnectError: refused"):
            await service.download("b", "down")
        with pytest.raises(StorageAccessError, match="storage upload of b/down failed: ConnectError: refused"):
            await service.upload("b", "down", b"1", "text/plain")
        await service.upload("b", "x.pdf", b"1", "text/plain")
        await service.aclose()

    asyncio.run(run())
