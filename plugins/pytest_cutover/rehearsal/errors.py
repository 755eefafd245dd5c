"""Errors raised while building or running a rehearsal stack."""

from __future__ import annotations

from pytest_cutover.errors import CutoverError

__all__ = ["RehearsalError"]


class RehearsalError(CutoverError, RuntimeError):
    """A part of the rehearsal stack failed to start, answer or stop (the message names the part)."""
