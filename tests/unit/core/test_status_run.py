"""``cutover status`` without a run named shows the latest run in the reports folder, and says so.

Issue 13 item 6: right after a rehearsal, ``cutover status`` said "no ledger yet for run default".
A run named by ``--run``, ``$CUTOVER_RUN`` or ``[run] id`` still wins, in that order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_cutover.cli import main
from pytest_cutover.context import latest_run
from pytest_cutover.ledger import Ledger

from .conftest import CutoverPytester


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``<tmp>/reports`` with two runs: ``older`` (precutover failed) written before ``newer`` (passed)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    base = tmp_path / "reports"
    for run, verdict, mtime in (("older", "failed", 1_000_000), ("newer", "passed", 2_000_000)):
        ledger = Ledger.for_run(base, run)
        ledger.append({"kind": "stage", "stage": "precutover", "verdict": verdict})
        os.utime(ledger.path, (mtime, mtime))
    return base


def _status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    code = main(["status", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_no_run_named_shows_the_latest_run_and_says_which(reports: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _status(capsys)
    assert (code, data["run"], data["run_source"]) == (0, "newer", "latest in reports/")
    assert data["stages"][0]["verdict"] == "passed"
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "run newer: latest in reports/" in out and "no ledger yet" not in out
    # the other run's ledger written last: it becomes the latest
    os.utime(reports / "older" / "ledger.jsonl", (3_000_000, 3_000_000))
    assert _status(capsys)[1]["run"] == "older"


@pytest.mark.parametrize("how", ["--run", "$CUTOVER_RUN", "[run] id"])
def test_a_named_run_wins_over_the_latest(how: str, reports: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    args: list[str] = []
    if how == "--run":
        args = ["--run", "older"]
    elif how == "$CUTOVER_RUN":
        monkeypatch.setenv("CUTOVER_RUN", "older")
    else:
        (tmp_path / "cutover.toml").write_text('[run]\nid = "older"\n')
    code, data = _status(capsys, *args)
    assert (code, data["run"]) == (1, "older")   # older's precutover failed: exit 1
    assert data["run_source"].startswith(how)
    if how == "[run] id":
        assert data["run_source"] == f"[run] id in {tmp_path / 'cutover.toml'}"


def test_precedence_between_named_runs(reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cutover.toml").write_text('[run]\nid = "from-config"\n')
    monkeypatch.setenv("CUTOVER_RUN", "from-env")
    assert _status(capsys, "--run", "older")[1]["run"] == "older"
    assert _status(capsys)[1]["run"] == "from-env"
    monkeypatch.delenv("CUTOVER_RUN")
    assert _status(capsys)[1]["run"] == "from-config"


def test_folders_that_are_not_runs_are_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    base = tmp_path / "reports"
    assert latest_run(base) is None                        # no reports folder at all
    (base / ".secrets" / "x").mkdir(parents=True)
    (base / ".secrets" / "ledger.jsonl").write_text("")   # not a run id
    (base / "no-ledger-here").mkdir()
    (base / "README.md").write_text("reports")
    assert latest_run(base) is None
    code, data = _status(capsys)
    assert (code, data["run"]) == (0, "default")
    assert data["run_source"].startswith("no run in reports/ yet")


def test_right_after_a_real_run_status_shows_it(cutover_pytester: CutoverPytester, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover", run="rehearsal-20261205-101010").result.ret == 0
    monkeypatch.chdir(cutover_pytester.path)
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "run rehearsal-20261205-101010: latest in reports/" in out
    assert "passed" in out and "no ledger yet" not in out
