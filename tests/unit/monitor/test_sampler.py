"""The sampler against the loopback fake app: each planted fault raises its trigger; Ctrl-C and resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from pytest_cutover.ledger import Ledger
from pytest_cutover.monitor.logs import FileFollower, LogWatcher
from pytest_cutover.monitor.probes import ProbeSet
from pytest_cutover.monitor.sampler import Sampler
from pytest_cutover.monitor.samples import MonitorSeries
from pytest_cutover.monitor.settings import MonitorSettings
from pytest_cutover.monitor.system import SystemSampler

from .fakeapp import ServedApp

FAST = MonitorSettings(window_s=1.0, interval_s=0.1, min_requests=20, error_rate_span_s=None, conn_failure_count=3,
                       critical_failures=3)
RSS_100_MIB = "echo 104857600"


def _sampler(tmp_path: Path, fake_app: ServedApp, probe_set: ProbeSet, settings: MonitorSettings = FAST,
             **kw: object) -> Sampler:
    return Sampler(settings, series=MonitorSeries(tmp_path / "run" / "monitor.jsonl"), probes=probe_set,
                   logs=LogWatcher(FileFollower(fake_app.app.log_file)),
                   system=SystemSampler(rss_command=RSS_100_MIB), ledger=Ledger(tmp_path / "run" / "ledger.jsonl"),
                   stamp={"run": "r1"}, **{"progress": False, **kw})


def _records(tmp_path: Path, kind: str) -> list[dict]:
    return [r for r in Ledger(tmp_path / "run" / "ledger.jsonl").records() if r["kind"] == kind]


def test_clean_window_passes_every_criterion(tmp_path: Path, fake_app: ServedApp, probe_set: ProbeSet) -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    started = time.monotonic()
    result = _sampler(tmp_path, fake_app, probe_set, progress=True, console=console).run()
    took = time.monotonic() - started
    assert 1.0 <= took < 8.0
    assert result.complete and not result.cut_short and result.stopped_by is None
    assert result.fired == []
    elapsed = [s.elapsed_s for s in result.samples]
    assert 3 <= len(elapsed) <= 12 and elapsed == sorted(elapsed), elapsed  # on a loaded host slow ticks skip ticks
    assert result.samples[-1].elapsed_s >= 1.0
    assert [s.seq for s in result.samples] == list(range(1, len(result.samples) + 1))
    assert all(c.ok for c in result.criteria), [c.message for c in result.criteria if not c.ok]
    assert result.ok
    assert result.figures["probe_requests"] == 7 * len(result.samples)
    assert result.figures["error_rate"] == 0.0
    assert result.figures["log_requests"] > 0
    assert result.figures["rss_end_bytes"] == 104857600
    (monitor,) = _records(tmp_path, "monitor")
    assert (monitor["run"], monitor["stage"], monitor["complete"], monitor["cut_short"]) == ("r1", "monitor", True,
                                                                                             False)
    assert monitor["samples"] == len(result.samples)
    assert [c["name"] for c in monitor["criteria"]] == ["error-rate", "no-rls-leaks", "vector-search-p95",
                                                        "storage-operations", "database-stable", "memory-slope"]
    assert _records(tmp_path, "trigger") == []
    assert MonitorSeries(tmp_path / "run" / "monitor.jsonl").samples() == list(result.samples)
    shown = console.file.getvalue()
    assert "monitor" in shown and "errors 0.0%" in shown and "search p95" in shown and "triggers: none" in shown


def test_error_spike_raises_error_rate(tmp_path: Path, fake_app: ServedApp, probe_set: ProbeSet) -> None:
    fake_app.app.faults.error_share = 0.3
    result = _sampler(tmp_path, fake_app, probe_set, FAST.with_(window_s=3.0)).run()
    assert result.stopped_by == "error-rate"
    assert not result.complete
    assert result.samples[-1].elapsed_s < 3.0
    (trigger, *_) = _records(tmp_path, "trigger")
    assert (trigger["name"], trigger["stage"], trigger["run"]) == ("error-rate", "monitor", "r1")
    assert "above the 5.0% rollback rate" in trigger["evidence"]
    assert result.samples[-1].logs.request_errors > 0
    error_criterion = next(c for c in result.criteria if c.name == "error-rate")
    assert not error_criterion.ok


def test_slow_search_fails_p95_and_a_search_timeout_breaks_search(tmp_path: Path, fake_app: ServedApp,
                                                                   probe_set: ProbeSet) -> None:
    fake_app.app.faults.slow_search_ms = 150
    slow = _sampler(tmp_path, fake_app, probe_set, FAST.with_(window_s=0.6)).run()
    assert slow.complete and slow.fired == []
    p95 = next(c for c in slow.criteria if c.name == "vector-search-p95")
    assert not p95.ok and p95.figure >= 150
    assert p95.message.startswith(f"vector search p95 {p95.figure:.1f} ms")

    probe_set.timeout_s = 0.1  # now every search times out
    broken = _sampler(tmp_path, fake_app, probe_set, FAST.with_(stop_on_trigger=False), fresh=True).run()
    assert broken.window == 2 and broken.complete and broken.stopped_by is None
    fired = {t.name: t.evidence for t in broken.fired}
    # 2 of 7 probes failing is also > 5%; on a loaded machine a 0.1 s timeout may break other probes too.
    assert {"error-rate", "vector-search-broken"} <= set(fired)
    assert "every search probe failed or leaked in 3 consecutive samples" in fired["vector-search-broken"]
    assert "timeout after 0.1 s" in fired["vector-search-broken"]
    assert {r["name"] for r in _records(tmp_path, "trigger")} == set(fired)


def test_db_connection_failures_from_the_app_log(tmp_path: Path, fake_app: ServedApp, probe_set: ProbeSet) -> None:
    fake_app.app.faults.db_conn_failures = True
    result = _sampler(tmp_path, fake_app, probe_set, FAST.with_(window_s=3.0, critical_probes=())).run()
    names = [t.name for t in result.fired]
    assert "database-connection-failures" in names
    evidence = next(t.evidence for t in result.fired if t.name == "database-connection-failures")
    assert "ConnectionDoesNotExistError" in evidence
    assert not next(c for c in result.criteria if c.name == "database-stable").ok


def test_db_connection_failures_from_the_monitor_own_connection(tmp_path: Path, fake_app: ServedApp,
                                                                probe_set: ProbeSet) -> None:
    from pytest_cutover.rehearsal.procs import free_port

    dsn = f"postgresql://monitor:pw-not-shown-9@127.0.0.1:{free_port()}/postgres"
    sampler = _sampler(tmp_path, fake_app, probe_set, FAST.with_(window_s=3.0))
    sampler.system = SystemSampler(rss_command=RSS_100_MIB, target_dsn=dsn, timeout_s=1.0)
    result = sampler.run()
    assert result.stopped_by == "database-connection-failures"
    assert result.samples[0].db_errors == 1
    assert "database connection failed" in result.samples[0].notes[0]
    text = (tmp_path / "run" / "monitor.jsonl").read_text() + (tmp_path / "run" / "ledger.jsonl").read_text()
    assert "pw-not-shown-9" not in text


def test_cross_org_leak_partway_raises_rls_leak(tmp_path: Path, fake_app: ServedApp, probe_set: ProbeSet) -> None:
    def leak_after_three(sample: object) -> None:
        if sample.seq == 3:
            fake_app.app.faults.cross_org_leak = True

    result = _sampler(tmp_path, fake_app, probe_set, FAST.with_(window_s=3.0), on_sample=leak_after_three).run()
    assert result.stopped_by == "rls-leak"
    assert len(result.samples) == 4
    assert not any(p.leak for s in result.samples[:3] for p in s.probes)
    evidence = result.fired[0].evidence
    assert "search:org_0001 at" in evidence and "(sample 4) returned rows of org_0002" in evidence
    (record,) = [r for r in _records(tmp_path, "trigger") if r["name"] == "rls-leak"]
    assert record["evidence"] == evidence
    assert not next(c for c in result.criteria if c.name == "no-rls-leaks").ok


def test_interrupt_records_cut_short_and_resume_finishes_the_window(tmp_path: Path, fake_app: ServedApp,
                                                                    probe_set: ProbeSet) -> None:
    def interrupt(sample: object) -> None:
        if sample.seq == 3:
            raise KeyboardInterrupt

    settings = FAST.with_(window_s=1.5)  # room for 3 samples even when a loaded host skips ticks
    first = _sampler(tmp_path, fake_app, probe_set, settings, on_sample=interrupt).run()
    assert first.cut_short and not first.complete
    assert len(first.samples) == 3
    series = MonitorSeries(tmp_path / "run" / "monitor.jsonl")
    state = series.state()
    assert state.last_end["cut_short"] is True and state.last_end["reason"] == "interrupted (Ctrl-C)"
    (record,) = _records(tmp_path, "monitor")
    assert record["cut_short"] is True

    second = _sampler(tmp_path, fake_app, probe_set, settings).run()
    assert second.complete and second.window == first.window == 1
    assert [s.seq for s in second.samples] == list(range(1, len(second.samples) + 1))
    resumed_at = round(first.samples[2].elapsed_s + 0.1, 3)  # the next tick of the schedule
    assert resumed_at <= second.samples[3].elapsed_s < resumed_at + 0.5
    assert len(second.samples) > 3 and second.samples[-1].elapsed_s < 2.5  # the remaining ~1.3 s, not a new window
    assert series.state().sessions == 2
    assert len(_records(tmp_path, "monitor")) == 2

    third = _sampler(tmp_path, fake_app, probe_set, settings, on_sample=interrupt).run()  # complete: not resumed
    assert third.window == 2 and third.samples[0].seq == 1


CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from rich.console import Console
    from pytest_cutover.ledger import Ledger
    from pytest_cutover.monitor.probes import ProbeSet, build_probe_specs
    from pytest_cutover.monitor.sampler import Sampler
    from pytest_cutover.monitor.samples import MonitorSeries
    from pytest_cutover.monitor.settings import MonitorSettings

    url, run = sys.argv[1], Path(sys.argv[2])
    probes = ProbeSet(build_probe_specs(url, orgs=["org_0001"], search_dim=4), token=sys.argv[3])
    sampler = Sampler(MonitorSettings(window_s=60.0, interval_s=0.1), series=MonitorSeries(run / "monitor.jsonl"),
                      probes=probes, ledger=Ledger(run / "ledger.jsonl"), console=Console(file=sys.stderr))
    result = sampler.run()
    print(json.dumps({"cut_short": result.cut_short, "samples": len(result.samples)}))
""")


