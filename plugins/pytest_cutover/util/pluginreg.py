"""Registering a hook object with pytest once per process, whoever asks first.

Why: notify and report each register their hook class from their own ``pytest_configure`` (so that
neither imports the plugin module back); both need the same "return the registered one, else
register a new one" step, under a fixed name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["register_once"]

P = TypeVar("P")


def register_once(config: pytest.Config, name: str, factory: Callable[[pytest.Config], P]) -> P:
    """The plugin registered as ``name``, or a new ``factory(config)`` registered under it (idempotent)."""
    existing = config.pluginmanager.get_plugin(name)
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    plugin = factory(config)
    config.pluginmanager.register(plugin, name)
    return plugin
