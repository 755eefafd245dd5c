"""Synthetic ledgers for the report's self-tests: real ``Ledger.append`` records, no database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_cutover.config import CutoverConfig, parse_config
from pytest_cutover.context import RunContext
from pytest_cutover.ledger import iso_utc
from pytest_cutover.stages import PASSED, STAGES

CHECK_REPORT = Path("/work/shared/tools/check-report")
RUNBOOK = {
    "precutover": ["All syntax verified with `py_compile`", "No merge conflicts", "Database backups taken"],
    "sync": ["Maintenance mode enabled", "Vector migration completed successfully"],
    "switch": ["Database URL switched to Supabase pooler", "Services restarted"],
    "smoke": ["All smoke tests passed"],
    "rls": ["No RLS data leaks"],
    "monitor": ["Error rate < 1%", "Maintenance mode disabled"],
}
T0 = 1_800_000_000.0


def config(**sections: Any) -> CutoverConfig:
    data = {"run": {"id": "night", "lead": "Ada Lovelace"}, **sections}
    return parse_config(data, env={})


def context(tmp_path: Path, cfg: CutoverConfig | None = None, run: str = "night") -> RunContext:
    return RunContext(run=run, reports_dir=tmp_path / "reports", config=cfg, suite_dir=tmp_path,
                      git_rev="abc123def456")


def stage(ctx: RunContext, name: str, verdict: str = PASSED, *, invocation: str = "inv1", offset: float | None = None,
          tests: list[dict[str, Any]] | None = None, figures: dict[str, Any] | None = None,
          skipped: list[dict[str, str]] | None = None, forced: str | None = None, forced_over: str | None = None,
          reason: str | None = None, first_failure: str | None = None) -> dict[str, Any]:
    """Append one stage record shaped like the plugin's, and return it."""
    index = STAGES.index(name)
    start = T0 + (offset if offset is not None else index * 600)
    if tests is None:
        outcome = {"passed": "passed", "failed": "failed", "blocked": "blocked"}.get(verdict, "passed")
        tests = [{"id": f"tests/cutover/test_{name}.py::test_{i}", "outcome": outcome if i == 0 else "passed",
                  "message": f"{name} check {i} went wrong" if outcome != "passed" and i == 0 else None,
                  "duration": 1.25, "runbook": line} for i, line in enumerate(RUNBOOK[name])]
    counts: dict[str, int] = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return ctx.ledger.append({
        "kind": "stage", **ctx.stamp(), "invocation": invocation, "stage": name, "verdict": verdict,
        "start": iso_utc(start), "end": iso_utc(start + 300), "duration": 300.0,
        "first_failure": first_failure or (tests[0]["id"] if verdict == "failed" else None),
        "reason": reason, "forced": forced, "forced_over": forced_over, "counts": counts, "tests": tests,
        "skipped": skipped or [], "figures": figures or {},
    })


def all_passed(ctx: RunContext, *, figures: bool = True) -> None:
    for name in STAGES:
        figs = {}
        if figures and name == "sync":
            figs = {"vectors": {"points": 120, "migrated": 118, "rejected": 2, "missing": 1, "bit_exact": 118,
                                "recall_at_10": 0.99}}
        stage(ctx, name, figures=figs)


def check_report(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the project's contract checker on ``path`` as a subprocess."""
    return subprocess.run([sys.executable, str(CHECK_REPORT), str(path)], capture_output=True, text=True, timeout=60)
