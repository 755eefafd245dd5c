"""A real pytest run with JUnit and Allure: labels, attachments, metadata, and no secret in any artefact."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pytest_cutover.report.allure import CATEGORIES

PLANTED = {
    "PLANTED_DSN": "postgresql://app:Pl4nted-Pw-9321@db.example.com:6543/postgres",
    "PLANTED_KEY": "sk_live_PLANTEDKEY0123456789",
    "PLANTED_TOKEN": "tok-PLANTED-7f3e2a1b",
}
# What must never appear: the password alone, the key, the token.
NEEDLES = [b"Pl4nted-Pw-9321", b"PLANTEDKEY0123456789", b"tok-PLANTED-7f3e2a1b"]

CONFIG = """
[run]
id = "sec"
lead = "Ada Lovelace"
[target]
database_url = "${PLANTED_DSN}"
storage_key = "${PLANTED_KEY}"
[app]
admin_token = "${PLANTED_TOKEN}"
"""

SUITE = '''
import os
import allure
import pytest


@pytest.mark.precutover
def test_syntax(record_figure):
    """All syntax verified with `py_compile`"""
    print("connecting with", os.environ["PLANTED_DSN"], "token", os.environ["PLANTED_TOKEN"])
    allure.attach("key=" + os.environ["PLANTED_KEY"], name="raw", attachment_type=allure.attachment_type.TEXT)
    record_figure("files_compiled", 12)
    record_figure("pooler", {"url_seen": os.environ["PLANTED_DSN"], "mode": "transaction"})


@pytest.mark.precutover
def test_conflicts():
    """No merge conflicts"""
    raise AssertionError("cannot connect with " + os.environ["PLANTED_DSN"] + " using " + os.environ["PLANTED_KEY"])
'''


class InnerRun:
    """One pytest subprocess over a tiny staged suite, shared by this module's tests."""

    def __init__(self, path: Path, proc: subprocess.CompletedProcess[str]) -> None:
        self.path, self.ret, self.stdout = path, proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def inner_run(tmp_path_factory: pytest.TempPathFactory) -> InnerRun:
    root = tmp_path_factory.mktemp("inner")
    (root / "cutover.toml").write_text(CONFIG)
    (root / "test_stage.py").write_text(SUITE)
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CUTOVER_RUN", "CUTOVER_REPORTS_DIR")}
    env.update(PLANTED, CUTOVER_ALLURE_HTML="0")  # Allure's HTML has its own test (test_report_html.py)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "precutover", "--cutover-config", "cutover.toml",
         "--junitxml", "junit.xml", "--alluredir", "allure-results", "-p", "pytest_cutover.report.pytest_hooks",
         "-p", "no:cacheprovider"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    return InnerRun(root, proc)


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name not in ("cutover.toml", "test_stage.py")]


def test_no_planted_secret_in_any_artifact(inner_run: InnerRun) -> None:
    pytester = result = inner_run
    assert result.ret == 1, result.stdout
    run = pytester.path / "reports" / "sec"
    files = _all_files(pytester.path)
    names = {str(p.relative_to(pytester.path)) for p in files}
    assert {"junit.xml", "reports/sec/report.json", "reports/sec/report.html", "reports/sec/ledger.jsonl",
            "reports/sec/allure-results.zip", "allure-results/categories.json"} <= names
    assert any(n.startswith("reports/sec/junit/") for n in names)
    assert any(n.endswith("-attachment.txt") for n in names)
    leaks = [(str(p.relative_to(pytester.path)), n.decode()) for p in files for n in NEEDLES if n in p.read_bytes()]
    with zipfile.ZipFile(run / "allure-results.zip") as zf:
        leaks += [(f"allure-results.zip:{i}", n.decode()) for i in zf.namelist() for n in NEEDLES if n in zf.read(i)]
    assert leaks == []
    # ... and the evidence is still there, masked rather than dropped.
    report = json.loads((run / "report.json").read_text())
    failure = report["stages"][0]["tests"][1]
    assert failure["outcome"] == "failed"
    assert "cannot connect with postgresql://app:***@db.example.com:6543/postgres" in failure["message"]
    assert report["figures"]["pooler"] == {"url_seen": "postgresql://app:***@db.example.com:6543/postgres",
                                           "mode": "transaction"}
    assert "postgresql://app:***@db.example.com:6543/postgres" in (pytester.path / "junit.xml").read_text()


def test_report_is_refreshed_at_session_end(inner_run: InnerRun) -> None:
    pytester = inner_run
    assert "report.json - INCOMPLETE (precutover failed; sync not-run" in inner_run.stdout
    report = json.loads((pytester.path / "reports" / "sec" / "report.json").read_text())
    assert report["status"] == "INCOMPLETE"
    assert report["figures"]["precutover"] == {"files_compiled": 12}
    assert sorted(report["artifacts"]) == sorted(
        ["allure-results.zip", "ledger.jsonl", "report.html", *[f"junit/{p.name}" for p in
                                                                  (pytester.path / "reports/sec/junit").glob("*.xml")]])
    assert report["allure"] == {"html": None, "reason": "allure HTML not generated (disabled)"}


