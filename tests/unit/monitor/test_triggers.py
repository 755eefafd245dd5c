"""Rollback triggers over synthetic series, including the exact boundaries."""

from __future__ import annotations

import pytest

from pytest_cutover.monitor import triggers as t
from pytest_cutover.monitor.samples import DB_CONNECTION
from pytest_cutover.monitor.settings import MonitorSettings

from .factory import probe, sample, series_with_failures

WHOLE = MonitorSettings(error_rate_span_s=None, min_requests=20)


@pytest.mark.parametrize(("failures", "fires"), [(0, False), (4, False), (5, False), (6, True), (50, True)])
def test_error_rate_fires_only_strictly_above_five_percent(failures: int, fires: bool) -> None:
    got = t.error_rate_trigger(series_with_failures(100, failures), WHOLE)
    assert got.fired is fires
    assert got.figure == pytest.approx(failures / 100)
    assert f"({failures} of 100)" in got.evidence


def test_error_rate_exactly_five_percent_of_twenty() -> None:
    assert not t.error_rate_trigger(series_with_failures(20, 1), WHOLE).fired
    assert t.error_rate_trigger(series_with_failures(20, 2), WHOLE).fired


def test_error_rate_needs_min_requests() -> None:
    got = t.error_rate_trigger(series_with_failures(10, 10), WHOLE)
    assert not got.fired
    assert "no span with at least 20 requests (10 in all)" in got.evidence


def test_error_rate_evidence_names_failures_and_span() -> None:
    got = t.error_rate_trigger(series_with_failures(100, 30), WHOLE)
    assert got.evidence.startswith("probe error rate 30.0% (30 of 100) over 0.0-9.0 s (samples 1-10), above the "
                                   "5.0% rollback rate; failures: threads:org_0000 status 500 x3, "
                                   "threads:org_0001 status 500 x3")


def test_error_rate_spike_inside_a_sliding_span_fires() -> None:
    # 100 samples, one per 10 s; a spike of 4 failures in 2 samples among 1000 requests: 0.4% over all,
    # but 40% of 10 requests... too few; with 20-request spans (2 samples), 4 of 20 = 20% > 5%.
    samples = [sample(n + 1, n * 10.0, [probe(ok=not (50 <= n <= 51 and i < 2)) for i in range(10)])
               for n in range(100)]
    assert not t.error_rate_trigger(samples, WHOLE).fired
    got = t.error_rate_trigger(samples, WHOLE.with_(error_rate_span_s=20.0))
    assert got.fired
    assert "(4 of 20) over 500.0-510.0 s (samples 51-52)" in got.evidence


def test_error_rate_from_logged_requests() -> None:
    samples = [sample(n + 1, float(n), [probe()], requests=10, request_errors=1) for n in range(10)]
    got = t.error_rate_trigger(samples, WHOLE)
    assert got.fired
    assert got.evidence.startswith("logged request error rate 10.0% (10 of 100)")


def test_rls_leak_any_leak_fires() -> None:
    clean = [sample(n + 1, float(n), [probe(), probe("search")]) for n in range(5)]
    assert not t.rls_leak_trigger(clean).fired
    assert t.rls_leak_trigger(clean).evidence == "no leak in 10 tenant-scoped probe results"
    leaky = [*clean, sample(6, 5.0, [probe(leak=True)])]
    got = t.rls_leak_trigger(leaky)
    assert got.fired
    assert got.evidence == "1 leak(s): threads:org_0001 at 5.0 s (sample 6) returned rows of org_0002"


def test_rls_leak_from_an_earlier_stage() -> None:
    got = t.rls_leak_trigger([], prior_leaks=["rls: cross-tenant read on threads"])
    assert got.fired
    assert "earlier stage: rls: cross-tenant read on threads" in got.evidence


@pytest.mark.parametrize(("at", "fires"), [((0, 30, 50), True), ((0, 40, 100), False), ((0, 60, 119), False),
                                           ((10, 20), False)])
