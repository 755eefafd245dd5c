"""``cutover rehearse`` end to end, as the README's main command: the real CLI, the real embedded stack.

A clean rehearsal passes every stage in order and leaves a signed report that follows the report
contract.  Every fault of the catalog failing exactly the stage that guards it is proven in
``tests/unit/fault_matrix``.

The clean rehearsal is also the hostile-password one: a raw ``/`` and ``#`` are put inside every database
password the stack makes (target, pooler, app and old-database roles; normally ``secrets.token_urlsafe``,
which has neither).  The stack percent-encodes them in the URLs it writes to the config, as an operator must
(a raw one in the config stops at load: ``tests/unit/core/test_redaction_fuzz.py``), the run still reaches
SUCCESS, and no piece of any password reaches the terminal or the reports.  One rehearsal proves both: a
password the URL grammar reserves is the harder case of the same clean path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.core.test_redaction_fuzz import forms

# One worker under xdist (--dist loadgroup): the clean rehearsal behind the module fixture then runs once.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("rehearsal-e2e")]

ROOT = Path(__file__).resolve().parents[3]
CHECK_REPORT = ROOT.parent / "shared" / "tools" / "check-report"
STAGES = ["precutover", "sync", "switch", "smoke", "rls", "monitor"]


# ``python -c``: the migration's reader processes (spawn) do not re-run this code, they only read Qdrant.
HOSTILE_PASSWORDS = """
import json, os, secrets, sys, types
import pytest_cutover.rehearsal.postgres as pg
made = []
def hostile(n=None):
    base = secrets.token_urlsafe(n)
    made.append(base[:8] + "/" + base[8:16] + "#" + base[16:])
    return made[-1]
pg.secrets = types.SimpleNamespace(token_urlsafe=hostile)
from pytest_cutover.cli import main
try:
    code = main(sys.argv[2:])
