"""The runbook's rollback triggers, as pure functions over a list of samples.

"Triggers for rollback: error rate > 5%; RLS data leakage detected; database
connection failures; critical feature broken; vector search completely broken."
Each function takes the samples (oldest first) and :class:`MonitorSettings` and
returns a :class:`Trigger` whose ``evidence`` says what was measured, fired or
not.  No I/O, no clock: the same series always gives the same answer.

Boundaries (pinned by tests): the error rate must be strictly above the rollback
rate; connection failures fire at the configured count; "in a row" fires at the
configured number of consecutive failures.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pytest_cutover.monitor.samples import DB_CONNECTION, ProbeResult, Sample
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.redact import redact

__all__ = [
    "CRITICAL_FEATURE_BROKEN",
    "DB_CONNECTION_FAILURES",
    "ERROR_RATE",
    "RLS_LEAK",
    "TRIGGERS",
    "VECTOR_SEARCH_BROKEN",
    "Trigger",
    "critical_feature_trigger",
    "db_connection_failures_trigger",
    "error_rate_trigger",
    "evaluate_triggers",
    "fired",
    "probe_matches",
    "rls_leak_trigger",
    "vector_search_trigger",
]

ERROR_RATE = "error-rate"
RLS_LEAK = "rls-leak"
DB_CONNECTION_FAILURES = "database-connection-failures"
CRITICAL_FEATURE_BROKEN = "critical-feature-broken"
VECTOR_SEARCH_BROKEN = "vector-search-broken"
TRIGGERS: tuple[str, ...] = (ERROR_RATE, RLS_LEAK, DB_CONNECTION_FAILURES, CRITICAL_FEATURE_BROKEN,
                             VECTOR_SEARCH_BROKEN)
_EXAMPLES = 3


@dataclass(frozen=True)
class Trigger:
    """One rollback trigger's decision, with the measured evidence (redacted)."""

    name: str
    fired: bool
    evidence: str
    figure: float | None = None


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _span(samples: Sequence[Sample], first: int, last: int) -> str:
    a, b = samples[first], samples[last]
    return f"{a.elapsed_s:.1f}-{b.elapsed_s:.1f} s (samples {a.seq}-{b.seq})"


def _describe(result: ProbeResult) -> str:
    what = f"status {result.status}" if result.status is not None else (result.error or "no response")
    return f"{result.name} {what}"


def _windows(samples: Sequence[Sample], span_s: float | None) -> Iterable[tuple[int, int]]:
    """``(first, last)`` index pairs: every sample as the end of a span of ``span_s`` seconds (or all before it)."""
    first = 0
    for last, sample in enumerate(samples):
        if span_s is not None:
            while sample.elapsed_s - samples[first].elapsed_s >= span_s:
                first += 1
        yield first, last


def _rate_in_spans(samples: Sequence[Sample], settings: MonitorSettings, counts: Sequence[tuple[int, int]],
                   ) -> tuple[float | None, int, int, int, int]:
    """The highest error rate over spans with enough requests: (rate, errors, total, first, last)."""
    best: tuple[float | None, int, int, int, int] = (None, 0, 0, 0, 0)
    prefix_err, prefix_tot = [0], [0]
    for err, tot in counts:
        prefix_err.append(prefix_err[-1] + err)
        prefix_tot.append(prefix_tot[-1] + tot)
    for first, last in _windows(samples, settings.error_rate_span_s):
        errors = prefix_err[last + 1] - prefix_err[first]
        total = prefix_tot[last + 1] - prefix_tot[first]
        if total < settings.min_requests:
            continue
        rate = errors / total
        if best[0] is None or rate >= best[0]:  # on a tie, report the longer (later) span
            best = (rate, errors, total, first, last)
    return best


