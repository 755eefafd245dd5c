"""Synthetic samples for the pure trigger and criteria tests."""

from __future__ import annotations

from pytest_cutover.monitor.samples import LogCounts, ProbeResult, Sample


def probe(kind: str = "threads", org: str | None = "org_0001", *, ok: bool = True, ms: float = 10.0,
          status: int | None = None, leak: bool = False, timed_out: bool = False) -> ProbeResult:
    name = kind if org is None else f"{kind}:{org}"
    return ProbeResult(name, kind, ok, ms, status if status is not None else (200 if ok else 500), org,
                       None if ok else "http 500", timed_out=timed_out, leak=leak,
                       leaked_orgs=("org_0002",) if leak else ())


def sample(seq: int, elapsed: float, probes: list[ProbeResult] | tuple[ProbeResult, ...] = (), *,
           rss: int | None = None, db: int | None = None, db_errors: int = 0, pool: int | None = None,
           categories: dict[str, int] | None = None, requests: int = 0, request_errors: int = 0,
           evidence: tuple[str, ...] = ()) -> Sample:
    return Sample(seq=seq, ts=1_700_000_000 + elapsed, elapsed_s=elapsed, probes=tuple(probes),
                  logs=LogCounts(lines=requests, categories=dict(categories or {}), requests=requests,
                                 request_errors=request_errors, evidence=evidence),
                  rss_bytes=rss, db_connections=db, db_errors=db_errors, pooler_connections=pool)


def series_with_failures(total: int, failures: int, *, per_sample: int = 10, kind: str = "threads",
                         interval: float = 1.0) -> list[Sample]:
    """``total`` probe results of ``kind``, the last ``failures`` of them failed, ``per_sample`` a sample.

    Failures come last so that the whole window is the worst span: an error-rate trigger evaluated
    live (over the samples so far) would see the same figure at the end.
    """
    results = [probe(kind, f"org_{i % per_sample:04d}", ok=i < total - failures) for i in range(total)]
    return [sample(n + 1, n * interval, results[i:i + per_sample])
            for n, i in enumerate(range(0, total, per_sample))]
