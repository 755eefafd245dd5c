"""Allure: metadata files for ``allure-results/``, secret scrubbing, a stable archive, and Allure 3's HTML.

allure-pytest writes the results while the tests run; this module adds what Allure shows
around them (``environment.properties``, ``executor.json``, ``categories.json``), masks any
secret a test printed or attached, packs the results into ``reports/<run>/allure-results.zip``
(byte-stable, so an unchanged run keeps its sha256) and runs ``npx allure generate`` from the
version pinned in the project's ``package.json``, as one self-contained HTML file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_cutover.redact import redact, redact_obj, registered_secrets

__all__ = [
    "AWESOME_OPTIONS",
    "CATEGORIES",
    "POSTPROCESS",
    "AllureOutcome",
    "archive_results",
    "find_allure",
    "generate_html",
    "results_digest",
    "scrub_results",
    "strip_analytics",
    "write_metadata",
]

# First match wins (Allure applies categories in order).  Blocked tests are skipped by gating with a
# reason that starts "blocked: stage"; trigger failures say "rollback trigger"; broken = not an assertion.
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Blocked by an earlier stage", "matchedStatuses": ["skipped"], "messageRegex": "(?s).*blocked: stage.*"},
    {"name": "Rollback trigger", "matchedStatuses": ["failed", "broken"],
     "messageRegex": "(?is).*(rollback trigger|trigger fired|ROLLBACK).*"},
    {"name": "Infrastructure error", "matchedStatuses": ["broken"]},
    {"name": "Infrastructure error", "matchedStatuses": ["failed"],
     "messageRegex": "(?is).*(connection refused|could not connect|timed out|timeout|name or service not known"
                     "|ConnectionError|OSError|ServiceUnavailable|503).*"},
    {"name": "Product defect", "matchedStatuses": ["failed"]},
]
# One self-contained file; the tree follows the runbook: stage (epic), then runbook item (story).
AWESOME_OPTIONS: dict[str, Any] = {"singleFile": True, "groupBy": ["epic", "story"]}
# What we change in Allure's page after it is generated (part of the "is the HTML up to date" check).
POSTPROCESS = "strip-analytics-1"
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)
_TEXT_SUFFIXES = (".json", ".txt", ".log", ".properties", ".xml", ".csv", ".html", ".md", ".uri")


@dataclass
class AllureOutcome:
    """What happened to Allure's HTML: the file, or why there is none."""

    path: Path | None
    message: str


def _properties_value(value: Any) -> str:
    return redact(value).replace("\\", "\\\\").replace("\n", " ")


