"""A loopback stand-in for the backend with the monitor-stage faults, switchable while it runs.

Endpoints follow the rehearsal contract: /health, /api/threads (x-org-id, Bearer), /api/search,
/api/attachments/{id}.  ``Faults`` mirrors FAULTS_FILE: ``error_share`` (share of /api requests
answered 500 with an ERROR log line, spread evenly), ``slow_search_ms``, ``db_conn_failures`` (every
/api request logs an asyncpg connection error and answers 500), ``cross_org_leak`` (threads and
search serve org_0002's rows), ``maintenance``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pytest_cutover.rehearsal.procs import free_port

TOKEN = "test-token-abcdef123456"
THREADS = {"org_0001": ["11111111-0000-0000-0000-000000000001", "11111111-0000-0000-0000-000000000002"],
           "org_0002": ["22222222-0000-0000-0000-000000000001"]}
FRAGMENTS = {"org_0001": [101, 102], "org_0002": [201]}


@dataclass
class Faults:
    error_share: float = 0.0
    slow_search_ms: float = 0.0
    db_conn_failures: bool = False
    cross_org_leak: bool = False
    maintenance: bool = False
    row_org_ids: bool = False  # include org_id on thread rows (the contract's rows carry id and title only)


@dataclass
class FakeApp:
    log_file: Path
    faults: Faults = field(default_factory=Faults)
    api_requests: int = 0
    seen_auth: set[str] = field(default_factory=set)

    def log(self, level: str, msg: str, **extra: object) -> None:
        with self.log_file.open("a") as fh:
            fh.write(json.dumps({"ts": time.time(), "level": level, "logger": "app", "msg": msg, **extra}) + "\n")

    def _fail(self, request: Request) -> Response | None:
        """The runtime faults every /api request goes through."""
        self.seen_auth.add(request.headers.get("authorization", ""))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"detail": "unauthorized"}, status_code=401)
        n = self.api_requests
        self.api_requests += 1
        share = self.faults.error_share
        if share and math.floor((n + 1) * share) > math.floor(n * share):
            self.log("ERROR", "injected error spike", path=request.url.path, status=500)
            return JSONResponse({"detail": "boom"}, status_code=500)
        if self.faults.db_conn_failures:
            self.log("ERROR", "asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the "
                              "middle of operation", path=request.url.path, status=500)
            return JSONResponse({"detail": "database unavailable"}, status_code=500)
        return None

    async def health(self, request: Request) -> Response:
        if self.faults.maintenance:
            return JSONResponse({"status": "maintenance"}, status_code=503)
        return JSONResponse({"status": "healthy"})

    async def threads(self, request: Request) -> Response:
        org = request.headers.get("x-org-id", "")
        failed = self._fail(request)
        if failed is not None:
            return failed
        orgs = list(THREADS) if self.faults.cross_org_leak else [org]
        rows = [{"id": tid, "title": f"thread {tid[-1]}", **({"org_id": o} if self.faults.row_org_ids else {})}
                for o in orgs for tid in THREADS.get(o, [])]
        self.log("INFO", "threads", path="/api/threads", status=200)
        return JSONResponse({"org_id": org, "threads": rows, "count": len(rows)})

    async def search(self, request: Request) -> Response:
        failed = self._fail(request)
        if failed is not None:
            return failed
        body = await request.json()
        org = body["org_id"]
        if self.faults.slow_search_ms:
            await asyncio.sleep(self.faults.slow_search_ms / 1000)
        orgs = list(FRAGMENTS) if self.faults.cross_org_leak else [org]
        results = [{"fragment_id": f, "org_id": o, "score": 0.9} for o in orgs for f in FRAGMENTS.get(o, [])]
        self.log("INFO", "search", path="/api/search", status=200)
        return JSONResponse({"results": results[: body.get("k", 10)], "backend": "pgvector", "ms": 1.0})

    async def attachment(self, request: Request) -> Response:
        failed = self._fail(request)
        if failed is not None:
            return failed
        return Response(b"%PDF-1.4 fake attachment " + request.path_params["id"].encode(),
                        media_type="application/pdf")

    def asgi(self) -> Starlette:
        return Starlette(routes=[
            Route("/health", self.health), Route("/api/threads", self.threads),
            Route("/api/search", self.search, methods=["POST"]),
            Route("/api/attachments/{id}", self.attachment),
        ])


class ServedApp:
    """Runs a :class:`FakeApp` under uvicorn on a thread; ``stop()`` ends it."""

    def __init__(self, app: FakeApp) -> None:
        self.app = app
        self.port = free_port()
        config = uvicorn.Config(app.asgi(), host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fakeapp", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise TimeoutError(f"fake app did not start on port {self.port} within {timeout} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


@contextlib.contextmanager
def serve_fake_app(folder: Path) -> Iterator[ServedApp]:
    """The fake backend on a free loopback port, logging JSON lines to ``folder/app.log``, for a with-block."""
    log = folder / "app.log"
    log.write_text("")
    served = ServedApp(FakeApp(log))
    served.start()
    try:
        yield served
    finally:
        served.stop()
