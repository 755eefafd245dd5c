"""Where every point went: migrated, rejected (with a reason) or, for rows, missing.

Pure bookkeeping: no driver, no I/O.  ``migrated + rejected == points`` always;
a row with a ``vector_id`` but no point is *missing*.  The sync stage passes when
``migrated / (points + missing)`` reaches the tolerance: 100% unless the config
lowers it, never below the runbook's 95% floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DUPLICATE_ID",
    "DUPLICATE_ROW_KEY",
    "MISSING",
    "NON_FINITE",
    "NO_MATCHING_ROW",
    "ORG_MISMATCH",
    "REASONS",
    "SAMPLE_LIMIT",
    "TOLERANCE_FLOOR",
    "WRONG_DIMENSION",
    "Accounting",
    "AccountingVerdict",
    "bucket_line",
    "check_tolerance",
]

NO_MATCHING_ROW = "no-matching-row"
WRONG_DIMENSION = "wrong-dimension"
NON_FINITE = "nan-or-inf"
DUPLICATE_ID = "duplicate-id"  # the source holds the same point id twice
DUPLICATE_ROW_KEY = "duplicate-row-key"  # the target holds more than one row with the point's key
ORG_MISMATCH = "org-mismatch"
REASONS = (NO_MATCHING_ROW, WRONG_DIMENSION, NON_FINITE, DUPLICATE_ID, DUPLICATE_ROW_KEY, ORG_MISMATCH)
MISSING = "missing"
SAMPLE_LIMIT = 5
TOLERANCE_FLOOR = 0.95  # the runbook's "95% success rate" is the lowest a user may choose


def check_tolerance(tolerance: float) -> float:
    """The tolerance as a fraction in ``[0.95, 1.0]``, or a ``ValueError`` naming the value."""
    if not TOLERANCE_FLOOR <= tolerance <= 1.0:
        raise ValueError(f"migration tolerance {tolerance} is outside [{TOLERANCE_FLOOR}, 1.0]")
    return tolerance


def bucket_line(bucket: str, count: int, noun: str, label: str, keys: list[str], *, what: str = "") -> str:
    """``"<bucket>: <count> <noun>s<what>; first <label>: k1, k2"``: one bucket of a migration, named by keys."""
    return f"{bucket}: {count} {noun}{'s' if count != 1 else ''}{what}; first {label}: {', '.join(keys)}"


@dataclass(frozen=True)
class AccountingVerdict:
    """The outcome of :meth:`Accounting.check`: ``ok`` and the one line that explains it."""

    ok: bool
    message: str


@dataclass
class Accounting:
    """Counts and sample ids per bucket for one migration kind (``vectors``)."""

    points: int = 0
    migrated: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    @property
    def balanced(self) -> bool:
        """Every point is in exactly one bucket."""
        return self.migrated + self.rejected == self.points

    def _sample(self, bucket: str, key: str) -> None:
        keep = self.samples.setdefault(bucket, [])
        if len(keep) < SAMPLE_LIMIT and key not in keep:
            keep.append(key)

    def add_migrated(self, count: int) -> None:
        """``count`` points were read and now sit in their rows."""
        self.points += count
        self.migrated += count

    def reject(self, reason: str, key: str) -> None:
        """One point was read and refused for ``reason`` (one of :data:`REASONS`)."""
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}; known: {', '.join(REASONS)}")
        self.points += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        self._sample(reason, key)

    def set_missing(self, count: int, sample_keys: list[str]) -> None:
        """Rows that have a vector id but no point in the source."""
        self.missing = count
        self.samples.pop(MISSING, None)
        for key in sample_keys[:SAMPLE_LIMIT]:
            self._sample(MISSING, key)

    @property
    def success_rate(self) -> float:
        denominator = self.points + self.missing
        return 1.0 if denominator == 0 else self.migrated / denominator

    def check(self, tolerance: float = 1.0) -> AccountingVerdict:
        """Pass when the books balance and ``migrated / (points + missing) >= tolerance``."""
        check_tolerance(tolerance)
        if not self.balanced:
            return AccountingVerdict(False, f"accounting does not balance: {self.migrated} migrated + "
                                            f"{self.rejected} rejected != {self.points} points")
        summary = f"{self.migrated} of {self.points} points migrated"
        if self.rejected:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.rejected_by_reason.items()))
            summary += f", {self.rejected} rejected ({reasons})"
        if self.missing:
            summary += f", {self.missing} row{'s' if self.missing != 1 else ''} missing a point"
        rate = self.success_rate
        if rate + 1e-12 < tolerance:
            return AccountingVerdict(False, f"{summary}: success {rate:.2%} is below the required {tolerance:.2%}")
        return AccountingVerdict(True, f"{summary}: success {rate:.2%} (required {tolerance:.2%})")

    def sample_lines(self, row_key: str = "row key") -> list[str]:
        """One line per non-empty bucket naming its first keys: point ids for rejections, ``row_key`` for rows
        missing a point (counts alone send the operator to the database to find out which)."""
        lines = [bucket_line(reason, n, "point", "point ids", self.samples.get(reason, []))
                 for reason, n in sorted(self.rejected_by_reason.items()) if n]
        if self.missing:
            lines.append(bucket_line(MISSING, self.missing, "row", row_key, self.samples.get(MISSING, []),
                                     what=" without a point"))
        return lines

    def figures(self) -> dict[str, Any]:
        """The ledger/report figures this bookkeeping owns (ints, plus sample ids per bucket)."""
        return {
            "points": self.points,
            "migrated": self.migrated,
            "rejected": self.rejected,
            "missing": self.missing,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "samples": {k: list(v) for k, v in sorted(self.samples.items())},
        }

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot stored with each checkpoint, so a resumed run reports the totals."""
        return {"points": self.points, "migrated": self.migrated, "rejected_by_reason": dict(self.rejected_by_reason),
                "samples": {k: list(v) for k, v in self.samples.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> Accounting:
        if not state:
            return cls()
        return cls(points=int(state.get("points", 0)), migrated=int(state.get("migrated", 0)),
                   rejected_by_reason={k: int(v) for k, v in (state.get("rejected_by_reason") or {}).items()},
                   samples={k: list(v) for k, v in (state.get("samples") or {}).items() if k != MISSING})
