"""Kept for the modules that still import it from here: the one helper is :mod:`pytest_cutover.util.aio`."""

from __future__ import annotations

from pytest_cutover.util.aio import run_sync

__all__ = ["run_sync"]
