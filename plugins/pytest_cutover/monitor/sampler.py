"""The monitor loop: sample every interval for the window, decide triggers live, judge at the end.

Every tick collects one :class:`~pytest_cutover.monitor.samples.Sample` (probes,
log counts, RSS, connection counts), appends it to ``monitor.jsonl``, evaluates
the rollback triggers over the window so far, and updates a rich progress line
(elapsed / window, error rate, search p95, memory trend).  A trigger that fires is
recorded once per window, in the series and as a ledger record of kind
``trigger`` ``{name, evidence, stage}``; with ``stop_on_trigger`` the window
ends there.

Ctrl-C ends the window early: the session is recorded with ``cut_short`` and the
series stays readable.  Running again in the same run resumes a window that was
cut short (or whose process died) where it stopped: elapsed time accumulates
over sessions.  A window that ended (complete, or stopped by a trigger), or
``fresh=True``, starts a new one.  Every session begins with ``warmup_rounds``
untimed probe rounds (default 1), whose log lines are not counted: the first
requests after a restart open pools and load indexes, which the smoke stage has
already measured.  At the end a ledger record of kind ``monitor``
holds the figures, the criteria and the fired triggers, followed by a ``monitor-window``
record of this pass alone (its first and last sample, counts, latencies): a run monitored
by repeated passes (cron or a loop in Week 1) keeps every pass in the ledger.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_cutover.monitor.criteria import Criterion, evaluate_criteria, memory_slope_mib_per_min
from pytest_cutover.monitor.figures import monitor_figures
from pytest_cutover.monitor.logs import LogWatcher
from pytest_cutover.monitor.records import criterion_record, record_trigger, window_pass_record
from pytest_cutover.monitor.samples import LogCounts, MonitorSeries, Sample
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.monitor.stats import percentile
from pytest_cutover.monitor.triggers import Trigger, evaluate_triggers
from pytest_cutover.redact import redact

if TYPE_CHECKING:
    from rich.console import Console

    from pytest_cutover.ledger import Ledger
    from pytest_cutover.monitor.probes import ProbeSet
    from pytest_cutover.monitor.system import SystemSampler

__all__ = ["MonitorResult", "Sampler"]


@dataclass(frozen=True)
class MonitorResult:
    """How a monitor session ended, with the whole window's samples, triggers and criteria."""

    window: int
    window_s: float
    elapsed_s: float
    samples: tuple[Sample, ...]
    cut_short: bool
    complete: bool
    stopped_by: str | None
    triggers: tuple[Trigger, ...]
    criteria: tuple[Criterion, ...]
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def fired(self) -> list[Trigger]:
        return [t for t in self.triggers if t.fired]

    @property
    def ok(self) -> bool:
        """The window ran to its end, no trigger fired and every criterion holds."""
        return self.complete and not self.fired and all(c.ok for c in self.criteria)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while a sample and its trigger records are written, then raise it.

    A KeyboardInterrupt landing inside a write (between the series and the ledger,
    or inside the appender's ``finally`` that releases its ``flock``) would leave the
    files disagreeing, or a lock held by a descriptor nobody closes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class _Progress:
    """Live terminal line (rich): elapsed / window, error rate, search p95, memory trend."""

    def __init__(self, console: Console | None, enabled: bool, window_s: float) -> None:
        self._progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(TextColumn("[bold]monitor[/]"), BarColumn(),
                                  TextColumn("{task.fields[clock]}"), TextColumn("{task.fields[status]}"),
                                  console=console, transient=False, refresh_per_second=4)
        self._task = self._progress.add_task("monitor", total=window_s, clock="", status="starting")
        self._progress.start()

    def update(self, samples: Sequence[Sample], window_s: float, fired: Sequence[str]) -> None:
        if self._progress is None:
            return
        probes = [p for s in samples for p in s.probes]
        rate = sum(not p.ok for p in probes) / len(probes) if probes else None
        p95 = percentile([p.latency_ms for s in samples for p in s.probes
                          if p.kind == "search" and p.ok and p.latency_ms is not None], 95)
        slope = memory_slope_mib_per_min(samples)
        elapsed = samples[-1].elapsed_s if samples else 0.0
        status = " | ".join([
            f"errors {rate * 100:.1f}%" if rate is not None else "errors -",
            f"search p95 {p95:.0f} ms" if p95 is not None else "search p95 -",
            f"rss {slope:+.1f} MiB/min" if slope is not None else "rss -",
            f"[red]triggers: {', '.join(fired)}[/]" if fired else "triggers: none",
        ])
        self._progress.update(self._task, completed=min(elapsed, window_s),
                              clock=f"{elapsed:.0f}/{window_s:.0f} s", status=status)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class Sampler:
    """Run (or resume) the monitor window of one run.

    ``on_sample`` is called after each sample is stored (a test hook; raising
    ``KeyboardInterrupt`` there behaves like Ctrl-C).  ``stamp`` fields (run,
    host, user, ...) are added to every ledger record.
    """

    def __init__(self, settings: MonitorSettings, *, series: MonitorSeries, probes: ProbeSet | None = None,
                 logs: LogWatcher | None = None, system: SystemSampler | None = None, ledger: Ledger | None = None,
                 stage: str = "monitor", stamp: Mapping[str, Any] | None = None, prior_leaks: Sequence[str] = (),
                 console: Console | None = None, progress: bool = True,
                 on_sample: Callable[[Sample], None] | None = None, fresh: bool = False,
                 warmup_rounds: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.series = series
        self.probes = probes
        self.logs = logs
        self.system = system
        self.ledger = ledger
        self.stage = stage
        self.stamp = dict(stamp or {})
        self.prior_leaks = tuple(prior_leaks)
        self.console = console
        self.progress = progress
        self.on_sample = on_sample
        self.fresh = fresh
        self.warmup_rounds = warmup_rounds
        self._clock = clock
        self._sleep = sleep

    async def _collect(self, seq: int, elapsed: float) -> Sample:
        ts = time.time()
        probes = await self.probes.run() if self.probes is not None else ()
        figures = await self.system.sample() if self.system is not None else None
        logs = self.logs.drain() if self.logs is not None else LogCounts()
        notes = list(figures.notes) if figures else []
        if logs.source_error:
            notes.append(logs.source_error)
        return Sample(seq=seq, ts=ts, elapsed_s=round(elapsed, 3), probes=probes, logs=logs,
                      rss_bytes=figures.rss_bytes if figures else None,
                      db_connections=figures.db_connections if figures else None,
                      db_errors=figures.db_errors if figures else 0,
                      pooler_connections=figures.pooler_connections if figures else None,
                      pooler_waiting=figures.pooler_waiting if figures else None,
                      notes=tuple(redact(n) for n in notes))

    async def _close_async(self) -> None:
        if self.probes is not None:
            await self.probes.aclose()
        if self.system is not None:
            await self.system.aclose()
        oracle = getattr(self.probes, "oracle", None)
        if oracle is not None and hasattr(oracle, "aclose"):
            await oracle.aclose()

    def _record_trigger(self, window: int, trigger: Trigger, elapsed: float) -> None:
        self.series.append_trigger(window, trigger.name, trigger.evidence)
        if self.ledger is not None:
            record_trigger(self.ledger, trigger, stage=self.stage, stamp=self.stamp, window=window,
                           elapsed_s=round(elapsed, 3))

    def run(self) -> MonitorResult:
        """Sample until the window is complete, a trigger stops it, or Ctrl-C; then judge and record."""
        settings = self.settings
        state = self.series.state()
        resumable = state.window is not None and (state.last_end is None or state.last_end.get("cut_short"))
        if self.fresh or not resumable:
            window = self.series.start_window(settings.window_s, settings.interval_s)
            samples: list[Sample] = []
            recorded: dict[str, str] = {}
        else:
            window, samples, recorded = state.window, list(state.samples), dict(state.triggers)
        first_of_pass = len(samples)  # this pass's own samples start here (a resumed window has earlier ones)
        # A resumed window continues on its schedule: the next tick after the last stored sample.
        offset = round(samples[-1].elapsed_s + settings.interval_s, 3) if samples else 0.0
        self.series.start_session(window, resumed_at_s=offset)
        progress = _Progress(self.console, self.progress, settings.window_s)
        runner = asyncio.Runner()
        cut_short = complete = False
        stopped_by: str | None = None
        reason = "window complete"
        started = self._clock()
        elapsed = offset
        try:
            if self.probes is not None:
                for _ in range(self.warmup_rounds):  # untimed: a restart's first requests open pools and indexes
                    runner.run(self.probes.run())
                if self.warmup_rounds and self.logs is not None:
                    self.logs.drain()  # the warm-up's own log lines are before the window
                started = self._clock()
            tick = 0
            while True:
                elapsed = offset + (self._clock() - started)
                if elapsed >= settings.window_s and samples and samples[-1].elapsed_s >= settings.window_s:
                    complete = True
                    break
                sample = runner.run(self._collect(len(samples) + 1, elapsed))
                with _sigint_deferred():
                    self.series.append_sample(window, sample)
                    samples.append(sample)
                    fired = [t for t in evaluate_triggers(samples, settings, prior_leaks=self.prior_leaks) if t.fired]
                    for trigger in fired:
                        if trigger.name not in recorded:
                            recorded[trigger.name] = trigger.evidence
                            self._record_trigger(window, trigger, sample.elapsed_s)
                progress.update(samples, settings.window_s, list(recorded))
                if self.on_sample is not None:
                    self.on_sample(sample)
                if recorded and settings.stop_on_trigger:
                    stopped_by = next(iter(recorded))
                    reason = f"stopped by trigger {stopped_by}"
                    break
                if sample.elapsed_s >= settings.window_s:
                    complete = True
                    break
                tick += 1
                due = started + tick * settings.interval_s
                now = self._clock()
                while due <= now:  # a slow tick skips the ticks it overran
                    tick += 1
                    due = started + tick * settings.interval_s
                end_at = started + (settings.window_s - offset)
                self._sleep(max(0.0, min(due, end_at) - now))
        except KeyboardInterrupt:
            cut_short = True
            reason = "interrupted (Ctrl-C)"
            elapsed = samples[-1].elapsed_s if samples else offset
        finally:
            progress.stop()
            try:
                runner.run(self._close_async())
            finally:
                runner.close()
                if self.logs is not None:
                    self.logs.close()
        elapsed = samples[-1].elapsed_s if samples else elapsed
        with _sigint_deferred():
            self.series.append_end(window, cut_short=cut_short, complete=complete, reason=reason, elapsed_s=elapsed)
            return self._finish(window, samples, elapsed, cut_short, complete, stopped_by, reason,
                                first_of_pass=first_of_pass)

    def _finish(self, window: int, samples: list[Sample], elapsed: float, cut_short: bool, complete: bool,
                stopped_by: str | None, reason: str, *, first_of_pass: int = 0) -> MonitorResult:
        triggers = tuple(evaluate_triggers(samples, self.settings, prior_leaks=self.prior_leaks))
        criteria = tuple(evaluate_criteria(samples, self.settings, prior_leaks=self.prior_leaks))
        figures = monitor_figures(samples)
        result = MonitorResult(window, self.settings.window_s, elapsed, tuple(samples), cut_short, complete,
                               stopped_by, triggers, criteria, figures)
        if self.ledger is not None:
            self.ledger.append({
                **self.stamp, "kind": "monitor", "stage": self.stage, "window": window,
                "window_s": self.settings.window_s, "interval_s": self.settings.interval_s,
                "elapsed_s": elapsed, "samples": len(samples), "cut_short": cut_short, "complete": complete,
                "stopped_by": stopped_by, "reason": reason, "series": self.series.path.name, "figures": figures,
                "criteria": [criterion_record(c) for c in criteria],
                "triggers": [{"name": t.name, "evidence": t.evidence} for t in triggers if t.fired],
            })
            self.ledger.append({**self.stamp, **window_pass_record(
                samples[first_of_pass:], window=window, window_s=self.settings.window_s,
                interval_s=self.settings.interval_s, triggers=triggers, criteria=criteria, cut_short=cut_short,
                complete=complete, stage=self.stage)})
        return result
