"""Success criteria at the end of the window, with the exact boundaries, and the percentile method."""

from __future__ import annotations

import pytest

from pytest_cutover.monitor import criteria as c
from pytest_cutover.monitor.figures import monitor_figures
from pytest_cutover.monitor.samples import DB_CONNECTION, STORAGE_ACCESS
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.monitor.stats import least_squares_slope, median, percentile

from .factory import probe, sample, series_with_failures

S = MonitorSettings()
MIB = 1024 * 1024


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([15, 20, 35, 40, 50], 5, 15), ([15, 20, 35, 40, 50], 30, 20), ([15, 20, 35, 40, 50], 40, 20),
    ([15, 20, 35, 40, 50], 50, 35), ([15, 20, 35, 40, 50], 100, 50), ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 25, 7),
    ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 75, 15), ([42], 95, 42), (list(range(1, 101)), 95, 95),
    (list(range(1, 101)), 99, 99), (list(range(100, 0, -1)), 50, 50),
])
def test_nearest_rank_percentile(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_percentile_edges() -> None:
    assert percentile([], 95) is None
    with pytest.raises(ValueError, match=r"percentile must be in \(0, 100\], got 0"):
        percentile([1], 0)


def test_median_and_slope() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 2, 3]) == 2.5
    assert least_squares_slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert least_squares_slope([1], [1]) is None
    assert least_squares_slope([2, 2], [1, 5]) is None


@pytest.mark.parametrize(("total", "failures", "ok"), [(100, 0, True), (101, 1, True), (100, 1, False),
                                                       (200, 2, False), (100, 2, False)])
def test_error_rate_below_one_percent_is_strict(total: int, failures: int, ok: bool) -> None:
    got = c.error_rate_ok(series_with_failures(total, failures), S)
    assert got.ok is ok
    assert got.figure == pytest.approx(failures / total)
    assert f"({failures} of {total})" in got.message


def test_error_rate_message_exactly_one_percent() -> None:
    got = c.error_rate_ok(series_with_failures(100, 1), S)
    assert got.message == "probe error rate 1.00% (1 of 100): not below 1%"


def test_error_rate_includes_logged_requests() -> None:
    samples = [sample(1, 0.0, [probe()] * 10, requests=100, request_errors=2)]
    got = c.error_rate_ok(samples, S)
    assert not got.ok
    assert got.figure == pytest.approx(0.02)
    assert "logged request error rate 2.00% (2 of 100)" in got.message


def test_error_rate_not_measured() -> None:
    got = c.error_rate_ok([sample(1, 0.0)], S)
    assert (got.ok, got.measured) == (False, False)


def _search_series(latencies: list[float]) -> list:
    return [sample(n + 1, float(n), [probe("search", ms=ms)]) for n, ms in enumerate(latencies)]


def test_search_p95_exactly_100_ms_fails() -> None:
    got = c.search_p95(_search_series([10.0] * 18 + [100.0, 100.0]), S)
    assert not got.ok
    assert got.figure == 100.0
    assert got.message == "vector search p95 100.0 ms (p50 10.0, p99 100.0, n=20): not below 100 ms"


def test_search_p95_just_below_passes_and_tail_above_is_allowed() -> None:
    got = c.search_p95(_search_series([10.0] * 18 + [99.9, 500.0]), S)
    assert got.ok
    assert got.figure == 99.9


def test_search_p95_counts_timeouts_but_not_fast_errors() -> None:
    samples = _search_series([10.0] * 10)
    samples.append(sample(11, 11.0, [probe("search", ok=False, ms=5000.0, timed_out=True, status=None)]))
    samples.append(sample(12, 12.0, [probe("search", ok=False, ms=1.0)]))
    assert c.search_latencies(samples) == [10.0] * 10 + [5000.0]
    assert not c.search_p95(samples, S).ok


def test_search_p95_not_measured() -> None:
    got = c.search_p95([sample(1, 0.0, [probe()])], S)
    assert (got.ok, got.measured, got.figure) == (False, False, None)


