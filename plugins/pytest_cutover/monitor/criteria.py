"""The runbook's success criteria, judged at the end of the window: pure functions.

"Error rate < 1%; no RLS data leaks; vector search latency < 100 ms; storage
operations succeeding; database stable", plus memory not growing beyond a
configured slope.  Each returns a :class:`Criterion` with the measured figure in
its message, so the monitor stage's test can assert it and show the number.
Thresholds are strict: exactly 1% fails "< 1%", exactly 100 ms fails "< 100 ms".
Latency percentiles are nearest-rank (see :mod:`pytest_cutover.monitor.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pytest_cutover.monitor.samples import DB_CONNECTION, STORAGE_ACCESS, Sample
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.monitor.stats import least_squares_slope, median, percentile

__all__ = [
    "CRITERIA",
    "DATABASE_STABLE",
    "ERROR_RATE_OK",
    "MEMORY_SLOPE",
    "NO_RLS_LEAKS",
    "SEARCH_P95",
    "STORAGE_OK",
    "Criterion",
    "connection_growth",
    "database_stable",
    "error_rate_ok",
    "evaluate_criteria",
    "memory_slope",
    "memory_slope_mib_per_min",
    "no_rls_leaks",
    "search_latencies",
    "search_p95",
    "storage_ok",
]

ERROR_RATE_OK = "error-rate"
NO_RLS_LEAKS = "no-rls-leaks"
SEARCH_P95 = "vector-search-p95"
STORAGE_OK = "storage-operations"
DATABASE_STABLE = "database-stable"
MEMORY_SLOPE = "memory-slope"
CRITERIA: tuple[str, ...] = (ERROR_RATE_OK, NO_RLS_LEAKS, SEARCH_P95, STORAGE_OK, DATABASE_STABLE, MEMORY_SLOPE)
_MIB = 1024 * 1024


@dataclass(frozen=True)
class Criterion:
    """A success criterion's verdict; ``measured`` is False when there was nothing to measure."""

    name: str
    ok: bool
    figure: float | None
    message: str
    measured: bool = True


def error_rate_ok(samples: Sequence[Sample], settings: MonitorSettings) -> Criterion:
    """Probe error rate (and logged request error rate, where the app logs statuses) below ``error_rate``."""
    limit = settings.error_rate
    probes = [p for s in samples for p in s.probes]
    failed = sum(not p.ok for p in probes)
    requests = sum(s.logs.requests for s in samples)
    request_errors = sum(s.logs.request_errors for s in samples)
    if not probes and not requests:
        return Criterion(ERROR_RATE_OK, False, None, "error rate not measured: no probe or request ran", False)
    parts, rates = [], []
    if probes:
        rates.append(failed / len(probes))
        parts.append(f"probe error rate {failed / len(probes) * 100:.2f}% ({failed} of {len(probes)})")
    if requests:
        rates.append(request_errors / requests)
        parts.append(f"logged request error rate {request_errors / requests * 100:.2f}% "
                     f"({request_errors} of {requests})")
    worst = max(rates)
    ok = worst < limit
    verdict = "below" if ok else "not below"
    return Criterion(ERROR_RATE_OK, ok, worst, f"{'; '.join(parts)}: {verdict} {limit * 100:g}%")


def no_rls_leaks(samples: Sequence[Sample], settings: MonitorSettings | None = None, *,
                 prior_leaks: Sequence[str] = ()) -> Criterion:
    """No probe saw another org's rows, and no earlier stage reported a leak."""
    leaks = [p for s in samples for p in s.probes if p.leak]
    checked = sum(1 for s in samples for p in s.probes if p.kind in ("threads", "search"))
    count = len(leaks) + len(prior_leaks)
    if count:
        first = leaks[0].name if leaks else prior_leaks[0]
        return Criterion(NO_RLS_LEAKS, False, count, f"{count} RLS leak(s) (first: {first}) in {checked} "
                                                      "tenant-scoped probe results")
    if not checked:
        return Criterion(NO_RLS_LEAKS, False, 0, "no tenant-scoped probe ran: leaks not measured", False)
    return Criterion(NO_RLS_LEAKS, True, 0, f"0 RLS leaks in {checked} tenant-scoped probe results")


def search_latencies(samples: Sequence[Sample]) -> list[float]:
    """Latencies of the search probes that answered, plus those that timed out (at their timeout)."""
    return [p.latency_ms for s in samples for p in s.probes
            if p.kind == "search" and p.latency_ms is not None and (p.ok or p.timed_out)]


