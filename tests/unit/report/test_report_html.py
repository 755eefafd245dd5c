"""report.html: self-contained, deterministic, charts from monitor.jsonl, and it renders in headless chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cutover.report.allure import find_allure
from pytest_cutover.report.charts import load_monitor, load_samples, monitor_series
from pytest_cutover.report.checklist import normalise, parse_checklist, tick
from pytest_cutover.report.html import render_html
from pytest_cutover.report.writer import write_report_files

from . import factory

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[3]
REFERENCE_CHECKLIST = Path("/work/shared/reference/cutover-checklist.md")


def _monitor_series(path: Path, n: int = 40) -> None:
    """A series in the monitor's own format: window/sample records with probe results."""
    lines = [{"kind": "window", "window": 1, "window_s": 400, "interval_s": 10}]
    for i in range(n):
        failing = i in (30, 31, 32)
        probes = [{"name": f"search-{k}", "kind": "search", "ok": not (failing and k == 0), "latency_ms": 20.0 + i + k}
                  for k in range(4)] + [{"name": "health", "kind": "health", "ok": True, "latency_ms": 2.0}]
        lines.append({"kind": "sample", "window": 1, "seq": i, "ts": factory.T0 + 3000 + i * 10,
                      "elapsed_s": i * 10.0, "probes": probes, "rss_bytes": 150_000_000 + i * 500_000})
        if i == 32:
            lines.append({"kind": "trigger", "window": 1, "name": "error-rate", "evidence": "3 of 15 failed"})
    lines.append({"kind": "end", "window": 1, "cut_short": False, "complete": True})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _demo_run(tmp_path: Path, *, trigger: bool = True):
    ctx = factory.context(tmp_path, factory.config(run={"id": "night", "lead": "Ada Lovelace",
                                                        "timezone": "Europe/Berlin"}))
    factory.all_passed(ctx)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    _monitor_series(ctx.run_dir / "monitor.jsonl")
    ctx.ledger.append({"kind": "notification", "event": "maintenance-enabled", "channel": "slack", "ok": True,
                       "status": 200})
    if trigger:
        ctx.ledger.append({"kind": "trigger", "name": "error-rate", "stage": "monitor",
                           "evidence": "3 of 15 probes failed (20.0% > 5%) in samples 30-32"})
        ctx.ledger.append({"kind": "rollback", "step": "restore DATABASE_URL", "ok": True, "detail": "from backup"})
    return ctx


def test_monitor_series_from_the_monitors_format(tmp_path: Path) -> None:
    _monitor_series(tmp_path / "monitor.jsonl")
    samples, bad = load_samples(tmp_path / "monitor.jsonl")
    assert bad == 0 and len(samples) == 40
    series = monitor_series(samples)
    assert set(series) == {"error_rate", "p95_ms", "memory_mb"}
    assert series["error_rate"].points[30] == (300.0, 0.2)
    assert series["p95_ms"].points[0] == (0.0, 23.0)
    assert series["memory_mb"].key == "rss_bytes" and round(series["memory_mb"].points[0][1], 1) == 143.1
    assert load_monitor(tmp_path / "monitor.jsonl").marks == [(320.0, "error-rate")]


