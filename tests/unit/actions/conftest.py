"""Fixtures for the action tests; they live in ``action_helpers`` beside this file."""

from .action_helpers import backend, embedded_pg, tls_files

__all__ = ["backend", "embedded_pg", "tls_files"]
