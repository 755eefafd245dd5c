"""Accounting and page screening: every point in exactly one bucket (pure, no database)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from pytest_cutover.migrate.accounting import (
    DUPLICATE_ID,
    NO_MATCHING_ROW,
    NON_FINITE,
    ORG_MISMATCH,
    WRONG_DIMENSION,
    Accounting,
    check_tolerance,
)
from pytest_cutover.migrate.batch import normalise_key, screen_page
from pytest_cutover.migrate.digest import encode_vector, vector_digest


def test_clean_books_pass_at_the_default_100_percent():
    books = Accounting()
    books.add_migrated(1000)
    verdict = books.check()
    assert verdict.ok and verdict.message == "1000 of 1000 points migrated: success 100.00% (required 100.00%)"


def test_any_rejection_or_missing_row_fails_by_default_with_the_reasons():
    books = Accounting()
    books.add_migrated(997)
    books.reject(NON_FINITE, "a")
    books.reject(NON_FINITE, "b")
    books.reject(ORG_MISMATCH, "c")
    books.set_missing(1, ["d"])
    verdict = books.check()
    assert not verdict.ok
    assert verdict.message == ("997 of 1000 points migrated, 3 rejected (nan-or-inf 2, org-mismatch 1), "
                               "1 row missing a point: success 99.60% is below the required 100.00%")
    assert books.figures() == {"points": 1000, "migrated": 997, "rejected": 3, "missing": 1,
                               "rejected_by_reason": {"nan-or-inf": 2, "org-mismatch": 1},
                               "samples": {"missing": ["d"], "nan-or-inf": ["a", "b"], "org-mismatch": ["c"]}}
    assert books.balanced
    assert books.sample_lines("vector_id") == ["nan-or-inf: 2 points; first point ids: a, b",
                                               "org-mismatch: 1 point; first point ids: c",
                                               "missing: 1 row without a point; first vector_id: d"]
    assert Accounting().sample_lines() == []


def test_a_lowered_tolerance_accepts_a_few_losses_but_never_below_the_floor():
    books = Accounting()
    books.add_migrated(96)
    for i in range(4):
        books.reject(NO_MATCHING_ROW, str(i))
    assert books.check(0.95).ok
    assert not books.check(0.97).ok
    with pytest.raises(ValueError) as err:
        books.check(0.9)
    assert str(err.value) == "migration tolerance 0.9 is outside [0.95, 1.0]"
    assert check_tolerance(1.0) == 1.0


def test_samples_are_capped_and_state_round_trips():
    books = Accounting()
    for i in range(9):
        books.reject(DUPLICATE_ID, f"k{i}")
    assert books.samples[DUPLICATE_ID] == ["k0", "k1", "k2", "k3", "k4"]
    again = Accounting.from_state(books.to_state())
    assert again.figures() == books.figures()


def test_unknown_reason_and_unbalanced_books_are_reported():
    books = Accounting()
    with pytest.raises(ValueError) as err:
        books.reject("cosmic-ray", "k")
    assert str(err.value).startswith("unknown rejection reason 'cosmic-ray'; known: no-matching-row")
    books.points = 3
    assert books.check().message == "accounting does not balance: 0 migrated + 0 rejected != 3 points"


def _uuid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def test_screen_page_sorts_points_into_staged_and_refused():
    good = np.full(4, 0.5, dtype=np.float32)
    points = [
        (_uuid(1), "org_1", good.tolist()),
        (_uuid(2), "org_1", [0.1, 0.2]),                      # wrong dimension
        (_uuid(3), "org_2", [0.1, float("nan"), 0.1, 0.1]),  # NaN
        (_uuid(4), None, [1e39, 0.0, 0.0, 0.0]),            # overflows float32: inf
        (_uuid(1).upper(), "org_1", good.tolist()),         # the same id spelled differently
        (17, "org_1", good.tolist()),                       # not a uuid: cannot match a uuid key
    ]
    seen: set[str] = set()
    batch = screen_page(points, seq=0, dim=4, seen=seen, next_offset="next")
    assert batch.keys == [_uuid(1), _uuid(2), _uuid(3), _uuid(4)]
    assert batch.reasons == [None, WRONG_DIMENSION, NON_FINITE, NON_FINITE]
    assert batch.unstaged == [(_uuid(1), DUPLICATE_ID), ("17", NO_MATCHING_ROW)]
    assert batch.binaries[0] == encode_vector(good) and batch.binaries[1:] == [None, None, None]
    assert batch.digests[0] == vector_digest(encode_vector(good))
    assert batch.orgs == ["org_1", "org_1", "org_2", None]
    assert batch.size == 6 and batch.last_key == _uuid(4) and batch.next_offset == "next"


def test_float64_source_values_are_digested_as_the_float32_actually_sent():
    # qdrant local mode returns float64 after a reopen: the digest must be of the float32 bytes we write
    value = [0.1] * 4
    batch = screen_page([(_uuid(0), "o", value)], seq=0, dim=4, seen=set())
    assert batch.digests[0] == vector_digest(encode_vector(np.array(value, dtype=np.float32)))


@pytest.mark.parametrize(("point_id", "kind", "expected"), [
    ("6F9619FF-8B86-D011-B42D-00C04FC964FF", "uuid", "6f9619ff-8b86-d011-b42d-00c04fc964ff"),
    ("nope", "uuid", None), (12, "int", "12"), ("x", "int", None), ("x", "text", "x"),
])
def test_normalise_key(point_id, kind, expected):
    assert normalise_key(point_id, kind) == expected


def test_a_point_without_a_dense_vector_is_a_wrong_dimension():
    # the rehearsal's wrong-dim-vector fault: the point carries only a legacy named vector
    batch = screen_page([(_uuid(1), "o", {"legacy-768": [0.1] * 2}), (_uuid(2), "o", [0.5] * 4)], seq=0, dim=4,
                        seen=set())
    assert batch.reasons == [WRONG_DIMENSION, None]
