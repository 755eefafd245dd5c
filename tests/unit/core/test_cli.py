"""The ``cutover`` command: status from a real ledger, exit codes, commands that have not landed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from pytest_cutover import cli as cli_module
from pytest_cutover.cli import main
from pytest_cutover.ledger import Ledger

from .conftest import CutoverPytester


def test_status_reads_a_ledger_written_by_a_real_run(cutover_pytester: CutoverPytester,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover or sync", "--cutover-force", "rehearsal only",
                                run="prod-2026-11-26").result.ret == 0
    monkeypatch.chdir(cutover_pytester.path)
    capsys.readouterr()
    assert main(["status", "--run", "prod-2026-11-26", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["stage"], s["verdict"]) for s in data["stages"]] == [
        ("precutover", "passed"), ("sync", "passed"), ("switch", "not-run"), ("smoke", "not-run"),
        ("rls", "not-run"), ("monitor", "not-run")]
    assert main(["status", "--run", "prod-2026-11-26"]) == 0
    table = capsys.readouterr().out
    assert "precutover" in table and "passed" in table and "not-run" in table


def test_status_exits_1_when_a_stage_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Ledger.for_run(tmp_path, "r").append({"kind": "stage", "stage": "precutover", "verdict": "failed",
                                          "reason": "first failure: t.py::x"})
    assert main(["status", "--run", "r", "--reports-dir", str(tmp_path)]) == 1
    assert "first failure: t.py::x" in capsys.readouterr().out


def test_status_on_a_corrupt_ledger_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r" / "ledger.jsonl"
    path.parent.mkdir()
    path.write_text("{oops\n")
    assert main(["status", "--run", "r", "--reports-dir", str(tmp_path)]) == 2
    assert f"{path} line 1 is not valid JSON" in capsys.readouterr().err


def test_a_command_that_has_not_landed_says_so(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(cli_module.LAZY_COMMANDS, "future",
                        ("pytest_cutover.not_yet_written.cli", "future", "A later feature."))
    assert main(["future", "--anything"]) == 2
    assert "cutover future is not yet available" in capsys.readouterr().err


def test_every_command_has_help() -> None:
    ctx = click.Context(cli_module.cli)
    for name in cli_module.cli.list_commands(ctx):
        command = cli_module.cli.get_command(ctx, name)
        assert command is not None and command.get_help(ctx)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["status", "--run", "../x"]) == 2
    assert "not usable as a folder name" in capsys.readouterr().err


def test_the_installed_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "pytest_cutover", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert "status" in result.stdout and "rehearse" in result.stdout
