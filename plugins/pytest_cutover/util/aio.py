"""Run a coroutine to completion from synchronous code, also when an event loop is already running.

Why: checks, actions, readiness probes and fault planters are synchronous (they are called from pytest
tests and hooks, click commands and ``ManagedProcess`` polling), but some callers live inside
pytest-asyncio's loop, where ``asyncio.run`` refuses to start.  Then the coroutine runs on a fresh loop
in a worker thread.  One helper for every layer (it was written three times).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """``asyncio.run(coro)`` with an optional deadline (``TimeoutError``), in a worker thread when this
    thread already runs a loop."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout) if timeout else await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, bounded()).result()
