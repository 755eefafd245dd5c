"""Small pure statistics: percentiles, slopes and ratios over plain numbers.

Percentiles use the **nearest-rank** method (no interpolation): the p-th
percentile of n sorted values is the value at rank ``ceil(p / 100 * n)``.  It
always returns a latency that was actually measured, and for the runbook's
"p95 < 100 ms" it means: at least 95% of the requests took the figure or less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["least_squares_slope", "median", "percentile", "ratio"]


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (``None`` when empty).

    >>> percentile([15, 20, 35, 40, 50], 30)
    20
    """
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def median(values: Sequence[float]) -> float | None:
    """The middle value (mean of the two middle values for an even count)."""
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def least_squares_slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The slope of the least-squares line through ``(xs, ys)``; ``None`` under two distinct xs."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} and {len(ys)})")
    n = len(xs)
    if n < 2:
        return None
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    var_x = sum((x - mean_x) ** 2 for x in xs)
    if var_x == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x


def ratio(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when there is nothing to divide by."""
    return part / whole if whole else None
