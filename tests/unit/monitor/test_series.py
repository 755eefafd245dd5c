"""monitor.jsonl: append-only, redacted, strict on bad lines, windows and sessions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cutover.monitor.errors import SeriesError
from pytest_cutover.monitor.samples import MonitorSeries, Sample
from pytest_cutover.redact import Secret

from .factory import probe, sample


def test_round_trip_and_windows(tmp_path: Path) -> None:
    series = MonitorSeries.for_run(tmp_path, "r1")
    assert series.path == tmp_path / "r1" / "monitor.jsonl"
    assert series.state().window is None
    w = series.start_window(60.0, 1.0)
    series.start_session(w, resumed_at_s=0.0)
    s1 = sample(1, 0.0, [probe(), probe("search", leak=True)], rss=5, db=3, evidence=("ERROR x",))
    series.append_sample(w, s1)
    series.append_trigger(w, "rls-leak", "leak seen")
    series.append_end(w, cut_short=True, complete=False, reason="interrupted", elapsed_s=0.0)
    state = series.state()
    assert (state.window, state.window_s, state.sessions, state.complete) == (1, 60.0, 1, False)
    assert state.samples == [s1]
    assert isinstance(state.samples[0], Sample)
    assert state.triggers == {"rls-leak": "leak seen"}
    assert state.last_end["cut_short"] is True
    w2 = series.start_window(60.0, 1.0)
    assert w2 == 2
    assert series.state().samples == []


def test_records_are_redacted(tmp_path: Path) -> None:
    secret = Secret("postgresql://app:hunter2-monitor@db:6543/postgres")
    series = MonitorSeries(tmp_path / "monitor.jsonl")
    w = series.start_window(1, 1)
    series.append_trigger(w, "database-connection-failures", f"cannot reach {secret.get()} with Bearer abcdef123456")
    text = series.path.read_text()
    assert "hunter2-monitor" not in text and "abcdef123456" not in text
    assert "app:***@db:6543" in text


def test_truncated_line_is_an_error(tmp_path: Path) -> None:
    series = MonitorSeries(tmp_path / "monitor.jsonl")
    series.start_window(1, 1)
    with series.path.open("a") as fh:
        fh.write('{"kind": "sample", "window": 1, "seq"')
    with pytest.raises(SeriesError, match=r"monitor.jsonl line 2 is truncated \(no newline at the end\)"):
        series.state()


def test_foreign_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "monitor.jsonl"
    path.write_text(json.dumps({"hello": 1}) + "\n")
    with pytest.raises(SeriesError, match="record 1 has no 'kind' or 'window'"):
        MonitorSeries(path).records()