def test_allure_labels_attachments_and_metadata(inner_run: InnerRun) -> None:
    pytester = inner_run
    results = pytester.path / "allure-results"
    tests = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    by_name = {t["name"]: t for t in tests}
    labels = {(lab["name"], lab["value"]) for lab in by_name["test_syntax"]["labels"]}
    assert {("epic", "precutover"), ("feature", "precutover"),
            ("story", "All syntax verified with `py_compile`")} <= labels
    attachments = {a["name"] for a in by_name["test_syntax"].get("attachments", [])}
    assert {"figures", "raw"} <= attachments
    figures_file = next(a["source"] for a in by_name["test_syntax"]["attachments"] if a["name"] == "figures")
    assert json.loads((results / figures_file).read_text())["files_compiled"] == 12
    assert json.loads((results / "categories.json").read_text()) == CATEGORIES
    props = (results / "environment.properties").read_text()
    assert "cutover.run=sec\n" in props and "cutover.status=INCOMPLETE\n" in props
    assert "host.target.database_url=postgresql://db.example.com:6543/postgres\n" in props
    assert json.loads((results / "executor.json").read_text())["buildName"] == "cutover sec"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist not installed")
def test_under_xdist_the_controller_writes_the_report_and_workers_label(tmp_path: Path) -> None:
    (tmp_path / "cutover.toml").write_text(CONFIG)
    (tmp_path / "test_stage.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CUTOVER_RUN", "CUTOVER_REPORTS_DIR")}
    env.update(PLANTED, CUTOVER_ALLURE_HTML="0")
    proc = subprocess.run(
        # One worker is enough: the controller/worker split is what differs from a plain run.
        [sys.executable, "-m", "pytest", "-n", "1", "-m", "precutover", "--cutover-config", "cutover.toml",
         "--junitxml", "junit.xml", "--alluredir", "allure-results", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "reports" / "sec" / "report.json").read_text())
    assert [t["outcome"] for t in report["stages"][0]["tests"]] in (["passed", "failed"], ["failed", "passed"])
    assert report["allure"] == {"html": None, "reason": "allure HTML not generated (disabled)"}
    results = [json.loads(p.read_text()) for p in (tmp_path / "allure-results").glob("*-result.json")]
    assert all({"name": "epic", "value": "precutover"} in r["labels"] for r in results) and len(results) == 2
    files = _all_files(tmp_path)
    assert [(str(p), n) for p in files for n in NEEDLES if n in p.read_bytes()] == []


@pytest.mark.skipif(importlib.util.find_spec("pytest_html") is None, reason="pytest-html not installed")
def test_pytest_html_gets_the_signoff_block_and_no_secret(tmp_path: Path) -> None:
    (tmp_path / "cutover.toml").write_text(CONFIG)
    (tmp_path / "test_stage.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CUTOVER_RUN", "CUTOVER_REPORTS_DIR")}
    env.update(PLANTED)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "precutover", "--cutover-config", "cutover.toml",
         "--html", "page.html", "--self-contained-html", "--metadata", "DB", PLANTED["PLANTED_DSN"],
         "-p", "pytest_cutover.report.pytest_hooks", "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    page = (tmp_path / "page.html").read_bytes()
    assert b"INCOMPLETE</b> cutover run <b>sec</b>" in page.replace(b"&lt;", b"<").replace(b"&gt;", b">").replace(
        b"&#34;", b'"').replace(b"&quot;", b'"')
    assert [n for n in NEEDLES if n in page] == []


@pytest.mark.skipif(shutil.which("cutover") is None, reason="the cutover console script is not installed")
def test_sign_the_run_and_verify_with_the_installed_script(inner_run: InnerRun, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pytest_cutover.cli import cli

    monkeypatch.chdir(inner_run.path)
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)

    def cutover(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), standalone_mode=False, catch_exceptions=False)
        return result.return_value, result.output

    key = tmp_path / "lead.key"
    assert cutover("keygen", "--out", str(key))[0] == 0
    code, out = cutover("report", "--run", "sec", "--config", "cutover.toml", "--no-allure")
    assert code == 1 and out.startswith("INCOMPLETE: precutover failed")
    assert cutover("report", "sign", "--run", "sec", "--config", "cutover.toml", "--key", str(key))[0] == 0

    def verify() -> subprocess.CompletedProcess[str]:  # the installed console script, as an auditor runs it
        return subprocess.run(["cutover", "report", "verify", "reports/sec/report.json", "--pubkey", f"{key}.pub"],
                              cwd=inner_run.path, capture_output=True, text=True, timeout=120)

    ok = verify()
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    archive = inner_run.path / "reports" / "sec" / "allure-results.zip"
    data = bytearray(archive.read_bytes())
    data[-30] ^= 0x01
    archive.write_bytes(bytes(data))
    bad = verify()
    assert bad.returncode == 1
    assert "allure-results.zip: changed (sha256 " in bad.stderr


def test_the_run_records_its_effective_config_once(inner_run: InnerRun) -> None:
    records = [json.loads(line) for line in (inner_run.path / "reports/sec/ledger.jsonl").read_text().splitlines()]
    configs = [r for r in records if r["kind"] == "config"]
    assert len(configs) == 1, [r["kind"] for r in records]
    stage_hashes = {r["config_hash"] for r in records if r["kind"] == "stage"}
    assert stage_hashes == {configs[0]["config_hash"]}
    assert configs[0]["settings"]["run"]["lead"] == "Ada Lovelace"
    assert set(configs[0]["settings"]) <= {"run", "people", "team", "waivers", "thresholds", "week1"}
    assert "target" not in configs[0]["settings"] and "app" not in configs[0]["settings"]
