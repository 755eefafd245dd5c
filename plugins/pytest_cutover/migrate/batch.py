"""One page of points on its way from the reader to the writer: screened, encoded, digested.

Pure (numpy + :mod:`digest`): the reader turns a page of raw points into a
:class:`Batch` that carries, for each point it will stage, the exact bytes that go
into COPY and their sha256, and the points it refuses before any database sees
them (wrong dimension, NaN/inf, duplicate id, unusable id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_cutover.migrate.accounting import DUPLICATE_ID, NO_MATCHING_ROW, NON_FINITE, WRONG_DIMENSION
from pytest_cutover.migrate.digest import encode_matrix, vector_digest

__all__ = ["Batch", "RawPoint", "normalise_key", "screen_page"]

# (point id, payload org id, vector values) as a source yields them.
RawPoint = tuple[Any, Any, Any]


def normalise_key(point_id: Any, key_kind: str = "uuid") -> str | None:
    """The point id as the text the target's key column prints, or ``None`` when it cannot be one."""
    if key_kind == "uuid":
        try:
            return str(uuid.UUID(str(point_id)))
        except ValueError:
            return None
    if key_kind == "int":
        try:
            return str(int(point_id))
        except (TypeError, ValueError):
            return None
    return str(point_id)


@dataclass
class Batch:
    """What the writer stages for one page.  ``keys[i]`` goes with ``binaries[i]``/``digests[i]``
    (``None`` for a point refused here, whose reason is ``reasons[i]``)."""

    seq: int
    keys: list[str] = field(default_factory=list)
    orgs: list[str | None] = field(default_factory=list)
    binaries: list[bytes | None] = field(default_factory=list)
    digests: list[bytes | None] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    unstaged: list[tuple[str, str]] = field(default_factory=list)  # (id, reason): never reaches the database
    next_offset: Any = None
    last_key: str | None = None
    read_s: float = 0.0  # screening: float32 conversion, encoding, digests
    scroll_s: float = 0.0  # the source call that returned this page
    blocked_s: float = 0.0  # the reader waiting on a full queue before it could send the previous batch

    @property
    def size(self) -> int:
        """Points read in this page (staged and unstaged)."""
        return len(self.keys) + len(self.unstaged)


def _as_matrix(vectors: Sequence[Any], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows for the vectors of length ``dim`` and a mask of which inputs those are.

    A page whose vectors all have the right length converts in one C-level call
    (no per-row Python work); only a page with a wrong-length vector goes row by row.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # a value beyond float32 becomes inf: refused as such
        return _convert(vectors, dim)


def _convert(vectors: Sequence[Any], dim: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim == 2 and matrix.shape[1] == dim:
            return matrix, np.ones(len(vectors), dtype=bool)
    except (ValueError, TypeError):
        pass
    ok = np.array([v is not None and np.ndim(v) == 1 and len(v) == dim for v in vectors], dtype=bool)
    rows = [np.asarray(v, dtype=np.float32) for v, good in zip(vectors, ok, strict=True) if good]
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return matrix, ok


def screen_page(points: Sequence[RawPoint], *, seq: int, dim: int, seen: set[str], key_kind: str = "uuid",
                next_offset: Any = None) -> Batch:
    """Turn one page of raw points into a :class:`Batch`; ``seen`` (ids read so far) is updated."""
    batch = Batch(seq=seq, next_offset=next_offset)
    if not points:
        return batch
    matrix, right_dim = _as_matrix([p[2] for p in points], dim)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(matrix).all(axis=1) if matrix.size else np.ones(len(matrix), dtype=bool)
    binaries: Iterable[bytes] = iter(encode_matrix(matrix))
    finite_iter = iter(finite)
    for index, (point_id, payload_org, _) in enumerate(points):
        good_dim = bool(right_dim[index])
        binary = next(binaries) if good_dim else None
        is_finite = bool(next(finite_iter)) if good_dim else False
        key = normalise_key(point_id, key_kind)
        if key is None:
            batch.unstaged.append((str(point_id), NO_MATCHING_ROW))
            continue
        if key in seen:
            batch.unstaged.append((key, DUPLICATE_ID))
            continue
        seen.add(key)
        batch.last_key = key
        reason = None if good_dim and is_finite else (WRONG_DIMENSION if not good_dim else NON_FINITE)
        batch.keys.append(key)
        batch.orgs.append(None if payload_org is None else str(payload_org))
        batch.reasons.append(reason)
        batch.binaries.append(binary if reason is None else None)
        batch.digests.append(vector_digest(binary) if reason is None and binary is not None else None)
    return batch
