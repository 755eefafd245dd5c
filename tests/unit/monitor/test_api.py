"""The library's public surface: exports resolve, the package import stays light, ledger records."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cutover.ledger import Ledger
from pytest_cutover.monitor.records import prior_leaks_from_ledger, record_trigger
from pytest_cutover.monitor.triggers import RLS_LEAK, Trigger

MODULES = ["", ".classify", ".criteria", ".errors", ".figures", ".logs", ".probes", ".records", ".runner",
           ".sampler", ".samples", ".settings", ".stats", ".system", ".tenancy", ".triggers"]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(f"pytest_cutover.monitor{name}")
    assert len(module.__all__) == len(set(module.__all__))
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_package_import_is_light() -> None:
    code = ("import sys, pytest_cutover.monitor, pytest_cutover.monitor.triggers, pytest_cutover.monitor.criteria; "
            "print(sorted(m for m in ('httpx', 'asyncpg', 'psutil', 'rich', 'pytest') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_any_stage_records_a_trigger_and_the_monitor_sees_prior_leaks(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    leak = Trigger(RLS_LEAK, True, "org_0002 read threads of org_0001 through the pooler", 1)
    stored = record_trigger(ledger, leak, stage="rls", stamp={"run": "r1"})
    assert (stored["kind"], stored["stage"], stored["run"], stored["name"]) == ("trigger", "rls", "r1", "rls-leak")
    record_trigger(ledger, Trigger(RLS_LEAK, True, "seen by the monitor"), stage="monitor")
    assert prior_leaks_from_ledger(ledger) == ["rls: org_0002 read threads of org_0001 through the pooler"]
    with pytest.raises(ValueError, match="trigger rls-leak did not fire"):
        record_trigger(ledger, Trigger(RLS_LEAK, False, "none"), stage="rls")
