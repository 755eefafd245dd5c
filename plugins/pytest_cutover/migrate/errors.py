"""The migration engine's errors: each names the object and value and says what to do next."""

from __future__ import annotations

from pytest_cutover.errors import CutoverError

__all__ = ["MigrationError", "SourceError", "TargetError"]


class MigrationError(CutoverError, RuntimeError):
    """A migration cannot start or continue."""


class SourceError(MigrationError):
    """Qdrant is unreachable, the collection is missing or not what the target expects."""


class TargetError(MigrationError):
    """The target database is unreachable, refuses the credentials, or lacks a table or column."""