@pytest.mark.slow
def test_sigint_to_a_running_monitor(tmp_path: Path, fake_app: ServedApp) -> None:
    from .fakeapp import TOKEN

    run = tmp_path / "run"
    series = MonitorSeries(run / "monitor.jsonl")
    child = subprocess.Popen([sys.executable, "-c", CHILD, fake_app.url, str(run), TOKEN], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while len(series.state().samples) < 3:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the monitor wrote no 3 samples within 20 s"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGINT)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    summary = json.loads(out)
    assert summary["cut_short"] is True and summary["samples"] >= 3
    state = series.state()
    assert state.last_end["cut_short"] is True
    assert len(state.samples) == summary["samples"]
    (record,) = [r for r in Ledger(run / "ledger.jsonl").records() if r["kind"] == "monitor"]
    assert record["cut_short"] is True and record["reason"] == "interrupted (Ctrl-C)"


def test_ctrl_c_during_a_write_is_held_until_the_write_is_done(tmp_path: Path) -> None:
    from pytest_cutover.monitor.sampler import _sigint_deferred

    series = MonitorSeries(tmp_path / "monitor.jsonl")
    window = series.start_window(1.0, 0.1)
    with pytest.raises(KeyboardInterrupt), _sigint_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        series.append_trigger(window, "rls-leak", "written despite the Ctrl-C")
    assert series.state().triggers == {"rls-leak": "written despite the Ctrl-C"}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
