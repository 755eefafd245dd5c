"""One pure function for both sides: sha256 of pgvector's binary form of a vector.

pgvector's ``vector_send`` writes a big-endian int16 dimension, an int16 zero and
the big-endian float32 values (pgvector src/vector.c ``vector_send``); its Python
codec ``Vector.to_binary`` writes the same bytes.  The engine digests the bytes it
hands to COPY, and the server digests ``sha256(vector_send(embedding))``: equal
digests prove the database holds exactly what was read.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

__all__ = ["BIG_ENDIAN_F32", "decode_vector", "encode_matrix", "encode_vector", "vector_digest"]

BIG_ENDIAN_F32 = np.dtype(">f4")
_MAX_DIM = 16000  # pgvector's VECTOR_MAX_DIM


def _header(dim: int) -> bytes:
    if not 1 <= dim <= _MAX_DIM:
        raise ValueError(f"vector dimension {dim} is outside 1..{_MAX_DIM}")
    return struct.pack(">HH", dim, 0)


def encode_vector(values: np.ndarray) -> bytes:
    """pgvector's binary form of one 1-d float32 vector.

    >>> encode_vector(np.array([1.0], dtype=np.float32)).hex()
    '000100003f800000'
    """
    if values.ndim != 1:
        raise ValueError(f"expected a 1-d vector, got {values.ndim} dimensions")
    if values.dtype != np.float32:
        raise ValueError(f"expected float32 values, got {values.dtype}")
    return _header(values.shape[0]) + values.astype(BIG_ENDIAN_F32).tobytes()


def encode_matrix(matrix: np.ndarray) -> list[bytes]:
    """:func:`encode_vector` for each row of a 2-d float32 matrix, byte-swapped once for the whole matrix."""
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-d matrix, got {matrix.ndim} dimensions")
    if matrix.dtype != np.float32:
        raise ValueError(f"expected float32 values, got {matrix.dtype}")
    if matrix.shape[0] == 0:
        return []
    head = _header(matrix.shape[1])
    swapped = np.ascontiguousarray(matrix, dtype=BIG_ENDIAN_F32)
    raw = swapped.tobytes()
    width = swapped.shape[1] * 4
    return [head + raw[i * width:(i + 1) * width] for i in range(swapped.shape[0])]


def decode_vector(binary: bytes) -> np.ndarray:
    """The float32 values of pgvector's binary form (inverse of :func:`encode_vector`)."""
    if len(binary) < 4:
        raise ValueError(f"vector binary form is {len(binary)} bytes, shorter than its 4-byte header")
    dim, zero = struct.unpack_from(">HH", binary)
    if zero != 0:
        raise ValueError(f"vector binary form has {zero} in its unused field, expected 0")
    if len(binary) != 4 + 4 * dim:
        raise ValueError(f"vector binary form is {len(binary)} bytes, expected {4 + 4 * dim} for dimension {dim}")
    return np.frombuffer(binary, dtype=BIG_ENDIAN_F32, offset=4).astype(np.float32)


def vector_digest(binary: bytes) -> bytes:
    """sha256 of a vector's binary form: the value the server computes as ``sha256(vector_send(v))``."""
    return hashlib.sha256(binary).digest()
