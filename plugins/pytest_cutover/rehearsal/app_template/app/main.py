"""The reference backend: health, maintenance, threads, vector search and attachments.

Run it from the checkout root: ``python -m uvicorn app.main:app`` (the rehearsal adds TLS options).
Endpoints (the rehearsal's contract):

* ``GET /health``: 200 ``{"status": "healthy"}``, or 503 ``{"status": "maintenance"}``.
* ``POST /admin/maintenance/enable|disable`` with ``Authorization: Bearer $ADMIN_TOKEN``.
* ``GET /api/threads`` with ``x-org-id`` (``x-user-id`` optional) and ``Authorization: Bearer $API_TOKEN``.
* ``POST /api/search`` ``{"org_id", "vector": [...] | "fragment_id": n, "k": 10}``.
* ``GET /api/attachments/{id}`` with ``x-org-id``: the bytes, from storage when ``storage_path`` is set.

Every database transaction starts by setting the tenant with ``set_rls_context`` (``app.security``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app import logging as applog
from app.config import get_settings
from app.database import AsyncSessionLocal, engine
from app.faults import Faults, load_faults
from app.maintenance import Maintenance
from app.search import SearchUnavailable, VectorSearch
from app.security import bearer_matches, set_rls_context
from app.services.storage_service import storage_service
from app.storage import StorageAccessError

EMBEDDING_DIM = 1536
_WATCH_INTERVAL_S = 0.2
_SEEN_ORGS_MAX = 16

settings = get_settings()
maintenance = Maintenance(from_env=settings.maintenance_mode, flag_file=settings.maintenance_file)
vector_search = VectorSearch(settings.vector_backend, settings.qdrant_path, settings.qdrant_collection)
log = logging.getLogger("app")
access_log = logging.getLogger("app.access")
_seen_orgs: list[str] = []

_THREADS_OF_ORG = text("SELECT id, title FROM threads WHERE org_id = :org_id ORDER BY created_at, id")
_ALL_THREADS = text("SELECT id, title FROM threads ORDER BY created_at, id")
_ANOTHER_ORG = text("SELECT id FROM orgs WHERE id <> :org_id ORDER BY id LIMIT 1")
_ATTACHMENT = text(
    "SELECT filename, content_type, storage_path, storage_bucket, file_data FROM attachments "
    "WHERE id = :attachment_id AND org_id = :org_id"
)


class DatabaseUnavailable(ConnectionError):
    """The database cannot be reached (or the db-conn-failures fault says so)."""


class RlsContextError(RuntimeError):
    """Setting the tenant for a transaction failed."""


# ------------------------------------------------------------------------------------------------ lifecycle
async def _check_database() -> None:
    try:
        async with asyncio.timeout(15), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        applog.log_event(log, logging.CRITICAL, f"startup failed: cannot reach the database: {_describe(exc)}",
                         category=applog.DB_CONNECTION)
        raise


_HAS_EMBEDDINGS = text(
    "SELECT EXISTS (SELECT 1 FROM information_schema.columns "
    "WHERE table_name = 'memory_fragments' AND column_name = 'embedding')"
)


async def _resolve_auto_backend() -> None:
    """VECTOR_BACKEND=auto: pgvector when the database the app runs on has the embedding column.

    The same checkout then searches Qdrant on the old database and pgvector after the switch, which
    is all the runbook's STEP 3 changes (the DATABASE_URL line).
    """
    global settings
    if settings.vector_backend != "auto":
        return
    async with asyncio.timeout(15), engine.connect() as conn:
        has_embeddings = bool((await conn.execute(_HAS_EMBEDDINGS)).scalar())
    backend = "pgvector" if has_embeddings else "qdrant"
    settings = dataclasses.replace(settings, vector_backend=backend)
    vector_search.backend = backend


async def _keep_qdrant_released() -> None:
    """Close the Qdrant local client whenever maintenance is on (see app.search for why)."""
    while True:
        must_release = maintenance.active or settings.vector_backend == "pgvector"
        if must_release and vector_search.holds_qdrant and await asyncio.to_thread(vector_search.release):
            log.info("qdrant local client closed, folder %s released (maintenance=%s, backend=%s)",
                     settings.qdrant_path, maintenance.active, settings.vector_backend)
        await asyncio.sleep(_WATCH_INTERVAL_S)


async def _preload_qdrant() -> None:
    try:
        await asyncio.to_thread(vector_search.preload)
    except Exception as exc:  # the first search will import again and report the error
        log.warning("qdrant-client could not be imported at start: %s", _describe(exc))


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    applog.configure_logging(settings.log_file)
    if load_faults(settings.faults_file).app_fails_start:
        log.critical("startup failed: configuration check raised (fault app-fails-start)")
        raise RuntimeError("startup failed (fault app-fails-start)")
    await _check_database()
    await _resolve_auto_backend()
    watcher = asyncio.create_task(_keep_qdrant_released())
    warm: asyncio.Task[None] | None = None
    if settings.vector_backend == "qdrant" and settings.qdrant_path is not None:
        warm = asyncio.create_task(_preload_qdrant())
    log.info("started: vector backend %s, maintenance %s", settings.vector_backend, maintenance.active)
    try:
        yield
    finally:
        if warm is not None:
            with contextlib.suppress(Exception):
                await warm
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        vector_search.release()
        await storage_service.aclose()
        await engine.dispose()
        log.info("stopped")


app = FastAPI(title="reference backend", lifespan=lifespan)


# ------------------------------------------------------------------------------------------------ helpers
def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _sqlstate(exc: BaseException) -> str:
    for candidate in (exc, getattr(exc, "orig", None), getattr(getattr(exc, "orig", None), "__cause__", None)):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return ""


def _is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | DatabaseUnavailable):
        return True
    state = _sqlstate(exc)
    if state.startswith(("08", "57P", "53")):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _failure(exc: Exception, path: str) -> JSONResponse:
    """Log ``exc`` with its category and turn it into the HTTP answer."""
    if _is_connection_error(exc):
        applog.log_event(log, logging.ERROR, f"database connection error: {_describe(exc)}",
                         category=applog.DB_CONNECTION, path=path, status=503)
        return JSONResponse({"detail": "database unavailable"}, status_code=503)
    if isinstance(exc, RlsContextError) or _sqlstate(exc) == "42501":
        applog.log_event(log, logging.ERROR, f"rls context error: {_describe(exc.__cause__ or exc)}",
                         category=applog.RLS_CONTEXT, path=path, status=500)
        return JSONResponse({"detail": "internal server error"}, status_code=500)
    applog.log_event(log, logging.ERROR, f"unhandled error: {_describe(exc)}", path=path, status=500)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


@contextlib.asynccontextmanager
async def tenant_transaction(org_id: str, user_id: str | None, faults: Faults) -> AsyncIterator[AsyncSession]:
    """One transaction with the tenant set (SET LOCAL semantics) before anything else runs."""
    if faults.db_conn_failures:
        raise DatabaseUnavailable("connection to the database refused (fault db-conn-failures)")
    async with AsyncSessionLocal() as db, db.begin():
        try:
            await set_rls_context(db, org_id, user_id)
        except Exception as exc:
            if _is_connection_error(exc):
                raise
            raise RlsContextError(f"could not set the tenant {org_id}") from exc
        yield db


def _require_api_token(authorization: str | None) -> None:
    if not bearer_matches(authorization, settings.api_token):
        raise HTTPException(status_code=401, detail="a valid bearer token is required")


def _remember_org(org_id: str) -> None:
    if org_id in _seen_orgs:
        _seen_orgs.remove(org_id)
    _seen_orgs.append(org_id)
    del _seen_orgs[:-_SEEN_ORGS_MAX]


def _faults(request: Request) -> Faults:
    return getattr(request.state, "faults", None) or load_faults(settings.faults_file)


# ------------------------------------------------------------------------------------------------ middleware
@app.middleware("http")
async def observe(request: Request, call_next: Any) -> Response:
    """Read the faults for this request, apply error-spike, and write one access line per request."""
    started = time.perf_counter()
    faults = load_faults(settings.faults_file)
    request.state.faults = faults
    path = request.url.path
    if path.startswith("/api/") and faults.error_spike > 0 and random.random() < faults.error_spike:
        applog.log_event(log, logging.ERROR, f"unhandled error while serving {path}: worker failure "
                         "(fault error-spike)", path=path, status=500)
        response: Response = JSONResponse({"detail": "internal server error"}, status_code=500)
    else:
        try:
            response = await call_next(request)
        except Exception as exc:
            response = _failure(exc, path)
    ms = (time.perf_counter() - started) * 1000
    applog.log_event(access_log, logging.INFO, f"{request.method} {path} {response.status_code}", path=path,
                     status=response.status_code, ms=ms)
    return response


# ------------------------------------------------------------------------------------------------ endpoints
@app.get("/health")
async def health(request: Request) -> JSONResponse:
    """Runbook STEP 4/5a: healthy, or the maintenance status while maintenance is on."""
    if maintenance.active and not _faults(request).maintenance_ignored:
        return JSONResponse({"status": "maintenance"}, status_code=503)
    return JSONResponse({"status": "healthy"})


@app.post("/admin/maintenance/{action}")
async def admin_maintenance(action: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
    """Runbook STEP 1 option B / STEP 7: switch maintenance on or off (Bearer ADMIN_TOKEN)."""
    if not bearer_matches(authorization, settings.admin_token):
        raise HTTPException(status_code=401, detail="admin token required")
    if action == "enable":
        maintenance.enable()
        if await asyncio.to_thread(vector_search.release):
            log.info("qdrant local client closed, folder %s released (maintenance)", settings.qdrant_path)
    elif action == "disable":
        maintenance.disable()
    else:
        raise HTTPException(status_code=404, detail="use /admin/maintenance/enable or /admin/maintenance/disable")
    log.warning("maintenance %sd through the admin endpoint (now %s)", action, "on" if maintenance.active else "off")
    return {"maintenance": maintenance.active}


@app.get("/api/threads")
async def list_threads(request: Request, x_org_id: str | None = Header(default=None),
                       x_user_id: str | None = Header(default=None),
                       authorization: str | None = Header(default=None)) -> Any:
    """The org's threads (runbook STEP 5f), filtered by org AND by RLS."""
    _require_api_token(authorization)
    if not x_org_id:
        raise HTTPException(status_code=400, detail="the x-org-id header is required")
    faults = _faults(request)
    try:
        async with tenant_transaction(x_org_id, x_user_id, faults) as db:
            if faults.cross_org_leak:
                rows = await _threads_with_stale_tenant(db, x_org_id)
            else:
                rows = (await db.execute(_THREADS_OF_ORG, {"org_id": x_org_id})).all()
    except Exception as exc:
        return _failure(exc, request.url.path)
    _remember_org(x_org_id)
    return {"org_id": x_org_id, "threads": [{"id": str(r.id), "title": r.title} for r in rows], "count": len(rows)}


