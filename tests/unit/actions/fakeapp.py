"""A tiny stand-in for the backend, served by uvicorn over TLS: /health, the admin maintenance endpoints,
/api/threads.  It reads ``$FAKEAPP_DIR/.env`` once at start, as the real app reads its .env.

Knobs in the .env: MAINTENANCE_MODE (env method), MAINTENANCE_FILE (file method), ADMIN_TOKEN, API_TOKEN,
DATABASE_URL (threads are counted there, connecting per request), HOLD_DB_CONNECTION=true (keep one
connection open with application_name=fakeapp while running), IGNORE_MAINTENANCE=true (/health never
reports maintenance: the maintenance-ignored fault), APP_FAILS_START=true (startup raises),
FAIL_START_IF_URL_CONTAINS=text (startup raises while DATABASE_URL contains it: a config that cannot start),
THREADS_EXTRA=n (the threads count is off by n), LOG_FILE.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

APP_DIR = Path(os.environ["FAKEAPP_DIR"])


def _read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        out[key.strip()] = value.strip().strip('"').strip("'")
    return out


ENV = _read_env(APP_DIR / ".env")
STATE = {"maintenance": ENV.get("MAINTENANCE_MODE", "false").lower() == "true"}


def log(level: str, msg: str) -> None:
    if ENV.get("LOG_FILE"):
        with open(ENV["LOG_FILE"], "a") as fh:
            fh.write(json.dumps({"ts": time.time(), "level": level, "logger": "fakeapp", "msg": msg}) + "\n")


def _dsn() -> str:
    scheme, sep, rest = ENV["DATABASE_URL"].partition("://")
    return scheme.split("+")[0] + sep + rest


def in_maintenance() -> bool:
    if ENV.get("IGNORE_MAINTENANCE") == "true":
        return False
    flag_file = ENV.get("MAINTENANCE_FILE")
    return STATE["maintenance"] or bool(flag_file and Path(flag_file).exists())


async def health(request: Request) -> JSONResponse:
    if in_maintenance():
        return JSONResponse({"status": "maintenance"}, status_code=503)
    return JSONResponse({"status": "healthy"})


def _authorised(request: Request, key: str) -> bool:
    return request.headers.get("authorization") == f"Bearer {ENV.get(key)}"


async def admin(request: Request) -> JSONResponse:
    if not _authorised(request, "ADMIN_TOKEN"):
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    STATE["maintenance"] = request.path_params["verb"] == "enable"
    log("INFO", f"maintenance {request.path_params['verb']}d")
    return JSONResponse({"maintenance": STATE["maintenance"]})


async def threads(request: Request) -> JSONResponse:
    if not _authorised(request, "API_TOKEN"):
        return JSONResponse({"error": "unauthorised"}, status_code=401)
    if in_maintenance():
        return JSONResponse({"status": "maintenance"}, status_code=503)
    import asyncpg

    org = request.headers.get("x-org-id", "")
    try:
        conn = await asyncpg.connect(_dsn(), timeout=5)
    except Exception as exc:
        log("ERROR", f"database connection error: {exc.__class__.__name__}")
        return JSONResponse({"error": "database unavailable"}, status_code=500)
    try:
        rows = await conn.fetch("SELECT id::text, title FROM threads WHERE org_id = $1 ORDER BY id", org)
    finally:
        await conn.close()
    extra = int(ENV.get("THREADS_EXTRA", "0"))  # a wrong answer (e.g. rows of another org): the count is off
    return JSONResponse({"org_id": org, "threads": [dict(r) for r in rows], "count": len(rows) + extra})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
    log("INFO", f"starting (maintenance={STATE['maintenance']})")
    bad = ENV.get("FAIL_START_IF_URL_CONTAINS")
    if ENV.get("APP_FAILS_START") == "true" or (bad and bad in ENV.get("DATABASE_URL", "")):
        log("ERROR", "startup failed: APP_FAILS_START is set")
        raise RuntimeError("startup failed: APP_FAILS_START is set")
    held = None
    if ENV.get("HOLD_DB_CONNECTION") == "true":
        import asyncpg

        held = await asyncpg.connect(_dsn(), server_settings={"application_name": "fakeapp"})
    try:
        yield
    finally:
        if held is not None:
            await held.close()
        log("INFO", "stopped")


app = Starlette(routes=[Route("/health", health), Route("/admin/maintenance/{verb:str}", admin, methods=["POST"]),
                        Route("/api/threads", threads)], lifespan=lifespan)