def test_html_is_self_contained_and_deterministic(tmp_path: Path) -> None:
    ctx = _demo_run(tmp_path)
    result = write_report_files(ctx, generate_allure=False)
    html = (ctx.run_dir / "report.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html)
    assert not re.search(r"url\(\s*['\"]?(?:https?:)?//", html)
    assert html.count("<svg") == 4  # the stage timeline and three monitor charts
    for name in ("precutover", "sync", "switch", "smoke", "rls", "monitor"):
        assert f'<div class="name">{name}</div>' in html
    assert "ROLLBACK" in html and "3 of 15 probes failed" in html
    assert html.count('class="mark-line"') == 3  # the trigger is marked on every monitor chart
    assert render_html(result.report, monitor_path=ctx.run_dir / "monitor.jsonl") == html


def test_checklist_parsing_and_ticking() -> None:
    items = parse_checklist(factory_checklist := (REPO / "plugins/pytest_cutover/report/templates/"
                                                  "cutover-checklist.md").read_text())
    assert sum(i.kind == "box" for i in items) == 47
    steps = [i.text for i in items if i.kind == "step"]
    assert steps[:2] == ["Run Final Vector Migration", "Verify Data Consistency"] and len(steps) == 13
    assert "API Endpoint Test" in steps  # "(if frontend available)" is not part of the name
    assert items[0].section == "PRE-CUTOVER VALIDATION (Day 7) / Code Quality"
    assert items[0].text == "All syntax verified with `py_compile`"
    assert not any("Option" in i.text for i in items)  # lines inside ``` blocks are not items
    assert [i.text for i in items if i.kind == "trigger"] == [
        "Error rate > 5%", "RLS data leakage detected", "Database connection failures", "Critical feature broken",
        "Vector search completely broken"]
    report = {"stages": [{"name": "precutover", "tests": [
        {"id": "t::a", "outcome": "passed", "runbook": "Code Quality: all syntax verified with py_compile"},
        {"id": "t::b", "outcome": "failed", "runbook": "No merge conflicts"},
        {"id": "t::c", "outcome": "passed", "runbook": "Error rate < 1%"},
        {"id": "t::d", "outcome": "skipped", "runbook": "Database backups taken"},
        {"id": "t::e", "outcome": "passed", "runbook": 'Health Check: Expected: {"status": "healthy"}'},
    ]}]}
    lines = {i["text"]: i for i in tick(report, factory_checklist)}
    state = {text: (i["state"], i["problem"]) for text, i in lines.items()}
    assert state["All syntax verified with `py_compile`"] == ("ticked", None)
    assert state["Syntax verified"] == ("ticked", None)  # the final checklist's shorter line, declared in RULES
    assert state["No merge conflicts"] == ("open", "failed")
    assert state["Error rate < 1%"] == ("ticked", None)
    assert state["Database backups taken"] == ("open", "not-run")  # skipped is not done
    assert state["All imports verified"] == ("open", "not-run")
    assert state["Health Check"] == ("ticked", None)
    assert lines["Health Check"]["tests"] == [{"id": "t::e", "outcome": "passed", "stage": "precutover"}]
    assert state["User reports positive"] == ("open", "needs a person")
    assert "[team.user_reports_positive]" in lines["User reports positive"]["why"]
    assert normalise("All syntax verified with `py_compile`.") == "all syntax verified with pycompile"


@pytest.mark.skipif(not REFERENCE_CHECKLIST.exists(), reason=f"{REFERENCE_CHECKLIST} not available")
def test_packaged_checklist_matches_the_runbook() -> None:
    packaged = REPO / "plugins/pytest_cutover/report/templates/cutover-checklist.md"
    assert packaged.read_text() == REFERENCE_CHECKLIST.read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium not installed: apt-get install chromium")
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    ctx = _demo_run(tmp_path)
    write_report_files(ctx, generate_allure=False)
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1280,2000", (ctx.run_dir / "report.html").as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(data) > 30_000  # a blank page is a few kB; the report is colour, charts and text


@pytest.mark.skipif(find_allure(REPO) is None or shutil.which("npx") is None,
                    reason="Allure 3 not installed: run `npm ci` in the project root")
def test_allure_html_is_generated_once_as_a_single_file(tmp_path: Path) -> None:
    from pytest_cutover.redact import register_secret

    secret = "allure-PLANTED-5e7d9c"
    register_secret(secret)  # as the config loader does for every secret value
    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "abc-result.json").write_text(json.dumps({
        "uuid": "abc", "name": "test_syntax", "fullName": "test_stage#test_syntax", "status": "failed",
        "statusDetails": {"message": f"cannot connect with token {secret}"},
        "stage": "finished", "start": 1_700_000_000_000, "stop": 1_700_000_001_000,
        "labels": [{"name": "epic", "value": "precutover"}, {"name": "story", "value": "No merge conflicts"}]}))
    (results / "log-attachment.txt").write_text(f"stdout: {secret}\n")
    ctx = _demo_run(tmp_path, trigger=False)
    first = write_report_files(ctx, allure_results=results, project_dir=REPO)
    html = ctx.run_dir / "allure-report" / "index.html"
    assert first.report["allure"]["html"] == "allure-report/index.html", first.messages
    assert html.stat().st_size > 100_000
    assert sorted(p.name for p in html.parent.iterdir()) == [".results-sha256", "index.html"]
    assert "allure-report/index.html" in first.report["artifacts"]
    page = html.read_text()
    assert "googletagmanager" not in page and not re.search(r"""<script[^>]*\bsrc=["']https?://""", page)
    # The page carries the results as base64 files: d("data/...","<base64>").
    data = b"".join(base64.b64decode(v) for _, v in re.findall(r'd\("([^"]{1,300})","([A-Za-z0-9+/=]*)"\)', page))
    assert b"cannot connect with token ***" in data
    assert secret.encode() not in data and secret not in page
    again = write_report_files(ctx, allure_results=results, project_dir=REPO)
    assert not again.changed  # same results: no regeneration, same digests