async def _threads_with_stale_tenant(db: AsyncSession, org_id: str) -> list[Any]:
    """Fault cross-org-leak: the org filter is dropped and the tenant of an earlier request is reused."""
    other = next((o for o in reversed(_seen_orgs) if o != org_id), None)
    if other is None:
        other = (await db.execute(_ANOTHER_ORG, {"org_id": org_id})).scalar()
    if other is not None:
        await set_rls_context(db, other)
    return list((await db.execute(_ALL_THREADS)).all())


class SearchRequest(BaseModel):
    org_id: str | None = None
    vector: list[float] | None = None
    fragment_id: int | None = None
    k: int = Field(default=10, ge=1, le=100)


@app.post("/api/search")
async def search(request: Request, body: SearchRequest, x_org_id: str | None = Header(default=None),
                 x_user_id: str | None = Header(default=None),
                 authorization: str | None = Header(default=None)) -> Any:
    """Nearest memory fragments of one org (Qdrant before the switch, pgvector after)."""
    _require_api_token(authorization)
    org_id = body.org_id or x_org_id
    if not org_id:
        raise HTTPException(status_code=400, detail="org_id (body) or x-org-id (header) is required")
    if (body.vector is None) == (body.fragment_id is None):
        raise HTTPException(status_code=400, detail="give exactly one of vector or fragment_id")
    if body.vector is not None and len(body.vector) != EMBEDDING_DIM:
        raise HTTPException(status_code=400, detail=f"vector must have {EMBEDDING_DIM} dimensions, "
                                                    f"got {len(body.vector)}")
    faults = _faults(request)
    started = time.perf_counter()

    async def run() -> list[dict[str, Any]]:
        if faults.slow_search_ms:
            await asyncio.sleep(faults.slow_search_ms / 1000)
        kwargs = dict(org_id=org_id, vector=body.vector, fragment_id=body.fragment_id, k=body.k,
                      allow_qdrant=not maintenance.active)
        if settings.vector_backend == "pgvector" or body.fragment_id is not None:
            async with tenant_transaction(org_id, x_user_id, faults) as db:
                return await vector_search.search(db, **kwargs)
        return await vector_search.search(None, **kwargs)  # type: ignore[arg-type]

    try:
        results = await asyncio.wait_for(run(), timeout=settings.search_timeout_ms / 1000)
    except TimeoutError:
        ms = (time.perf_counter() - started) * 1000
        applog.log_event(log, logging.ERROR, f"vector search timed out after {ms:.0f} ms "
                         f"(limit {settings.search_timeout_ms} ms, backend {settings.vector_backend})",
                         category=applog.VECTOR_SEARCH_TIMEOUT, path=request.url.path, status=504, ms=ms)
        return JSONResponse({"detail": "vector search timed out"}, status_code=504)
    except SearchUnavailable as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503)
    except Exception as exc:
        return _failure(exc, request.url.path)
    ms = (time.perf_counter() - started) * 1000
    return {"results": results, "backend": settings.vector_backend, "ms": round(ms, 1)}


