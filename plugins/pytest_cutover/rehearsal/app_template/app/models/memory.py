"""``memory_fragments``: remembered text per org/user; ``embedding`` exists on the target (pgvector) only."""

from __future__ import annotations

import datetime as dt
import uuid

from pgvector.sqlalchemy import Vector
from sqlalchemy import BigInteger, DateTime, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base

__all__ = ["MemoryFragment"]


class MemoryFragment(Base):
    __tablename__ = "memory_fragments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    thread_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    tier: Mapped[str] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    vector_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Only on the target (after the switch); querying it on the old database fails, as it would in production.
    embedding = mapped_column(Vector(1536), nullable=True)
