"""Where one pytest invocation keeps its cutover state: the stash keys and user-property names every hook
module shares, and the two helpers built only on them.

They live here, below the plugin, so that the notify and report hooks, the fixtures and the packaged suite
reach the session without importing :mod:`pytest_cutover.plugin` back.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.redact import redact_obj

__all__ = ["PROP_BLOCKED", "PROP_FIGURE", "PROP_RUNBOOK", "PROP_STAGE", "PROP_STARTED", "SESSION_KEY", "STAGE_KEY",
           "announce", "get_session"]

#: The registered ``CutoverSession`` of this invocation (see :mod:`pytest_cutover.plugin`).
SESSION_KEY = pytest.StashKey[Any]()
#: An item's stage, set at collection.
STAGE_KEY = pytest.StashKey[str]()
# Facts a test report carries to the controller (xdist) in ``user_properties``.
PROP_STAGE, PROP_BLOCKED, PROP_FIGURE, PROP_RUNBOOK, PROP_STARTED = (
    "cutover_stage", "cutover_blocked", "cutover_figure", "cutover_runbook", "cutover_started")


def get_session(config: pytest.Config) -> Any:
    """The per-run state of this pytest invocation (a ``CutoverSession``)."""
    return config.stash[SESSION_KEY]


def announce(config: pytest.Config, event: str, **details: Any) -> None:
    """Tell every implementation of ``pytest_cutover_event`` that ``event`` happened (details redacted)."""
    config.hook.pytest_cutover_event(config=config, event=event, details=redact_obj(details))
