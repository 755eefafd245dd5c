"""The fault matrix: one rehearsal per fault, each up to the stage that guards it, as a table.

Each row is a real ``cutover rehearse --fault NAME --until STAGE`` in its own process and stack; the
row says which stage failed first and with which message, and whether that is the guarding stage.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal.faults import list_faults, validate_faults

__all__ = ["MatrixRow", "matrix_row", "run_matrix"]


@dataclass(frozen=True)
class MatrixRow:
    """What one fault's rehearsal showed."""

    fault: str
    guard: str
    failed: str | None
    message: str

    @property
    def caught(self) -> bool:
        """The guarding stage is the first that failed."""
        return self.failed == self.guard


def matrix_row(fault: str, guard: str, report: dict) -> MatrixRow:
    """The first failed stage of ``report`` and the first failure message in it."""
    for stage in report.get("stages", []):
        if stage.get("verdict") == "failed":
            tests = [t for t in stage.get("tests", []) if t.get("outcome") in ("failed", "error")]
            message = (tests[0].get("message") or "").strip().splitlines()[0] if tests else ""
            return MatrixRow(fault, guard, stage["name"], redact(message)[:160])
    return MatrixRow(fault, guard, None, f"no stage failed (status {report.get('status')})")


def run_matrix(names: Sequence[str], *, reports_dir: Path | None, monitor_window: float,
               echo: Callable[[str], None]) -> int:
    """Rehearse each fault; print the table; exit 0 only if every fault failed its guarding stage."""
    faults = validate_faults(names) if names else list_faults()
    base = (reports_dir or Path(os.environ.get("CUTOVER_REPORTS_DIR") or "reports")).resolve()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    rows: list[MatrixRow] = []
    echo(f"{'fault':<22} {'guard':<11} {'failed':<11} message")
    for fault in faults:
        run = f"matrix-{stamp}-{fault.name}"
        cmd = [sys.executable, "-m", "pytest_cutover", "rehearse", "--run", run, "--fault", fault.name,
               "--until", fault.stage, "--reports-dir", str(base), "--monitor-window", str(monitor_window)]
        subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        path = base / run / "report.json"
        report = json.loads(path.read_text()) if path.exists() else {"status": "no report written"}
        row = matrix_row(fault.name, fault.stage, report)
        rows.append(row)
        mark = "" if row.caught else "  <-- NOT CAUGHT BY ITS STAGE"
        echo(f"{row.fault:<22} {row.guard:<11} {row.failed or '-':<11} {row.message}{mark}")
    missed = [r.fault for r in rows if not r.caught]
    echo(f"{len(rows) - len(missed)} of {len(rows)} faults failed the stage that guards them"
         + (f"; not caught: {', '.join(missed)}" if missed else ""))
    (base / f"fault-matrix-{stamp}.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 1 if missed else 0
