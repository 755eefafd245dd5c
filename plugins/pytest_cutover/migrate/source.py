"""Where points come from: a :class:`PointSource` (Qdrant, or an in-memory fake for tests).

Qdrant is read with ``scroll`` paged by ``next_page_offset``: the cursor works for
integer and UUID ids alike (never compute integer offsets).  Scroll costs ~10 ms per
call in local mode, so pages are large.  Vectors become one float32 matrix per page
in :func:`~pytest_cutover.migrate.batch.screen_page`.  Local mode locks its folder to
one process: :meth:`QdrantSource.close` releases it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_cutover.migrate.batch import RawPoint
from pytest_cutover.migrate.errors import SourceError
from pytest_cutover.redact import redact

__all__ = ["FakeSource", "PointSource", "QdrantSource", "SourceSpec", "offset_from_text", "offset_to_text"]


class PointSource(Protocol):
    """A collection of points with an id, a payload org id and a dense vector."""

    def dimension(self) -> int: ...
    def count(self) -> int: ...
    def pages(self, start: Any, page_size: int) -> Iterator[tuple[list[RawPoint], Any]]: ...
    def search(self, vector: Sequence[float], org_id: str | None, k: int) -> list[str]: ...
    def close(self) -> None: ...


def offset_to_text(offset: Any) -> str | None:
    """A scroll cursor as text for the checkpoint (``i:`` marks an integer id)."""
    if offset is None:
        return None
    return f"i:{offset}" if isinstance(offset, int) else str(offset)


def offset_from_text(text: str | None) -> Any:
    if text is None:
        return None
    return int(text[2:]) if text.startswith("i:") else text


@dataclass(frozen=True)
class SourceSpec:
    """How to open a source, picklable so a reader process can open it itself."""

    collection: str
    path: str | None = None
    url: str | None = None
    api_key: str | None = None
    org_field: str = "org_id"
    timeout_s: float = 10.0
    fake: FakeSource | None = None

    def open(self) -> PointSource:
        if self.fake is not None:
            self.fake.wait_until_openable()
            return self.fake
        return QdrantSource(self)

    def where(self) -> str:
        return redact(self.url or self.path or "(no location)")


class QdrantSource:
    """A Qdrant collection, in local mode (``path``) or on a server (``url``)."""

    def __init__(self, spec: SourceSpec) -> None:
        from qdrant_client import QdrantClient

        if not spec.path and not spec.url:
            raise SourceError("no qdrant location configured",
                              hint="set source.qdrant_path (local mode) or source.qdrant_url in the config")
        self.spec = spec
        try:
            if spec.path:
                self.client = QdrantClient(path=spec.path)
            else:
                self.client = QdrantClient(url=spec.url, api_key=spec.api_key, timeout=int(max(1, spec.timeout_s)))
        except RuntimeError as exc:  # local mode: "Storage folder ... is already accessed by another instance"
            raise SourceError(f"cannot open qdrant at {spec.where()}: {redact(exc)}",
                              hint="stop the process holding the local-mode folder (the app closes it in "
                                   "maintenance) or point source.qdrant_url at a server") from None
        try:
            exists = self.client.collection_exists(spec.collection)
        except Exception as exc:  # network errors come in many driver types
            self.close()
            raise SourceError(f"qdrant at {spec.where()} is unreachable: {type(exc).__name__}: {redact(exc)}",
                              hint="check source.qdrant_url and that the server is up") from None
        if not exists:
            names = sorted(c.name for c in self.client.get_collections().collections)
            self.close()
            raise SourceError(f"qdrant collection {spec.collection!r} does not exist at {spec.where()}",
                              hint="collections there: " + (", ".join(names) or "none") + "; set source.collection")

    def dimension(self) -> int:
        params = self.client.get_collection(self.spec.collection).config.params.vectors
        size = getattr(params, "size", None)
        if size is None:
            raise SourceError(f"qdrant collection {self.spec.collection!r} has named vectors, not one dense vector",
                              hint="the engine migrates a single unnamed dense vector per point")
        return int(size)

    def count(self) -> int:
        return int(self.client.count(self.spec.collection, exact=True).count)

    def pages(self, start: Any, page_size: int) -> Iterator[tuple[list[RawPoint], Any]]:
        offset = start
        org_field = self.spec.org_field
        while True:
            # only the payload field the migration checks: the rest is never used, and local mode deep-copies it
            records, next_offset = self.client.scroll(self.spec.collection, limit=page_size, offset=offset,
                                                      with_payload=[org_field], with_vectors=True)
            page = [(r.id, (r.payload or {}).get(org_field), r.vector) for r in records]
            yield page, next_offset
            if next_offset is None or not records:
                return
            offset = next_offset

    def search(self, vector: Sequence[float], org_id: str | None, k: int) -> list[str]:
        """Exact (brute-force) top-k ids, filtered to one org: the reference for search parity."""
        from qdrant_client import models

        query_filter = None
        if org_id is not None:
            query_filter = models.Filter(must=[models.FieldCondition(key=self.spec.org_field,
                                                                     match=models.MatchValue(value=org_id))])
        # local mode is always brute force (and warns about search_params); a server needs exact=True
        params = None if self.spec.path else models.SearchParams(exact=True)
        response = self.client.query_points(self.spec.collection, query=list(map(float, vector)),
                                            query_filter=query_filter, limit=k, search_params=params)
        return [str(p.id) for p in response.points]

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
            self.client = None


@dataclass
class FakeSource:
    """An in-memory collection for unit tests: points ``(id, org, vector)`` sorted by id."""

    dim: int
    points: list[RawPoint] = field(default_factory=list)
    closed: bool = False
    open_after: str | None = None  # a slow-opening source: opening waits until this file exists
    open_timeout_s: float = 30.0

    def wait_until_openable(self) -> None:
        """Block until ``open_after`` exists (tests use it to order the reader's start-up against the writer)."""
        if self.open_after is None:
            return
        deadline = time.monotonic() + self.open_timeout_s
        while not os.path.exists(self.open_after):
            if time.monotonic() > deadline:
                raise SourceError(f"fake source: {self.open_after} did not appear within {self.open_timeout_s:g}s",
                                  hint="nothing released the source; the writer may be waiting for the reader")
            time.sleep(0.01)

    def dimension(self) -> int:
        return self.dim

    def count(self) -> int:
        return len(self.points)

    def pages(self, start: Any, page_size: int) -> Iterator[tuple[list[RawPoint], Any]]:
        ordered = sorted(self.points, key=lambda p: str(p[0]))
        begin = 0 if start is None else next((i for i, p in enumerate(ordered) if str(p[0]) >= str(start)),
                                             len(ordered))
        for i in range(begin, len(ordered), page_size):
            page = ordered[i:i + page_size]
            nxt = ordered[i + page_size][0] if i + page_size < len(ordered) else None
            yield page, nxt
        if begin >= len(ordered):
            yield [], None

    def search(self, vector: Sequence[float], org_id: str | None, k: int) -> list[str]:
        import numpy as np

        q = np.asarray(vector, dtype=np.float64)
        scored = []
        for pid, org, vec in self.points:
            if org_id is not None and org != org_id:
                continue
            v = np.asarray(vec, dtype=np.float64)
            if v.shape != q.shape or not np.isfinite(v).all():
                continue
            scored.append((-float(v @ q / (np.linalg.norm(v) * np.linalg.norm(q) or 1.0)), str(pid)))
        return [pid for _, pid in sorted(scored)[:k]]

    def close(self) -> None:
        self.closed = True
