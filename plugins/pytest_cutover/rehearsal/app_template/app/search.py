"""Vector search: Qdrant (local mode) before the switch, pgvector after (VECTOR_BACKEND).

Qdrant's local mode keeps the collection in a folder that only ONE process may open at a time (a
second ``QdrantClient(path=...)`` raises "Storage folder ... is already accessed by another
instance").  During the cutover the migration must read that folder while the app is up, so the app:

* opens the folder lazily, on the first search that needs it (at start it only imports qdrant-client),
  so before any search the folder is free for other readers (for example a Day-7 point count);
* CLOSES it as soon as maintenance starts (a watcher in ``app.main`` checks every 0.2 s) and answers
  searches with 503 until maintenance ends;
* never opens it when VECTOR_BACKEND=pgvector (after the switch), and closes it if it was open.

Against a Qdrant server (QDRANT_URL) none of this would be needed; local mode is what the rehearsal has.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["SearchUnavailable", "VectorSearch"]

_PGVECTOR_BY_VECTOR = text(
    "SELECT id, org_id, 1 - (embedding <=> CAST(:query AS vector)) AS score FROM memory_fragments "
    "WHERE org_id = :org_id AND embedding IS NOT NULL "
    "ORDER BY embedding <=> CAST(:query AS vector) LIMIT :k"
)
_PGVECTOR_BY_FRAGMENT = text(
    "WITH q AS (SELECT embedding FROM memory_fragments WHERE id = :fragment_id AND org_id = :org_id "
    "AND embedding IS NOT NULL) "
    "SELECT m.id, m.org_id, 1 - (m.embedding <=> q.embedding) AS score FROM memory_fragments m, q "
    "WHERE m.org_id = :org_id AND m.embedding IS NOT NULL "
    "ORDER BY m.embedding <=> q.embedding LIMIT :k"
)
_VECTOR_ID_OF_FRAGMENT = text("SELECT vector_id FROM memory_fragments WHERE id = :fragment_id AND org_id = :org_id")


class SearchUnavailable(RuntimeError):
    """Search cannot run now (maintenance released the Qdrant folder, or it is not configured)."""


class VectorSearch:
    """The configured search backend; ``release()`` closes the Qdrant folder if this process holds it."""

    def __init__(self, backend: str, qdrant_path: Path | None, collection: str) -> None:
        self.backend = backend
        self.qdrant_path = qdrant_path
        self.collection = collection
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def holds_qdrant(self) -> bool:
        return self._client is not None

    @staticmethod
    def preload() -> None:
        """Import qdrant-client now (about 2 s on 2 cores) so the first search is not the slow one.

        Only the import: the folder itself stays unopened (and unlocked) until a search needs it.
        """
        import qdrant_client  # noqa: F401
        from qdrant_client import models  # noqa: F401

    def release(self) -> bool:
        """Close the Qdrant local client (releases the folder lock); True when one was open."""
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return False
        client.close()
        return True

    async def search(self, db: AsyncSession, *, org_id: str, vector: Sequence[float] | None,
                     fragment_id: int | None, k: int, allow_qdrant: bool) -> list[dict[str, Any]]:
        """Top-``k`` fragments of ``org_id`` nearest to ``vector`` (or to fragment ``fragment_id``)."""
        if self.backend == "pgvector":
            return await self._pgvector(db, org_id=org_id, vector=vector, fragment_id=fragment_id, k=k)
        if not allow_qdrant:
            raise SearchUnavailable("vector search is paused during maintenance (the Qdrant folder is released)")
        if vector is None:
            row = (await db.execute(_VECTOR_ID_OF_FRAGMENT, {"fragment_id": fragment_id, "org_id": org_id})).first()
            if row is None or row.vector_id is None:
                return []
            vector_id = str(row.vector_id)
        else:
            vector_id = None
        return await asyncio.to_thread(self._qdrant, org_id, vector, vector_id, k)

    async def _pgvector(self, db: AsyncSession, *, org_id: str, vector: Sequence[float] | None,
                        fragment_id: int | None, k: int) -> list[dict[str, Any]]:
        if vector is not None:
            literal = "[" + ",".join(repr(float(x)) for x in vector) + "]"
            result = await db.execute(_PGVECTOR_BY_VECTOR, {"query": literal, "org_id": org_id, "k": k})
        else:
            result = await db.execute(_PGVECTOR_BY_FRAGMENT, {"fragment_id": fragment_id, "org_id": org_id, "k": k})
        return [{"fragment_id": r.id, "org_id": r.org_id, "score": float(r.score)} for r in result]

    def _open(self) -> Any:
        if self.qdrant_path is None:
            raise SearchUnavailable("QDRANT_PATH is not set")
        if self._client is None:
            from qdrant_client import QdrantClient

            self._client = QdrantClient(path=str(self.qdrant_path))
        return self._client

    def _qdrant(self, org_id: str, vector: Sequence[float] | None, vector_id: str | None,
                k: int) -> list[dict[str, Any]]:
        from qdrant_client import models

        with self._lock:  # local mode is not thread-safe; release() waits for a running search
            client = self._open()
            if vector is None:
                points = client.retrieve(self.collection, ids=[vector_id], with_vectors=True)
                if not points:
                    return []
                vector = points[0].vector
            only_org = models.Filter(must=[models.FieldCondition(key="org_id",
                                                                 match=models.MatchValue(value=org_id))])
            hits = client.query_points(self.collection, query=list(vector), query_filter=only_org, limit=k,
                                       with_payload=True).points
        return [{"fragment_id": (h.payload or {}).get("fragment_id"), "org_id": (h.payload or {}).get("org_id"),
                 "score": float(h.score)} for h in hits]
