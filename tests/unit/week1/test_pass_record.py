"""The ``monitor-window`` record: one per pass, this pass's samples only, and when a pass counts as passing."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cutover.ledger import Ledger
from pytest_cutover.monitor.criteria import Criterion
from pytest_cutover.monitor.records import window_pass_record
from pytest_cutover.monitor.sampler import Sampler
from pytest_cutover.monitor.samples import LogCounts, MonitorSeries, ProbeResult, Sample
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.monitor.triggers import Trigger

T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z


def _sample(seq: int, ts: float, *, ok: bool = True, search_ms: float = 20.0) -> Sample:
    probes = (ProbeResult("health", "health", True, 3.0), ProbeResult("search:org_0001", "search", ok, search_ms),
              ProbeResult("threads:org_0001", "threads", True, 5.0))
    return Sample(seq=seq, ts=ts, elapsed_s=ts - T0, probes=probes, logs=LogCounts(requests=10, request_errors=1))


def test_the_record_counts_this_pass_and_finds_its_longest_gap() -> None:
    samples = [_sample(1, T0), _sample(2, T0 + 10), _sample(3, T0 + 55, ok=False, search_ms=5000.0),
               _sample(4, T0 + 65)]
    rec = window_pass_record(samples, window=3, window_s=1800, interval_s=10, triggers=[], criteria=[],
                             cut_short=False, complete=True)
    assert (rec["kind"], rec["window"], rec["samples"], rec["duration_s"]) == ("monitor-window", 3, 4, 65.0)
    assert (rec["max_gap_s"], rec["max_gap_start"], rec["max_gap_end"]) == (
        45.0, "2026-11-30T00:53:30.000Z", "2026-11-30T00:54:15.000Z")
    assert (rec["probe_requests"], rec["probe_failures"], rec["error_rate"]) == (12, 1, round(1 / 12, 6))
    assert (rec["log_requests"], rec["log_request_errors"], rec["log_error_rate"]) == (40, 4, 0.1)
    # a timed-out search counts at its latency; a failed one that did not time out does not
    assert rec["search_ms"] == [20.0, 20.0, 20.0] and rec["search_p95_ms"] == 20.0
    assert rec["ok"] is True and rec["start"] == "2026-11-30T00:53:20.000Z"


@pytest.mark.parametrize(("criterion", "complete", "ok"), [
    (Criterion("memory-slope", False, None, "not measured", measured=False), False, True),  # cut short: not judged
    (Criterion("memory-slope", False, None, "not measured", measured=False), True, False),
    (Criterion("vector-search-p95", False, 140.0, "p95 140 ms"), False, False),
])
def test_a_pass_fails_on_a_failed_criterion_and_a_cut_short_pass_is_not_failed_for_what_it_could_not_measure(
        criterion: Criterion, complete: bool, ok: bool) -> None:
    rec = window_pass_record([_sample(1, T0)], window=1, window_s=1800, interval_s=10, triggers=[],
                             criteria=[criterion], cut_short=not complete, complete=complete)
    assert rec["ok"] is ok
    assert rec["failed_criteria"] == ([] if ok else [criterion.name])


def test_a_fired_trigger_fails_the_pass() -> None:
    rec = window_pass_record([_sample(1, T0)], window=1, window_s=1800, interval_s=10,
                             triggers=[Trigger("error-rate", True, "7% of 600"), Trigger("rls-leak", False, "none")],
                             criteria=[], cut_short=False, complete=False)
    assert rec["triggers"] == [{"name": "error-rate", "evidence": "7% of 600"}] and rec["ok"] is False


def test_a_resumed_window_records_only_the_samples_of_its_own_pass(tmp_path: Path) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def stop_after_two(sample: Sample) -> None:
        if sample.seq == 2:
            raise KeyboardInterrupt

    ledger = Ledger(tmp_path / "ledger.jsonl")
    settings = MonitorSettings(window_s=5.0, interval_s=1.0)

    def sampler(**extra: object) -> Sampler:
        return Sampler(settings, series=MonitorSeries(tmp_path / "monitor.jsonl"), ledger=ledger, progress=False,
                       clock=lambda: now[0], sleep=sleep, warmup_rounds=0, **extra)

    first = sampler(on_sample=stop_after_two).run()
    assert first.cut_short and len(first.samples) == 2
    second = sampler().run()  # resumes the window where it stopped
    assert second.complete and len(second.samples) == 6
    passes = [r for r in ledger.records() if r["kind"] == "monitor-window"]
    assert [(p["window"], p["samples"], p["cut_short"]) for p in passes] == [(1, 2, True), (1, 4, False)]
    assert passes[0]["end"] <= passes[1]["start"]


def test_public_api_is_pinned() -> None:
    from pytest_cutover import week1
    from pytest_cutover.week1 import checks, history, reachability

    for module in (checks, history, reachability):
        defined = {n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
                   and getattr(v, "__module__", None) == module.__name__}
        assert defined <= set(module.__all__), (module.__name__, defined - set(module.__all__))
    for module in (week1, checks, history, reachability):
        assert all(hasattr(module, name) for name in module.__all__)