def write_metadata(results_dir: Path, report: Mapping[str, Any]) -> None:
    """Write ``environment.properties``, ``executor.json`` and ``categories.json`` into ``results_dir``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    env = report.get("environment") or {}
    lines = {
        "cutover.run": report.get("run"),
        "cutover.status": report.get("status"),
        "cutover.lead": report.get("lead") or "",
        "suite.git_rev": env.get("git_rev") or "",
        "config.hash": env.get("config_hash") or "",
    }
    for key, host in sorted((env.get("hosts") or {}).items()):
        lines[f"host.{key}"] = host
    for name, info in sorted((env.get("versions") or {}).items()):
        lines[f"version.{name}"] = f"{info.get('version')} ({info.get('source')})"
    text = "".join(f"{k}={_properties_value(v)}\n" for k, v in lines.items())
    (results_dir / "environment.properties").write_text(text, "utf-8")
    executor = {"name": "pytest-cutover", "type": "pytest", "buildName": f"cutover {report.get('run')}",
                "reportName": f"Cutover {report.get('run')}: {report.get('status')}"}
    (results_dir / "executor.json").write_text(json.dumps(redact_obj(executor), indent=2), "utf-8")
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), "utf-8")


def _scrub_file(path: Path) -> bool:
    raw = path.read_bytes()
    if path.suffix.lower() in _TEXT_SUFFIXES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            if path.suffix.lower() == ".json":
                try:
                    clean = json.dumps(redact_obj(json.loads(text)), ensure_ascii=False)
                except json.JSONDecodeError:
                    clean = redact(text)
            else:
                clean = redact(text)
            if clean != text:
                path.write_text(clean, "utf-8")
                return True
            return False
    # Binary attachments: mask registered literal secrets byte for byte (same length keeps formats intact).
    changed = raw
    for secret in registered_secrets():
        encoded = secret.encode()
        if encoded in changed:
            changed = changed.replace(encoded, b"*" * len(encoded))
    if changed != raw:
        path.write_bytes(changed)
        return True
    return False


def scrub_results(results_dir: Path) -> int:
    """Mask secrets in every file under ``results_dir``; returns how many files changed."""
    if not results_dir.is_dir():
        return 0
    return sum(_scrub_file(p) for p in sorted(results_dir.rglob("*")) if p.is_file())


def results_digest(results_dir: Path) -> str:
    """sha256 over the names and contents of every results file (what Allure's HTML is made from)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in results_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(results_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def archive_results(results_dir: Path, dest: Path) -> Path:
    """Zip ``results_dir`` into ``dest`` with fixed timestamps and sorted names (same input, same bytes)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in results_dir.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(results_dir)), date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    os.replace(tmp, dest)
    return dest


def find_allure(start: Path) -> Path | None:
    """``node_modules/.bin/allure`` in ``start`` or the nearest parent that has one, else next to this
    package (an editable install inside the project checkout, where ``npm ci`` ran)."""
    for base in (start.resolve(), Path(__file__).resolve().parent):
        for folder in (base, *base.parents):
            candidate = folder / "node_modules" / ".bin" / "allure"
            if candidate.exists():
                return candidate
    return None


def generate_html(results: Path, out_dir: Path, *, project_dir: Path, name: str,
                  timeout: float = 180.0) -> AllureOutcome:
    """Run ``npx allure generate`` (Allure 3, single-file output) from ``results`` (a folder or our zip)."""
    allure = find_allure(project_dir)
    if allure is None:
        return AllureOutcome(None, f"allure HTML skipped: node_modules/.bin/allure not found from {project_dir}; "
                                   "run `npm ci` in the project root (package.json pins the npm package allure)")
    npx = shutil.which("npx")
    if npx is None:
        return AllureOutcome(None, "allure HTML skipped: npx not found on PATH (install Node.js 20 and npm)")
    node_root = allure.parent.parent.parent
    with tempfile.TemporaryDirectory(prefix="cutover-allure-") as tmp:
        source = results
        if results.is_file():
            source = Path(tmp) / "results"
            with zipfile.ZipFile(results) as zf:
                zf.extractall(source)
        staging = Path(tmp) / "report"
        rc = Path(tmp) / "allurerc.json"
        rc.write_text(json.dumps({"name": name, "output": str(staging),
                                  "plugins": {"awesome": {"options": {**AWESOME_OPTIONS, "reportName": name}}}}))
        cmd = [npx, "--no", "--", "allure", "generate", str(source), "--config", str(rc), "--output", str(staging)]
        try:
            proc = subprocess.run(cmd, cwd=node_root, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "NO_COLOR": "1", "CI": "1"})
        except subprocess.TimeoutExpired:
            return AllureOutcome(None, f"allure generate timed out after {timeout:.0f} s; "
                                       "hint: run it by hand: npx allure generate <results>")
        index = staging / "index.html"
        if proc.returncode != 0 or not index.exists():
            tail = redact((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            return AllureOutcome(None, f"allure generate failed (exit {proc.returncode}): {tail}")
        out_dir.mkdir(parents=True, exist_ok=True)
        page = index.read_text("utf-8")
        (out_dir / "index.html").write_text(strip_analytics(page), "utf-8")
    return AllureOutcome(out_dir / "index.html", "allure HTML generated (single file)")


# Allure 3.18's "awesome" page always embeds Google Analytics (plugin-awesome/dist/generators.js sets
# analyticsEnable: true; ALLURE_NO_ANALYTICS only reaches the allure2 plugin).  A sign-off artefact must open
# offline and must not report its viewers to a third party, so the tag and its inline config are removed.
_ANALYTICS = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/[^"]*"></script>\s*<script>\s*'
    r"window\.dataLayer.*?</script>",
    re.S,
)


def strip_analytics(page: str) -> str:
    """``page`` without Allure's Google Analytics tag."""
    return _ANALYTICS.sub("<!-- analytics removed by pytest-cutover -->", page)