def search_p95(samples: Sequence[Sample], settings: MonitorSettings) -> Criterion:
    """Vector search p95 strictly below ``search_p95_ms`` (runbook: < 100 ms)."""
    values = search_latencies(samples)
    p95 = percentile(values, 95)
    if p95 is None:
        return Criterion(SEARCH_P95, False, None, "vector search p95 not measured: no search probe answered", False)
    ok = p95 < settings.search_p95_ms
    p50, p99 = percentile(values, 50), percentile(values, 99)
    return Criterion(SEARCH_P95, ok, p95, f"vector search p95 {p95:.1f} ms (p50 {p50:.1f}, p99 {p99:.1f}, "
                                          f"n={len(values)}): {'below' if ok else 'not below'} "
                                          f"{settings.search_p95_ms:g} ms")


def storage_ok(samples: Sequence[Sample], settings: MonitorSettings | None = None) -> Criterion:
    """Every attachment download succeeded and the app logged no storage access error."""
    downloads = [p for s in samples for p in s.probes if p.kind == "attachment"]
    errors = sum(s.logs.categories.get(STORAGE_ACCESS, 0) for s in samples)
    if not downloads:
        return Criterion(STORAGE_OK, errors == 0, None,
                         f"no attachment probe ran; {errors} storage access error line(s) logged", False)
    good = sum(p.ok for p in downloads)
    share = good / len(downloads)
    ok = good == len(downloads) and errors == 0
    return Criterion(STORAGE_OK, ok, share, f"{good} of {len(downloads)} attachment downloads succeeded "
                                            f"({share * 100:.1f}%); {errors} storage access error line(s) logged")


def connection_growth(values: Sequence[int]) -> float | None:
    """Median of the last third minus median of the first third (robust to pool churn)."""
    if len(values) < 2:
        return None
    third = max(1, len(values) // 3)
    return median(values[-third:]) - median(values[:third])


def database_stable(samples: Sequence[Sample], settings: MonitorSettings) -> Criterion:
    """No database connection failures, and connections (target and pooler) not growing."""
    failures = sum(s.logs.categories.get(DB_CONNECTION, 0) + s.db_errors for s in samples)
    growths = {
        "target connections": connection_growth([s.db_connections for s in samples if s.db_connections is not None]),
        "pooler client connections": connection_growth(
            [s.pooler_connections for s in samples if s.pooler_connections is not None]),
    }
    limit = settings.connection_growth_max
    parts = [f"{failures} database connection failure(s)"]
    ok = failures == 0
    figure = None
    for label, growth in growths.items():
        if growth is None:
            parts.append(f"{label} not measured")
            continue
        figure = growth if figure is None else max(figure, growth)
        parts.append(f"{label} grew by {growth:g} (limit {limit})")
        ok = ok and growth <= limit
    measured = any(g is not None for g in growths.values()) or failures > 0
    return Criterion(DATABASE_STABLE, ok, figure if figure is not None else failures, "; ".join(parts), measured)


def memory_slope_mib_per_min(samples: Sequence[Sample]) -> float | None:
    """Least-squares slope of the app's RSS over the window, in MiB per minute."""
    points = [(s.elapsed_s, s.rss_bytes) for s in samples if s.rss_bytes is not None]
    slope = least_squares_slope([x for x, _ in points], [y for _, y in points])
    return None if slope is None else slope * 60 / _MIB


def memory_slope(samples: Sequence[Sample], settings: MonitorSettings) -> Criterion:
    """The app's RSS grows slower than ``memory_slope_mb_per_min`` (MiB/min)."""
    slope = memory_slope_mib_per_min(samples)
    limit = settings.memory_slope_mb_per_min
    if slope is None:
        return Criterion(MEMORY_SLOPE, False, None, "memory slope not measured: fewer than two RSS readings", False)
    rss = [s.rss_bytes for s in samples if s.rss_bytes is not None]
    growth = (max(rss) - rss[0]) / _MIB
    # A short window's slope is dominated by warm-up: growth below the floor is noise, whatever its slope.
    floor = settings.memory_growth_floor_mb
    ok = slope < limit or growth < floor
    if slope < limit:
        verdict = f"below {limit:g} MiB/min"
    elif ok:
        verdict = f"not below {limit:g} MiB/min, but the growth is under the {floor:g} MiB noise floor"
    else:
        verdict = f"not below {limit:g} MiB/min, and the growth reaches the {floor:g} MiB noise floor"
    return Criterion(MEMORY_SLOPE, ok, slope, f"RSS slope {slope:+.2f} MiB/min ({rss[0] / _MIB:.1f} -> "
                                              f"{rss[-1] / _MIB:.1f} MiB over {len(rss)} readings, growth "
                                              f"{growth:.1f} MiB): {verdict}")


def evaluate_criteria(samples: Sequence[Sample], settings: MonitorSettings, *,
                      prior_leaks: Sequence[str] = ()) -> list[Criterion]:
    """Every success criterion, in the runbook's order."""
    return [
        error_rate_ok(samples, settings),
        no_rls_leaks(samples, settings, prior_leaks=prior_leaks),
        search_p95(samples, settings),
        storage_ok(samples, settings),
        database_stable(samples, settings),
        memory_slope(samples, settings),
    ]
