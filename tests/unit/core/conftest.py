"""Shared helpers for the plugin's self-tests: run pytest on a throwaway suite and read its ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

STAGED_SUITE = '''
import pytest

@pytest.mark.precutover
def test_pre(record_figure):
    """Vector count verified in Qdrant"""
    record_figure("points", 3)

@pytest.mark.sync
def test_sync():
    pass

@pytest.mark.switch
def test_switch():
    pass

@pytest.mark.smoke
def test_smoke():
    pass

@pytest.mark.rls
def test_rls():
    pass

@pytest.mark.monitor
def test_monitor():
    pass

def test_unstaged():
    pass
'''


@dataclass
class CutoverRun:
    """A finished pytest run plus the ledger it left."""

    result: pytest.RunResult
    pytester: pytest.Pytester
    run: str

    @property
    def ledger_path(self) -> Path:
        return self.pytester.path / "reports" / self.run / "ledger.jsonl"

    def records(self) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        return [json.loads(line) for line in self.ledger_path.read_text().splitlines()]

    def verdicts(self) -> dict[str, str]:
        """stage -> verdict of this invocation's records (last one wins per stage, for assertions only)."""
        return {r["stage"]: r["verdict"] for r in self.records() if r["kind"] == "stage"}

    @property
    def output(self) -> str:
        return self.result.stdout.str() + self.result.stderr.str()


class CutoverPytester:
    """``pytester`` wrapped to run the cutover plugin and return the parsed ledger."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path

    def suite(self, source: str = STAGED_SUITE, name: str = "test_cutover_suite") -> None:
        self.pytester.makepyfile(**{name: source})

    def run(self, *args: str, run: str = "r1", subprocess: bool = False) -> CutoverRun:
        argv = ["-p", "no:cacheprovider", "-p", "no:benchmark", f"--cutover-run={run}", *args]
        if subprocess:
            result = self.pytester.runpytest_subprocess(*argv, timeout=120)
        else:
            result = self.pytester.runpytest(*argv)
        return CutoverRun(result, self.pytester, run)


@pytest.fixture
def cutover_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> CutoverPytester:
    """A pytester whose runs use the cutover plugin, isolated from the caller's environment."""
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    return CutoverPytester(pytester)
