"""ORM models of the tables the runbook's smoke tests query (``app.models.thread``, ``app.models.memory``)."""

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base of the app's tables."""


__all__ = ["Base"]