finally:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made, fh)
sys.exit(code)
"""


def rehearse(tmp: Path, run: str, *args: str, timeout: float = 600,
             passwords_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``cutover rehearse`` in a child process; with ``passwords_file``, every database password of the stack
    holds a raw ``/`` and ``#``, and the file lists them afterwards."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    head = ["-m", "pytest_cutover"] if passwords_file is None else ["-c", HOSTILE_PASSWORDS, str(passwords_file)]
    return subprocess.run([sys.executable, *head, "rehearse", "--run", run, "--reports-dir",
                           str(tmp), "--monitor-window", "6", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def verdicts(report: dict) -> dict[str, str]:
    return {s["name"]: s["verdict"] for s in report["stages"]}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("rehearse")
    return tmp, rehearse(tmp, "e2e-clean", passwords_file=tmp / "passwords.json")


def test_a_clean_rehearsal_passes_every_stage_in_order(clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, done = clean
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = json.loads((tmp / "e2e-clean" / "report.json").read_text())
    assert report["status"] == "SUCCESS"
    assert [s["name"] for s in report["stages"]] == STAGES
    assert set(verdicts(report).values()) == {"passed"}
    vectors = report["figures"]["vectors"]
    assert vectors["points"] > 0 and vectors["migrated"] == vectors["points"] == vectors["bit_exact"]
    assert vectors["rejected"] == vectors["missing"] == 0
    ledger = [json.loads(line) for line in (tmp / "e2e-clean" / "ledger.jsonl").read_text().splitlines()]
    stage_records = [r["stage"] for r in ledger if r["kind"] == "stage"]
    assert stage_records == STAGES
    assert "stack folder" in done.stdout and "SUCCESS" in done.stdout


@pytest.mark.skipif(not CHECK_REPORT.exists(), reason=f"{CHECK_REPORT} is not beside this checkout")
def test_the_report_follows_the_contract(clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, _ = clean
    checked = subprocess.run([sys.executable, str(CHECK_REPORT), str(tmp / "e2e-clean" / "report.json")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout


def test_the_report_compares_every_step_of_the_night_with_its_plan(
        clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, _ = clean
    plan = json.loads((tmp / "e2e-clean" / "report.json").read_text())["plan"]
    assert [r["state"] for r in plan["rows"]] == ["done"] * 10, plan["rows"]
    assert all(r["actual_s"] is not None for r in plan["rows"] if r["step"] not in ("notify-start", "notify-end"))
    assert plan["window_minutes"] == 120  # the rehearsal's config declares its window
    monitor = next(r for r in plan["rows"] if r["step"] == "monitor")
    assert monitor["planned_s"] == 6.0 and monitor["delta_s"] is not None  # --monitor-window 6


def test_the_report_is_signed_and_any_one_byte_change_fails_verification(
        clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, _ = clean
    report = tmp / "e2e-clean" / "report.json"
    verify = [sys.executable, "-m", "pytest_cutover", "report", "verify", str(report)]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ledger = tmp / "e2e-clean" / "ledger.jsonl"
    original = ledger.read_bytes()
    ledger.write_bytes(original[:-2] + b" \n")
    try:
        bad = subprocess.run(verify, capture_output=True, text=True, timeout=60)
    finally:
        ledger.write_bytes(original)
    assert bad.returncode == 1
    assert "ledger.jsonl" in bad.stderr


def test_no_password_of_the_stack_reaches_the_reports(clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, done = clean
    unmasked = re.compile(r"[a-z+]+://[^/\s:@\"']+:(?!\*\*\*@)[^@\s\"']+@")
    assert not unmasked.search(done.stdout + done.stderr)
    files = [p for p in (tmp / "e2e-clean").rglob("*") if p.is_file() and p.suffix != ".zip"]
    assert len(files) > 3
    for path in files:
        hit = unmasked.search(path.read_text(errors="replace"))
        assert hit is None, f"{path} holds an unmasked DSN: {hit.group(0)[:30]}..."


def test_no_piece_of_a_password_with_slash_and_hash_reaches_the_terminal_or_the_reports(
        clean: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    tmp, done = clean
    passwords = json.loads((tmp / "passwords.json").read_text())
    assert passwords and all("/" in p and "#" in p for p in passwords)
    blobs = {"terminal": (done.stdout + done.stderr).encode()}
    blobs |= {str(p): p.read_bytes() for p in tmp.rglob("*")  # the whole reports folder, but the list itself
              if p.is_file() and ".secrets" not in p.parts and p.name != "passwords.json"}
    assert len(blobs) > 10
    hits = [(where, len(form)) for pw in passwords for form in forms(pw)
            for where, blob in blobs.items() if form.encode() in blob]
    assert not hits, f"{len(hits)} pieces of passwords found, first in {hits[:3]}"


def test_a_fired_trigger_rolls_back_for_real_under_auto_rollback(tmp_path: Path) -> None:
    """error-spike during the monitor window: the run is ROLLBACK, every rollback step ran and succeeded, the
    app serves the old database again, and the target still holds every migrated vector (nothing dropped)."""
    done = rehearse(tmp_path, "e2e-rollback", "--fault", "error-spike", "--auto-rollback")
    assert done.returncode == 1, done.stdout[-3000:]
    report = json.loads((tmp_path / "e2e-rollback" / "report.json").read_text())
    assert report["status"] == "ROLLBACK"
    assert [t["name"] for t in report["triggers"]] == ["error-rate"]
    steps = {s["step"]: s for s in report["rollback"]}
    assert all(s["ok"] for s in report["rollback"]), report["rollback"]
    assert {"maintenance-on", "restore-database-url", "restart", "verify-old-database", "keep-target-data",
            "verify-serving"} <= set(steps)
    migrated = report["figures"]["vectors"]["migrated"]
    assert f"embedding set on {migrated} rows" in steps["keep-target-data"]["detail"]
    assert "rollback" in done.stdout  # the incident channel of the rehearsal's webhook receiver got it