def test_allure_html_skipped_with_a_reason_without_node_modules(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pytest_cutover.report.allure.find_allure", lambda start: None)
    results = tmp_path / "allure-results"
    results.mkdir()
    (results / "abc-result.json").write_text(json.dumps({"uuid": "abc", "name": "t", "status": "passed"}))
    ctx = _demo_run(tmp_path, trigger=False)
    result = write_report_files(ctx, allure_results=results, project_dir=tmp_path)
    assert result.report["allure"]["html"] is None
    assert f"node_modules/.bin/allure not found from {tmp_path}" in result.report["allure"]["reason"]
    assert "npm ci" in result.report["allure"]["reason"]
    assert "allure-results.zip" in result.report["artifacts"]


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("bytes", 4_630_342, "4.4 MiB"),
    ("duration_s", 5.342, "5.3 s"),
    ("verify_s", 0.656, "656 ms"),
    ("points_per_s", 273.9, "273.9"),
    ("error_rate", 0.0125, "1.25%"),
    ("written", 1463, "1463"),
])
def test_operational_figures_are_shown_with_units(key: str, value: float, shown: str) -> None:
    from pytest_cutover.report.html import _human

    assert _human(key, value) == shown


@pytest.mark.parametrize(("issue", "kind"), [
    ("rollback trigger error-rate (monitor): 7%", "trigger"),
    ("rollback step restart failed: exit 1", "trigger"),
    ("precutover: t::a skipped without a waiver: missing config key x", "skip"),
    ("precutover: t::a skipped, waived: INC-9", "waived"),
    ("sync: forced over a gate (blocked: ...); reason given: DBA ok", "forced"),
    ("switch: blocked - blocked: stage `sync` failed", "blocked"),
    ("sync: t::b failed: 3 vectors differ", "failure"),
])
def test_issue_lines_are_classified_for_colour(issue: str, kind: str) -> None:
    from pytest_cutover.report.html import _issue_kind

    assert _issue_kind(issue) == kind


def test_the_week1_block_shows_each_verdict_and_who_decided(tmp_path: Path) -> None:
    built = write_report_files(_demo_run(tmp_path, trigger=False), generate_allure=False).report
    report = {**built, "week1": {
        "evaluated_at": "2026-12-03T09:00:00Z", "rolling": {"passes": 75, "hours_monitored": 37.4},
        "checks": [{"name": "monitoring-24h", "title": "Monitoring continued for 24 hours", "verdict": "failed",
                    "evidence": "1 gap longer than 15 min: from 03:19 to 04:19 (60.1 min)"},
                   {"name": "decommission-ready", "title": "Old infrastructure decommission-ready",
                    "verdict": "pending", "evidence": "not yet: day 5.0 of 7"}],
        "decommission": [{"decided_by": "Dana Lee", "at": "2026-12-03T09:05:00Z", "forced": "board approved"}]}}
    html = render_html(report)
    week1 = html[html.index("<h2>Week 1"):html.index("<h2>Runbook checklist")]
    assert "75 monitor pass(es), 37.40 h monitored" in week1
    assert 'pill failed">failed' in week1 and "(60.1 min)" in week1
    assert 'pill skipped">pending' in week1
    assert "decided by <b>Dana Lee</b>" in week1 and "forced: board approved" in week1
    assert "<h2>Week 1" not in render_html({**report, "week1": None})


def test_the_exposed_surface_section_lists_each_role_and_the_declared_public_objects(tmp_path: Path) -> None:
    built = write_report_files(_demo_run(tmp_path, trigger=False), generate_allure=False).report
    surface = {"app_role": "app_user", "findings": 0, "public": {"public.plans": "pricing, readable by everyone"},
               "roles": {"app_user": {"public.threads (table)": "SELECT,INSERT,UPDATE,DELETE"},
                         "anon": {"public.plans (table)": "SELECT"}},
               "tenant_tables": {"public.threads": "tenant key org_id"}}
    html = render_html({**built, "figures": {**built["figures"], "surface": surface}})
    section = html[html.index("<h2>Exposed surface"):]
    section = section[:section.index("<h2>", 5)]
    assert "0 finding(s)" in section and "(the app role)" in section
    assert ">public.threads (table)</td><td class=\"mono\">SELECT,INSERT,UPDATE,DELETE<" in section
    assert ">public.plans</td><td>pricing, readable by everyone<" in section
    assert "accepted findings" not in section
    assert "tenant key org_id" in section
    assert "<h2>Exposed surface" not in render_html(built)
