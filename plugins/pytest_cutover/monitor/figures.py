"""The monitor's figures for the report: error rates, latency percentiles, memory and connections. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_cutover.monitor.criteria import connection_growth, memory_slope_mib_per_min, search_latencies
from pytest_cutover.monitor.probes import KINDS
from pytest_cutover.monitor.samples import DB_CONNECTION, Sample
from pytest_cutover.monitor.stats import percentile, ratio

__all__ = ["latency_figures", "monitor_figures"]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def latency_figures(values: Sequence[float]) -> dict[str, Any]:
    """``{"n", "p50", "p95", "p99"}`` in ms, nearest-rank."""
    return {"n": len(values), **{f"p{p}": _round(percentile(values, p)) for p in (50, 95, 99)}}


def monitor_figures(samples: Sequence[Sample]) -> dict[str, Any]:
    """Everything the report shows about a window, computed from its samples."""
    probes = [p for s in samples for p in s.probes]
    failed = sum(not p.ok for p in probes)
    requests = sum(s.logs.requests for s in samples)
    request_errors = sum(s.logs.request_errors for s in samples)
    search = latency_figures(search_latencies(samples))
    levels: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    for s in samples:
        levels.update(s.logs.levels)
        categories.update(s.logs.categories)
    rss = [s.rss_bytes for s in samples if s.rss_bytes is not None]
    db = [s.db_connections for s in samples if s.db_connections is not None]
    pool = [s.pooler_connections for s in samples if s.pooler_connections is not None]
    return {
        "samples": len(samples),
        "elapsed_s": _round(samples[-1].elapsed_s if samples else 0.0),
        "probe_requests": len(probes),
        "probe_failures": failed,
        "error_rate": _round(ratio(failed, len(probes)), 6),
        "log_requests": requests,
        "log_request_errors": request_errors,
        "log_error_rate": _round(ratio(request_errors, requests), 6),
        "search_p50_ms": search["p50"],
        "search_p95_ms": search["p95"],
        "search_p99_ms": search["p99"],
        "latency_ms": {kind: latency_figures([p.latency_ms for p in probes
                                              if p.kind == kind and p.ok and p.latency_ms is not None])
                       for kind in KINDS},
        "rls_leaks": sum(p.leak for p in probes),
        "log_levels": dict(sorted(levels.items())),
        "log_categories": dict(sorted(categories.items())),
        "db_connection_failures": categories.get(DB_CONNECTION, 0) + sum(s.db_errors for s in samples),
        "rss_start_bytes": rss[0] if rss else None,
        "rss_end_bytes": rss[-1] if rss else None,
        "memory_slope_mib_per_min": _round(memory_slope_mib_per_min(samples)),
        "db_connections_min": min(db) if db else None,
        "db_connections_max": max(db) if db else None,
        "db_connections_growth": connection_growth(db),
        "pooler_connections_min": min(pool) if pool else None,
        "pooler_connections_max": max(pool) if pool else None,
        "pooler_connections_growth": connection_growth(pool),
    }
