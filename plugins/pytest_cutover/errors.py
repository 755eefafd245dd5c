"""One root exception; subclasses also inherit the builtin they narrow.

Messages are lower case, name the object and the value, and carry a ``hint``
that says what to do next (after asyncpg's ``InterfaceError(msg, hint=)``).
"""

from __future__ import annotations

__all__ = ["ConfigError", "CutoverError", "LedgerError", "NotAvailableError"]


class CutoverError(Exception):
    """Base of every error pytest-cutover raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from pytest_cutover.redact import redact

        self.message = redact(message)
        self.hint = redact(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ConfigError(CutoverError, ValueError):
    """The configuration is missing, malformed or refers to an unset variable."""


class LedgerError(CutoverError, ValueError):
    """The run ledger cannot be read or written."""


class NotAvailableError(CutoverError, RuntimeError):
    """A command whose implementation has not landed in this version."""