def test_db_connection_failures_within_window(at: tuple[int, ...], fires: bool) -> None:
    settings = MonitorSettings(conn_failure_count=3, conn_failure_window_s=60.0)
    samples = [sample(n + 1, float(n), categories={DB_CONNECTION: 1} if n in at else {}) for n in range(121)]
    got = t.db_connection_failures_trigger(samples, settings)
    assert got.fired is fires, got.evidence


def test_db_connection_failures_count_monitor_own_failures_and_quote_lines() -> None:
    line = "ERROR asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the middle of operation"
    samples = [sample(1, 0.0, db_errors=1), sample(2, 1.0, categories={DB_CONNECTION: 2}, evidence=(line,))]
    got = t.db_connection_failures_trigger(samples, MonitorSettings(conn_failure_count=3))
    assert got.fired
    assert got.evidence.startswith("3 database connection failures within 300 s (0.0-1.0 s (samples 1-2)), at or "
                                   "above the configured 3; evidence: ERROR asyncpg")


def test_critical_feature_fires_at_n_in_a_row() -> None:
    settings = MonitorSettings(critical_probes=("threads",), critical_failures=3)
    pattern = [False, False, True, False, False]
    samples = [sample(n + 1, float(n), [probe(ok=ok)]) for n, ok in enumerate(pattern)]
    got = t.critical_feature_trigger(samples, settings)
    assert not got.fired
    assert got.evidence == "longest failure streak 2 (threads:org_0001); fires at 3 in a row"
    samples.append(sample(6, 6.0, [probe(ok=False)]))
    got = t.critical_feature_trigger(samples, settings)
    assert got.fired
    assert got.evidence == ("critical probe threads:org_0001 failed 3 times in a row (samples 4-6): "
                            "status 500, status 500, status 500")


def test_critical_feature_by_full_name_and_non_critical_ignored() -> None:
    samples = [sample(n + 1, float(n), [probe("search", ok=False), probe("threads", "org_0002", ok=False)])
               for n in range(4)]
    assert not t.critical_feature_trigger(samples, MonitorSettings(critical_probes=("health",))).fired
    got = t.critical_feature_trigger(samples, MonitorSettings(critical_probes=("threads:org_0002",)))
    assert got.fired and "threads:org_0002" in got.evidence


def test_vector_search_broken_needs_every_search_probe_bad() -> None:
    settings = MonitorSettings(critical_failures=3)
    half = [sample(n + 1, float(n), [probe("search", "org_0001", ok=False), probe("search", "org_0002")])
            for n in range(5)]
    assert not t.vector_search_trigger(half, settings).fired
    broken = [sample(n + 1, float(n), [probe("search", "org_0001", ok=False, timed_out=True, status=None),
                                       probe("search", "org_0002", ok=False)]) for n in range(3)]
    got = t.vector_search_trigger(broken, settings)
    assert got.fired
    assert got.evidence.startswith("every search probe failed or leaked in 3 consecutive samples (samples 1-3)")


def test_vector_search_broken_by_leaks() -> None:
    leaking = [sample(n + 1, float(n), [probe("search", "org_0001", leak=True)]) for n in range(3)]
    got = t.vector_search_trigger(leaking, MonitorSettings(critical_failures=3))
    assert got.fired
    assert "returned other orgs' rows" in got.evidence


def test_vector_search_without_search_probes() -> None:
    assert t.vector_search_trigger([sample(1, 0.0, [probe()])], MonitorSettings()).evidence == "no search probe ran"


def test_evaluate_triggers_order_and_clean_series() -> None:
    samples = [sample(n + 1, float(n), [probe("health", None), probe(), probe("search")]) for n in range(10)]
    result = t.evaluate_triggers(samples, MonitorSettings())
    assert [x.name for x in result] == list(t.TRIGGERS)
    assert t.fired(result) == []
