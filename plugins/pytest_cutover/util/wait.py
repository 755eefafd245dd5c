"""Waiting for a condition with a deadline: one helper (on tenacity) instead of a loop per caller.

Why: starting the rehearsal's processes, waiting for them to go, for a server's socket, for log lines
or for ``/health`` are the same loop: check, stop when it holds, give up at a deadline, sleep a
little (growing) in between, never past the deadline.  Each caller keeps its own error message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_exponential, wait_fixed

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float, *, pause: float = 0.05, max_pause: float | None = None) -> T:
    """Call ``check`` until it returns something truthy or ``timeout`` seconds have passed; its last result.

    The pause between calls starts at ``pause`` and doubles up to ``max_pause`` (``None``: it stays
    ``pause``), and is cut so that the last call happens at the deadline.  An exception from ``check``
    propagates at once (a caller that means "not yet" catches it inside ``check``).
    """
    base = wait_fixed(pause) if max_pause is None else wait_exponential(multiplier=pause, min=pause, max=max_pause)

    def wait(state: RetryCallState) -> float:
        return min(base(state), max(0.0, timeout - state.seconds_since_start))

    retrying = Retrying(stop=stop_after_delay(timeout), wait=wait, retry=retry_if_result(lambda value: not value),
                        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
                        reraise=True)
    return retrying(check)
