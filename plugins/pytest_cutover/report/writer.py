"""Write ``reports/<run>/``: report.json, report.html, the Allure archive and HTML, with sha256 of each.

:func:`write_report` is what the plugin calls at the end of every invocation and what
``cutover report`` calls to rebuild a run from its ledger.  It is idempotent: rebuilding an
unchanged run leaves ``report.json`` (and a signature over it) untouched; a rebuild that
changes the report removes the now-stale ``report.json.sig`` and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cutover.context import RunContext
from pytest_cutover.ledger import LEDGER_NAME
from pytest_cutover.redact import redact

__all__ = [
    "ALLURE_ARCHIVE",
    "ALLURE_HTML",
    "JUNIT_DIR",
    "JUNIT_NAME",
    "MONITOR_NAME",
    "REPORT_HTML",
    "REPORT_JSON",
    "WriteResult",
    "scrub_junit",
    "write_report",
    "write_report_files",
]

REPORT_JSON, REPORT_HTML = "report.json", "report.html"
MONITOR_NAME = "monitor.jsonl"
ALLURE_ARCHIVE = "allure-results.zip"
ALLURE_HTML = "allure-report/index.html"
JUNIT_DIR, JUNIT_NAME = "junit", "junit.xml"
_DIGEST_FILE = "allure-report/.results-sha256"


@dataclass
class WriteResult:
    """Where the report went, and what the writer had to say (skips, stale signature)."""

    path: Path
    report: dict[str, Any]
    changed: bool
    messages: list[str] = field(default_factory=list)


def scrub_junit(path: Path) -> bool:
    """Redact every text and attribute of a JUnit XML file in place; ``True`` if anything was masked."""
    import xml.etree.ElementTree as ET

    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError):
        text = path.read_text("utf-8", errors="replace")
        clean = redact(text)
        path.write_text(clean, "utf-8")
        return clean != text
    changed = False
    for element in tree.iter():
        for attr, value in list(element.attrib.items()):
            masked = redact(value)
            if masked != value:
                element.set(attr, masked)
                changed = True
        for slot in ("text", "tail"):
            value = getattr(element, slot)
            if value:
                masked = redact(value)
                if masked != value:
                    setattr(element, slot, masked)
                    changed = True
    if changed:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return changed


def _collect_junit(junit: Path, run_dir: Path, invocation: str | None) -> Path:
    """Redact the JUnit file; keep it where it is when it lives in the run folder, else copy it in."""
    scrub_junit(junit)
    if junit.resolve().parent == run_dir.resolve():
        return junit
    folder = run_dir / JUNIT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{invocation or 'junit'}.xml"
    if junit.resolve() != dest.resolve():
        shutil.copyfile(junit, dest)
    return dest


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def _comparable(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report without what signing adds (the signature block, the re-rendered HTML's digest)."""
    out = {k: v for k, v in report.items() if k != "signature"}
    for key in ("artifacts", "artifact_sizes"):
        out[key] = {n: d for n, d in (report.get(key) or {}).items() if n != REPORT_HTML}
    return out


def _allure(run_dir: Path, report: dict[str, Any], allure_results: Path | None, project_dir: Path,
            generate: bool, messages: list[str]) -> None:
    from pytest_cutover.report import allure

    if allure_results is not None and allure_results.is_dir():
        allure.write_metadata(allure_results, report)
        allure.scrub_results(allure_results)
        allure.archive_results(allure_results, run_dir / ALLURE_ARCHIVE)
    archive = run_dir / ALLURE_ARCHIVE
    if not archive.exists():
        report["allure"] = {"html": None, "reason": "no allure results for this run (run pytest with --alluredir)"}
        return
    from pytest_cutover.report.sign import sha256_file

    # The HTML depends on the results and on how we ask Allure to render them.
    recipe = json.dumps({"options": allure.AWESOME_OPTIONS, "post": allure.POSTPROCESS}, sort_keys=True)
    digest = sha256_file(archive) + "+" + hashlib.sha256(recipe.encode()).hexdigest()[:12]
    html, stamp = run_dir / ALLURE_HTML, run_dir / _DIGEST_FILE
    if html.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        report["allure"] = {"html": ALLURE_HTML, "results_sha256": digest}
        return
    if not generate:
        report["allure"] = {"html": None, "reason": "allure HTML not generated (disabled)"}
        return
    outcome = allure.generate_html(archive, html.parent, project_dir=project_dir,
                                   name=f"Cutover {report['run']}: {report['status']}")
    messages.append(outcome.message)
    if outcome.path is None:
        report["allure"] = {"html": None, "reason": outcome.message}
        if html.exists():  # an old HTML would no longer describe these results
            html.unlink()
        return
    stamp.write_text(digest + "\n")
    report["allure"] = {"html": ALLURE_HTML, "results_sha256": digest}


