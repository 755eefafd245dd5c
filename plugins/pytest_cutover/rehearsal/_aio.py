"""Run a coroutine to completion from synchronous code, also when an event loop is already running.

Why: readiness probes and fault planters are synchronous (they are called from ``ManagedProcess``
polling, click commands and pytest hooks), but some callers live inside pytest-asyncio's loop,
where ``asyncio.run`` refuses to start.  Then the coroutine runs on a fresh loop in a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, in a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
