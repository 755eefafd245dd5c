"""Fixtures for the action tests live in ``action_helpers`` (a unique module name, so it never clashes)."""

from action_helpers import backend, embedded_pg, tls_files

__all__ = ["backend", "embedded_pg", "tls_files"]