def write_report_files(ctx: RunContext, *, notes: str | None = None, allure_results: Path | None = None,
                       junit: Path | None = None, invocation: str | None = None, generate_allure: bool = True,
                       project_dir: Path | None = None) -> WriteResult:
    """Build the report of ``ctx.run`` from its ledger and write every file; see :func:`write_report`."""
    from pytest_cutover.report.build import build_report
    from pytest_cutover.report.checklist import tick
    from pytest_cutover.report.html import render_html
    from pytest_cutover.report.sign import SIG_SUFFIX, sha256_file

    run_dir = ctx.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []
    report = build_report(ctx.ledger, ctx.config, ctx.run, notes=notes)
    try:
        report["checklist"] = tick(report)
    except FileNotFoundError:  # a wheel built without the packaged checklist (package-data must include *.md)
        report["checklist"] = []
        messages.append("runbook checklist not packaged (templates/cutover-checklist.md): checklist left empty")
    if junit is not None and junit.is_file():
        _collect_junit(junit, run_dir, invocation)
    _allure(run_dir, report, allure_results, project_dir or ctx.suite_dir, generate_allure, messages)

    listed = [LEDGER_NAME, MONITOR_NAME, JUNIT_NAME, ALLURE_ARCHIVE, ALLURE_HTML]
    if (run_dir / JUNIT_DIR).is_dir():
        listed += sorted(f"{JUNIT_DIR}/{p.name}" for p in (run_dir / JUNIT_DIR).glob("*.xml"))
    artifacts, sizes = {}, {}
    for name in listed:
        path = run_dir / name
        if path.is_file():
            artifacts[name], sizes[name] = sha256_file(path), path.stat().st_size
    report["artifacts"], report["artifact_sizes"] = artifacts, sizes

    report_path = run_dir / REPORT_JSON
    previous = None
    if report_path.exists():
        try:
            previous = json.loads(report_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = None
    monitor = run_dir / MONITOR_NAME
    html_path = run_dir / REPORT_HTML
    if previous is not None and _comparable(previous) == _comparable(report):
        if not html_path.exists():  # the page is a pure function of report.json: render the same bytes again
            _atomic_write(html_path, render_html(previous, monitor_path=monitor if monitor.exists() else None))
            messages.append(f"{REPORT_HTML} was missing: rendered again from {REPORT_JSON}")
        return WriteResult(report_path, previous, False, [*messages, "report unchanged"])

    _atomic_write(html_path, render_html(report, monitor_path=monitor if monitor.exists() else None))
    report["artifacts"][REPORT_HTML] = sha256_file(html_path)
    report["artifact_sizes"][REPORT_HTML] = html_path.stat().st_size
    _atomic_write(report_path, json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    sig = report_path.with_name(report_path.name + SIG_SUFFIX)
    if sig.exists():
        sig.unlink()
        messages.append(f"{sig.name} removed: the report changed since it was signed; sign it again")
    return WriteResult(report_path, report, True, messages)


def write_report(ctx: RunContext, **options: Any) -> Path:
    """Refresh ``reports/<run>/report.json`` and ``report.html`` from the run's ledger; return the JSON path.

    Options: ``notes`` (post-cutover notes), ``allure_results`` (allure-pytest's results folder, archived
    into the run), ``junit`` (a ``--junitxml`` file, redacted and copied into ``junit/``), ``invocation``,
    ``generate_allure`` (run ``npx allure generate`` when the results changed), ``project_dir``.
    """
    return write_report_files(ctx, **options).path
