"""The run ledger: atomic appends, strict reading, invalidation of later stages."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from pytest_cutover.errors import ConfigError, LedgerError
from pytest_cutover.ledger import Ledger, run_dir
from pytest_cutover.stages import FAILED, PASSED


def stage(ledger: Ledger, name: str, verdict: str = PASSED, **extra: object) -> None:
    ledger.append({"kind": "stage", "stage": name, "verdict": verdict, **extra})


def test_records_round_trip_and_are_stamped(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "r" / "ledger.jsonl")
    stage(ledger, "precutover", figures={"points": 10})
    (record,) = ledger.records()
    assert record["v"] == 1 and record["ts"].endswith("Z")
    assert record["figures"] == {"points": 10}


def test_a_record_needs_a_kind(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="needs a 'kind'"):
        Ledger(tmp_path / "l.jsonl").append({"stage": "sync"})


def test_secrets_are_redacted_before_they_reach_the_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append({"kind": "action", "action": "env-switch", "ok": True, "detail": "DATABASE_URL=postgresql://app:hunter2x@db:6543/postgres"})
    text = ledger.path.read_text()
    assert "hunter2x" not in text
    assert "postgresql://app:***@db:6543/postgres" in text


def test_rerunning_an_earlier_stage_invalidates_later_verdicts(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    for name in ("precutover", "sync", "switch", "smoke"):
        stage(ledger, name)
    assert list(ledger.stage_verdicts()) == ["precutover", "sync", "switch", "smoke"]
    stage(ledger, "sync")
    assert list(ledger.stage_verdicts()) == ["precutover", "sync"]
    stage(ledger, "precutover", FAILED, first_failure="t.py::x")
    verdicts = ledger.stage_verdicts()
    assert list(verdicts) == ["precutover"]
    assert verdicts["precutover"].verdict == FAILED and verdicts["precutover"].first_failure == "t.py::x"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"v":1,"kind":"stage","stage":"sync","verdict":"passed"}\n{"v":1,"kind":"st', "line 2 is truncated"),
        ('{"v":1,"kind":"stage","stage":"sync","verdict":"passed"}\nnot json\n', "line 2 is not valid JSON"),
        ('\n', "line 1 is empty"),
        ('[1,2]\n', "line 1 is not a ledger record"),
        ('{"v":9,"kind":"stage"}\n', "line 1 has schema version 9"),
        ('{"v":1,"kind":"stage","stage":"warmup"}\n', "line 1: unknown stage 'warmup'"),
    ],
)
def test_a_corrupt_ledger_names_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(content)
    with pytest.raises(LedgerError) as err:
        Ledger(path).records()
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_run_ids_must_be_folder_names(tmp_path: Path) -> None:
    assert run_dir(tmp_path, "prod-2026-11-26") == tmp_path / "prod-2026-11-26"
    with pytest.raises(ConfigError, match=r"run id '\.\./etc' is not usable as a folder name"):
        run_dir(tmp_path, "../etc")


def _writer(path: str, who: int, count: int) -> None:
    ledger = Ledger(path)
    for i in range(count):
        ledger.append({"kind": "note", "text": "concurrent", "who": who, "i": i, "pad": "x" * 5000})


def test_concurrent_writers_never_tear_a_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), who, 150)) for who in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    records = Ledger(path).records()
    assert len(records) == 450
    for who in range(3):
        assert [r["i"] for r in records if r["who"] == who] == list(range(150))
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_the_shared_jsonl_reader_is_strict_for_the_monitor_series_too(tmp_path: Path) -> None:
    """The ledger and monitor.jsonl share one reader: every public name exists, and bad lines name the line."""
    from pytest_cutover import jsonl

    assert all(hasattr(jsonl, name) for name in jsonl.__all__)
    path = tmp_path / "series.jsonl"
    jsonl.append_record(path, {"seq": 1})
    assert jsonl.read_records(path) == [{"seq": 1}]
    with path.open("a") as fh:
        fh.write("[1]\n\n")
    with pytest.raises(ValueError, match=r"series.jsonl line 2 is not a JSON object"):
        jsonl.read_records(path)


def test_an_undeclared_kind_or_a_missing_field_is_refused_where_it_is_written(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    with pytest.raises(LedgerError, match="undeclared record kind 'stge'"):
        ledger.append({"kind": "stge", "stage": "sync", "verdict": "passed"})
    with pytest.raises(LedgerError, match=r"'stage' record does not match its schema: verdict: Input should be"):
        ledger.append({"kind": "stage", "stage": "sync", "verdict": "PASSED"})
    with pytest.raises(LedgerError, match="'ack' record does not match its schema: who: Field required"):
        ledger.append({"kind": "ack", "at": "2026-12-05T08:00:00Z", "token": "s3cr3t-value"})
    assert not ledger.path.exists()


def test_a_hand_edited_record_fails_on_read_naming_the_line_but_no_value(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.append({"kind": "note", "text": "fine"})
    with ledger.path.open("a") as fh:
        fh.write(json.dumps({"v": 1, "kind": "stage", "stage": "sync", "verdict": "maybe",
                             "reason": "postgresql://a:hunter2x@h/db"}) + "\n")
    with pytest.raises(LedgerError) as caught:
        ledger.records()
    assert "line 2" in str(caught.value) and "verdict" in str(caught.value)
    assert "hunter2x" not in str(caught.value) and "maybe" not in str(caught.value)


def test_every_kind_the_code_writes_is_declared() -> None:
    import re

    from pytest_cutover.records import declared_kinds

    root = Path(__file__).resolve().parents[3] / "plugins" / "pytest_cutover"
    written = set()
    for path in root.rglob("*.py"):
        if "rehearsal" in path.parts:
            continue
        written |= set(re.findall(r'"kind": "([a-z0-9-]+)"', path.read_text()))
    # the monitor's own series (monitor.jsonl) has its own kinds; only the ledger's must be declared
    series_only = {"window", "session", "sample", "end", "search", "health", "command", "webhook", "slack"}
    assert written - series_only <= set(declared_kinds())
