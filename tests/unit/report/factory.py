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


SUITE = Path(__file__).resolve().parents[3] / "plugins/pytest_cutover/suite"


def suite_tests(name: str) -> list[tuple[str, str]]:
    """``(test id, runbook line)`` of each test in the packaged suite's ``test_<name>.py``: its ``runbook``
    marker, or each parametrised case's own (``test_no_trigger[error-rate]``)."""
    import importlib
    import inspect

    from _pytest.mark.structures import ParameterSet, get_unpacked_marks

    module = importlib.import_module(f"pytest_cutover.suite.test_{name}")
    out = []
    for fname, fn in inspect.getmembers(module, inspect.isfunction):
        if not fname.startswith("test_") or fn.__module__ != module.__name__:
            continue
        marks = get_unpacked_marks(fn)
        base = f"pytest_cutover/suite/test_{name}.py::{fname}"
        own = next((m.args[0] for m in marks if m.name == "runbook"), "")
        cases = [c for m in marks if m.name == "parametrize" for c in m.args[1] if isinstance(c, ParameterSet)]
        if not cases:
            out.append((fn.__code__.co_firstlineno, base, own))
        for case in cases:
            line = next((m.args[0] for m in case.marks if m.name == "runbook"), own)
            out.append((fn.__code__.co_firstlineno, f"{base}[{case.id}]", line))
    return [(tid, line) for _, tid, line in sorted(out, key=lambda t: t[0])]


_TABLES = ("orgs", "users", "threads", "messages", "memory_fragments", "attachments")
# Figures shaped like a rehearsal's: a per-table parity mapping and ~200 dotted rls probes.
_REHEARSAL_FIGURES: dict[str, dict[str, Any]] = {
    "precutover": {"attachments_without_content": 0, "files_with_conflict_markers": 0, "backup_age_hours": 2.5,
                   "fragments_with_vector_id": 1200, "collection_dimension": 1536},
    "sync": {"vectors": {"points": 120, "migrated": 120, "rejected": 0, "missing": 0, "bit_exact": 120,
                         "recall_at_10": 1.0, "duration_s": 1.8, "hnsw_index": "memory_fragments_embedding_hnsw_idx"},
             "parity": {t: {"old_rows": 4, "new_rows": 4, "ok": True, "tenants": 4, "differing_keys": [],
                            "mismatched_tenants": []} for t in _TABLES}},
    "rls": {"rls": {"app_role": "app_user", "bypassrls": False, "superuser": False,
                    **{f"{t}.{op}.{probe}": value for t in _TABLES for op in ("select", "insert", "update", "delete")
                       for probe, value in (("app_rows_affected", 0), ("b_rows", 12), ("b_unchanged", True),
                                            ("org_a", "org_0001"), ("org_b", "org_0002"),
                                            ("control_sqlstate", "42501"))}}},
}


def rehearsal_ledger(ctx: RunContext, *, trigger: bool = False, stop_after: str | None = None) -> list[str]:
    """A ledger shaped like a clean ``cutover rehearse``: every packaged test with its runbook line, the
    actions (maintenance, env switch, restart with its steps), the notifications and one monitor window.
    ``trigger``: the error-rate trigger fires in monitor (ROLLBACK); ``stop_after``: later stages never run."""
    ran: list[str] = []

    def at(seconds: float) -> str:
        return iso_utc(T0 + seconds)

    def record(seconds: float, body: dict[str, Any]) -> None:
        ctx.ledger.append({**body, **ctx.stamp(), "ts": at(seconds)})

    for index, name in enumerate(STAGES):
        base = index * 600
        failing = trigger and name == "monitor"
        tests = [{"id": tid, "outcome": "failed" if failing and line == "Error rate > 5%" else "passed",
                  "message": "trigger error-rate fired: 9.0% errors over 300 s" if failing and line == "Error rate > 5%"
                  else None, "duration": 0.5, "runbook": line} for tid, line in suite_tests(name)]
        if name == "sync":
            record(base + 10, {"kind": "action", "action": "maintenance-on", "ok": True, "detail": "HTTP 503"})
            for channel in ("users", "stakeholders"):
                record(base + 11, {"kind": "notification", "event": "maintenance-enabled", "channel": channel,
                                   "ok": True, "status": 200})
        if name == "switch":
            record(base + 10, {"kind": "action", "action": "env-switch", "ok": True,
                               "detail": "DATABASE_URL switched to the transaction pooler"})
            record(base + 40, {"kind": "action", "action": "restart", "ok": True, "detail": "restarted", "after": {
                "steps": [{"step": s, "ok": True, "detail": f"{s} ok"} for s in ("stop", "drain", "start", "health")]}})
        if name == "monitor":
            record(base + 200, {"kind": "monitor-window", "window": 1, "ok": not trigger, "samples": 30,
                                "start": at(base + 20), "end": at(base + 200), "error_rate": 0.09 if trigger else 0.0,
                                "probe_requests": 300, "probe_failures": 27 if trigger else 0, "triggers": [],
                                "stage": "monitor"})
            if trigger:
                record(base + 201, {"kind": "trigger", "name": "error-rate", "stage": "monitor",
                                    "evidence": "9.0% of 300 requests failed over 300 s (limit 5%)"})
                record(base + 230, {"kind": "rollback", "step": "restore DATABASE_URL", "ok": True,
                                    "detail": "restored"})
            else:
                record(base + 210, {"kind": "action", "action": "maintenance-off", "ok": True, "detail": "HTTP 200"})
                record(base + 211, {"kind": "notification", "event": "maintenance-disabled", "channel": "users",
                                    "ok": True, "status": 200})
        counts: dict[str, int] = {}
        for t in tests:
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
        figures = _REHEARSAL_FIGURES.get(name, {})
        record(base + 300, {"kind": "stage", "invocation": "inv1", "stage": name,
                            "verdict": "failed" if failing else "passed", "start": at(base), "end": at(base + 300),
                            "duration": 300.0, "first_failure": tests[0]["id"] if failing else None, "reason": None,
                            "counts": counts, "tests": tests, "skipped": [], "figures": figures})
        ran.append(name)
        if name == stop_after:
            break
    return ran
