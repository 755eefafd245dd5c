"""The runbook checklist, ticked by the tests that cover each line.

Each test's ``runbook`` field (the first line of its docstring, which quotes the runbook
line it covers) is matched to the checklist's ``- [ ]`` items (and the ``- ✅`` success
criteria) by normalised text containment: "All syntax verified with `py_compile`" is
covered by a test whose docstring says "Code Quality: all syntax verified with py_compile".
A box is ticked only when every covering test passed in the effective stage records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["ChecklistItem", "default_checklist", "normalise", "parse_checklist", "tick"]

_BOX = re.compile(r"^\s*[-*]\s+(?:\[[ xX]\]|✅)\s+(?P<text>.+?)\s*$")
_HEADING = re.compile(r"^(?P<level>#{2,4})\s+(?P<text>.+?)\s*$")
_STEP = re.compile(r"^\d+[a-z]:\s+(?P<title>.+?)(?:\s+\([^)]*\))?$")
_MIN_REVERSE = 12  # a runbook quote this long may be contained in a longer checklist line


@dataclass
class ChecklistItem:
    """One line of the runbook checklist and the tests that cover it."""

    section: str
    text: str
    line: int
    kind: str = "box"  # box: a "- [ ]" line or success criterion; step: a "#### 5a: Health Check" sub-step
    state: str = "uncovered"  # passed | failed | blocked | skipped | not-run | uncovered
    tests: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "text": self.text, "line": self.line, "kind": self.kind, "state": self.state,
                "tests": [{"id": t["id"], "outcome": t["outcome"]} for t in self.tests]}


def normalise(text: str) -> str:
    """Lower case, markup and punctuation folded to single spaces (``<`` and ``>`` kept: they carry meaning)."""
    text = re.sub(r"[`*_]", "", text.lower())
    text = re.sub(r"[^\w<>%.]+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" .")


def _clean_heading(text: str) -> str:
    return re.sub(r"^[^\w(]+", "", text).strip()


def parse_checklist(markdown: str) -> list[ChecklistItem]:
    """Every checkbox (and success-criterion) line, with the nearest headings as its section."""
    items: list[ChecklistItem] = []
    headings: dict[int, str] = {}
    in_code = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading["level"])
            headings = {lvl: txt for lvl, txt in headings.items() if lvl < level}
            step = _STEP.match(heading["text"]) if level == 4 else None
            if step:  # "#### 5a: Health Check": a sub-step of the cutover, covered by the tests that quote it
                section = " / ".join(headings[lvl] for lvl in sorted(headings))
                items.append(ChecklistItem(section=section, text=step["title"], line=number, kind="step"))
            else:
                headings[level] = _clean_heading(heading["text"])
            continue
        box = _BOX.match(line)
        if box:
            section = " / ".join(headings[lvl] for lvl in sorted(headings))
            items.append(ChecklistItem(section=section, text=box["text"], line=number))
    return items


def default_checklist() -> str:
    """The runbook's checklist shipped with the package (a copy of ``reference/cutover-checklist.md``)."""
    return resources.files("pytest_cutover.report").joinpath("templates/cutover-checklist.md").read_text("utf-8")


def _covers(runbook: str, item: str) -> bool:
    if not runbook or not item:
        return False
    return item in runbook or (len(runbook) >= _MIN_REVERSE and runbook in item)


def _state(outcomes: Iterable[str]) -> str:
    seen = set(outcomes)
    if not seen:
        return "uncovered"
    if seen & {"failed", "error"}:
        return "failed"
    if "blocked" in seen:
        return "blocked"
    if "skipped" in seen:
        return "skipped"
    if seen <= {"passed", "xfailed"}:
        return "passed"
    return "not-run"


def tick(stages: Iterable[Mapping[str, Any]], markdown: str | None = None,
         path: str | Path | None = None) -> list[dict[str, Any]]:
    """The checklist with each item's state from the tests of ``stages`` (report stage entries)."""
    if markdown is None:
        markdown = Path(path).read_text("utf-8") if path else default_checklist()
    items = parse_checklist(markdown)
    tests = [(normalise(t.get("runbook") or ""), t) for s in stages for t in s.get("tests", [])]
    for item in items:
        key = normalise(item.text)
        item.tests = [t for runbook, t in tests if _covers(runbook, key)]
        item.state = _state(t["outcome"] for t in item.tests)
    return [i.as_dict() for i in items]