def error_rate_trigger(samples: Sequence[Sample], settings: MonitorSettings) -> Trigger:
    """Error rate above ``rollback_error_rate`` (runbook: > 5%) over any span of ``error_rate_span_s``.

    Two sources, either fires: the synthetic probes, and the app's own request log
    (lines with an HTTP status) where it has one.  A span with fewer than
    ``min_requests`` requests is not judged, so one early failure is not "100%".
    """
    limit = settings.rollback_error_rate
    sources = {
        "probe": [(sum(not p.ok for p in s.probes), len(s.probes)) for s in samples],
        "logged request": [(s.logs.request_errors, s.logs.requests) for s in samples],
    }
    notes, worst = [], None
    for label, counts in sources.items():
        rate, errors, total, first, last = _rate_in_spans(samples, settings, counts)
        if rate is None:
            seen = sum(t for _, t in counts)
            if seen:
                notes.append(f"{label} requests: no span with at least {settings.min_requests} requests "
                             f"({seen} in all)")
            continue
        worst = rate if worst is None else max(worst, rate)
        text = f"{label} error rate {_pct(rate)} ({errors} of {total}) over {_span(samples, first, last)}"
        if rate > limit:
            failures = Counter(_describe(p) for s in samples[first:last + 1] for p in s.probes if not p.ok)
            examples = ", ".join(f"{k} x{v}" for k, v in failures.most_common(_EXAMPLES))
            extra = f"; failures: {examples}" if label == "probe" and examples else ""
            return Trigger(ERROR_RATE, True, redact(f"{text}, above the {_pct(limit)} rollback rate{extra}"), rate)
        notes.append(f"highest {text}")
    message = "; ".join(notes) if notes else "no requests measured"
    return Trigger(ERROR_RATE, False, redact(f"{message}; rollback rate {_pct(limit)}"), worst)


def rls_leak_trigger(samples: Sequence[Sample], settings: MonitorSettings | None = None, *,
                     prior_leaks: Sequence[str] = ()) -> Trigger:
    """Any RLS leak: a probe saw another org's rows, or an earlier stage (rls) reported one."""
    leaks = [(s, p) for s in samples for p in s.probes if p.leak]
    if not leaks and not prior_leaks:
        checked = sum(1 for s in samples for p in s.probes if p.kind in ("threads", "search"))
        return Trigger(RLS_LEAK, False, f"no leak in {checked} tenant-scoped probe results", 0)
    parts = [f"{p.name} at {s.elapsed_s:.1f} s (sample {s.seq}) returned rows of "
             f"{', '.join(p.leaked_orgs) or 'another org'}" for s, p in leaks[:_EXAMPLES]]
    if len(leaks) > _EXAMPLES:
        parts.append(f"{len(leaks) - _EXAMPLES} more")
    parts.extend(f"earlier stage: {leak}" for leak in prior_leaks)
    return Trigger(RLS_LEAK, True, redact(f"{len(leaks) + len(prior_leaks)} leak(s): " + "; ".join(parts)),
                   len(leaks) + len(prior_leaks))


def db_connection_failures_trigger(samples: Sequence[Sample], settings: MonitorSettings) -> Trigger:
    """``conn_failure_count`` or more database connection failures within ``conn_failure_window_s``.

    A failure is an app log line classified as a database connection error, or the
    monitor's own failed connection to the target or the pooler.
    """
    counts = [s.logs.categories.get(DB_CONNECTION, 0) + s.db_errors for s in samples]
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)
    best = (0, 0, 0)
    for first, last in _windows(samples, settings.conn_failure_window_s):
        total = prefix[last + 1] - prefix[first]
        if total > best[0]:
            best = (total, first, last)
    total, first, last = best
    limit, window = settings.conn_failure_count, settings.conn_failure_window_s
    if total >= limit:
        lines = [e for s in samples[first:last + 1] for e in s.logs.evidence if _is_db_line(e)]
        notes = [n for s in samples[first:last + 1] for n in s.notes]
        shown = "; ".join((lines + notes)[:_EXAMPLES])
        return Trigger(DB_CONNECTION_FAILURES, True, redact(
            f"{total} database connection failures within {window:g} s ({_span(samples, first, last)}), "
            f"at or above the configured {limit}" + (f"; evidence: {shown}" if shown else "")), total)
    return Trigger(DB_CONNECTION_FAILURES, False,
                   f"at most {total} database connection failures within {window:g} s (limit {limit})", total)


