"""pgvector's binary form and its digest: one pure function for both sides (no database)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pgvector import Vector

from pytest_cutover.migrate.digest import decode_vector, encode_matrix, encode_vector, vector_digest


def test_encoding_is_big_endian_dim_zero_and_float32s():
    assert encode_vector(np.array([1.0, -2.0], dtype=np.float32)).hex() == "000200003f800000c0000000"


def test_encoding_equals_pgvectors_own_codec():
    rng = np.random.default_rng(3)
    values = rng.standard_normal(1536).astype(np.float32)
    assert encode_vector(values) == Vector(values).to_binary()


def test_matrix_encoding_equals_row_encoding_and_round_trips():
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((5, 7)).astype(np.float32)
    rows = encode_matrix(matrix)
    assert rows == [encode_vector(r) for r in matrix]
    assert all(np.array_equal(decode_vector(b), r) for b, r in zip(rows, matrix, strict=True))
    assert encode_matrix(np.zeros((0, 7), dtype=np.float32)) == []


def test_digest_is_sha256_of_the_binary_form():
    binary = encode_vector(np.array([0.5], dtype=np.float32))
    assert vector_digest(binary) == hashlib.sha256(bytes.fromhex("000100003f000000")).digest()


def test_one_flipped_bit_changes_the_digest():
    values = np.ones(4, dtype=np.float32)
    flipped = values.copy()
    flipped.view(np.uint32)[2] ^= 1
    assert vector_digest(encode_vector(values)) != vector_digest(encode_vector(flipped))


def test_float64_is_refused_rather_than_silently_rounded():
    with pytest.raises(ValueError) as err:
        encode_vector(np.ones(3))
    assert str(err.value) == "expected float32 values, got float64"


@pytest.mark.parametrize(("values", "message"), [
    (np.ones((2, 2), dtype=np.float32), "expected a 1-d vector, got 2 dimensions"),
    (np.ones(0, dtype=np.float32), "vector dimension 0 is outside 1..16000"),
    (np.ones(16001, dtype=np.float32), "vector dimension 16001 is outside 1..16000"),
])
def test_bad_vectors_are_refused_with_exact_messages(values, message):
    with pytest.raises(ValueError) as err:
        encode_vector(values)
    assert str(err.value) == message


@pytest.mark.parametrize(("binary", "message"), [
    (b"\x00", "vector binary form is 1 bytes, shorter than its 4-byte header"),
    (bytes.fromhex("00010001") + b"\0" * 4, "vector binary form has 1 in its unused field, expected 0"),
    (bytes.fromhex("00020000") + b"\0" * 4, "vector binary form is 8 bytes, expected 12 for dimension 2"),
])
def test_bad_binary_forms_are_refused_with_exact_messages(binary, message):
    with pytest.raises(ValueError) as err:
        decode_vector(binary)
    assert str(err.value) == message