def test_no_rls_leaks() -> None:
    clean = [sample(1, 0.0, [probe(), probe("search")])]
    assert c.no_rls_leaks(clean).ok
    got = c.no_rls_leaks([*clean, sample(2, 1.0, [probe(leak=True)])])
    assert (got.ok, got.figure) == (False, 1)
    assert got.message == "1 RLS leak(s) (first: threads:org_0001) in 3 tenant-scoped probe results"
    assert not c.no_rls_leaks(clean, prior_leaks=["rls: threads"]).ok


def test_storage_ok() -> None:
    good = [sample(n + 1, float(n), [probe("attachment")]) for n in range(4)]
    assert c.storage_ok(good).ok
    assert c.storage_ok(good).message == ("4 of 4 attachment downloads succeeded (100.0%); "
                                          "0 storage access error line(s) logged")
    one_bad = [*good, sample(5, 4.0, [probe("attachment", ok=False)])]
    got = c.storage_ok(one_bad)
    assert (got.ok, got.figure) == (False, 0.8)
    logged = [*good, sample(5, 4.0, categories={STORAGE_ACCESS: 1})]
    assert not c.storage_ok(logged).ok


def test_database_stable() -> None:
    steady = [sample(n + 1, float(n), db=10 + n % 2, pool=5) for n in range(12)]
    got = c.database_stable(steady, S)
    assert got.ok, got.message
    assert got.message == ("0 database connection failure(s); target connections grew by 0 (limit 10); "
                           "pooler client connections grew by 0 (limit 10)")
    growing = [sample(n + 1, float(n), db=10 + 3 * n) for n in range(12)]
    got = c.database_stable(growing, S)
    assert not got.ok
    assert got.figure == 24
    failing = [*steady, sample(13, 12.0, categories={DB_CONNECTION: 1})]
    assert not c.database_stable(failing, S).ok


@pytest.mark.parametrize(("mib_per_min", "ok"), [(0.0, True), (9.99, True), (10.0, False), (-5.0, True)])
def test_memory_slope_strictly_below_limit(mib_per_min: float, ok: bool) -> None:
    samples = [sample(n + 1, 60.0 * n, rss=int(200 * MIB + mib_per_min * MIB * n)) for n in range(10)]
    got = c.memory_slope(samples, S)
    assert got.figure == pytest.approx(mib_per_min, abs=1e-4)
    assert got.ok is ok


def test_evaluate_criteria_names_and_figures() -> None:
    samples = [sample(n + 1, float(n), [probe("health", None), probe(), probe("search", ms=20.0 + n),
                                        probe("attachment")], rss=100 * MIB, db=5, pool=3) for n in range(20)]
    got = c.evaluate_criteria(samples, S)
    assert [x.name for x in got] == list(c.CRITERIA)
    assert all(x.ok for x in got), [x.message for x in got if not x.ok]
    figures = monitor_figures(samples)
    assert figures["error_rate"] == 0.0
    assert figures["search_p95_ms"] == 38.0
    assert figures["latency_ms"]["search"] == {"n": 20, "p50": 29.0, "p95": 38.0, "p99": 39.0}
    assert figures["memory_slope_mib_per_min"] == 0.0


@pytest.mark.parametrize(("growth_mib", "ok"), [(2.0, True), (31.9, True), (32.0, False), (200.0, False)])
def test_memory_growth_below_the_noise_floor_passes_whatever_the_slope(growth_mib: float, ok: bool) -> None:
    """An 8-second rehearsal window grows a little while warming up: a steep slope over tiny growth is noise."""
    samples = [sample(n + 1, 1.0 * n, rss=int(90 * MIB + growth_mib * MIB * n / 8)) for n in range(9)]
    got = c.memory_slope(samples, S)
    assert got.figure > S.memory_slope_mb_per_min
    assert got.ok is ok
    floor = "but the growth is under" if ok else "and the growth reaches"
    assert got.message.endswith(f"not below 10 MiB/min, {floor} the 32 MiB noise floor"), got.message