@app.get("/api/attachments/{attachment_id}")
async def download_attachment(request: Request, attachment_id: int, x_org_id: str | None = Header(default=None),
                              x_user_id: str | None = Header(default=None),
                              authorization: str | None = Header(default=None)) -> Response:
    """An attachment's bytes: from storage once migrated (storage_path set), else from ``file_data``."""
    _require_api_token(authorization)
    if not x_org_id:
        raise HTTPException(status_code=400, detail="the x-org-id header is required")
    try:
        async with tenant_transaction(x_org_id, x_user_id, _faults(request)) as db:
            row = (await db.execute(_ATTACHMENT, {"attachment_id": attachment_id, "org_id": x_org_id})).first()
    except Exception as exc:
        return _failure(exc, request.url.path)
    if row is None:
        raise HTTPException(status_code=404, detail="attachment not found")
    if row.storage_path:
        bucket = row.storage_bucket or settings.storage_bucket
        try:
            data = await storage_service.download(bucket, row.storage_path)
        except StorageAccessError as exc:
            applog.log_event(log, logging.ERROR, f"storage access error: {exc}", category=applog.STORAGE_ACCESS,
                             path=request.url.path, status=502)
            return JSONResponse({"detail": "storage unavailable"}, status_code=502)
        source = "storage"
    elif row.file_data is not None:
        data, source = bytes(row.file_data), "database"
    else:
        raise HTTPException(status_code=404, detail="attachment has no content")
    return Response(content=data, media_type=row.content_type, headers={"x-attachment-source": source})