def _is_db_line(line: str) -> bool:
    from pytest_cutover.monitor.classify import classify_message

    return classify_message(line) == DB_CONNECTION


def probe_matches(result: ProbeResult, specs: Iterable[str]) -> bool:
    """A probe is named by a spec when the spec is its kind (``threads``) or its full name (``threads:org_0001``)."""
    return any(spec in (result.kind, result.name) for spec in specs)


def critical_feature_trigger(samples: Sequence[Sample], settings: MonitorSettings) -> Trigger:
    """A critical probe (by kind or name) failing ``critical_failures`` times in a row."""
    need = settings.critical_failures
    streak: dict[str, list[tuple[Sample, ProbeResult]]] = {}
    longest: tuple[str, list[tuple[Sample, ProbeResult]]] = ("", [])
    for sample in samples:
        for result in sample.probes:
            if not probe_matches(result, settings.critical_probes):
                continue
            run = streak.setdefault(result.name, [])
            if result.ok:
                run.clear()
                continue
            run.append((sample, result))
            if len(run) > len(longest[1]):
                longest = (result.name, list(run))
            if len(run) >= need:
                whats = ", ".join(_describe(r).removeprefix(f"{r.name} ") for _, r in run)
                return Trigger(CRITICAL_FEATURE_BROKEN, True, redact(
                    f"critical probe {result.name} failed {len(run)} times in a row "
                    f"(samples {run[0][0].seq}-{run[-1][0].seq}): {whats}"), len(run))
    if not streak:
        return Trigger(CRITICAL_FEATURE_BROKEN, False,
                       f"no critical probe ran (critical: {', '.join(settings.critical_probes) or 'none'})", 0)
    name, run = longest
    detail = f"longest failure streak {len(run)} ({name})" if run else "no critical probe failed"
    return Trigger(CRITICAL_FEATURE_BROKEN, False, f"{detail}; fires at {need} in a row", len(run))


def vector_search_trigger(samples: Sequence[Sample], settings: MonitorSettings) -> Trigger:
    """Vector search completely broken: in ``critical_failures`` consecutive samples, every search
    probe failed or returned another org's rows."""
    need = settings.critical_failures
    run: list[Sample] = []
    longest = 0
    searched = 0
    for sample in samples:
        searches = [p for p in sample.probes if p.kind == "search"]
        if not searches:
            continue
        searched += 1
        if all((not p.ok) or p.leak for p in searches):
            run.append(sample)
            longest = max(longest, len(run))
            if len(run) >= need:
                leaking = all(p.leak for p in searches)
                how = "returned other orgs' rows" if leaking else "failed or leaked"
                shown = ", ".join(_describe(p) + (" (leak)" if p.leak else "") for p in searches[:_EXAMPLES])
                return Trigger(VECTOR_SEARCH_BROKEN, True, redact(
                    f"every search probe {how} in {len(run)} consecutive samples "
                    f"(samples {run[0].seq}-{run[-1].seq}); last: {shown}"), len(run))
        else:
            run = []
    if not searched:
        return Trigger(VECTOR_SEARCH_BROKEN, False, "no search probe ran", 0)
    return Trigger(VECTOR_SEARCH_BROKEN, False,
                   f"longest run of samples with every search failing: {longest}; fires at {need}", longest)


def evaluate_triggers(samples: Sequence[Sample], settings: MonitorSettings, *,
                      prior_leaks: Sequence[str] = ()) -> list[Trigger]:
    """Every trigger, in the runbook's order."""
    return [
        error_rate_trigger(samples, settings),
        rls_leak_trigger(samples, settings, prior_leaks=prior_leaks),
        db_connection_failures_trigger(samples, settings),
        critical_feature_trigger(samples, settings),
        vector_search_trigger(samples, settings),
    ]


def fired(triggers: Iterable[Trigger]) -> list[Trigger]:
    """The triggers that fired."""
    return [t for t in triggers if t.fired]
