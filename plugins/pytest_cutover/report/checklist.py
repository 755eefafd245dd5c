"""The runbook checklist: every line in a state that agrees with the run's verdict.

Each line of the runbook (``- [ ]`` boxes, ``- ✅`` success criteria, ``#### 5a:`` sub-steps and the
rollback triggers) has a declared rule in :data:`RULES`: the records that satisfy it. A line is

* ``ticked``: every automated source it names passed: the tests that quote it (a test's runbook line is
  its ``@pytest.mark.runbook("...")`` marker, recorded in the ledger), a stage's verdict, an action or a
  notification the run recorded, a Week-1 check (so those lines say what the Week-1 panel says);
* ``attested``: a person confirmed it (``[team.KEY] who/when`` in the config, or a decommission record);
* ``not-applicable``: the rule says why it does not apply;
* ``open``: none of these yet; ``problem`` says whether something failed, did not run, is pending,
  or waits for a person.

``automatable`` says whether the suite can tick the line itself: a SUCCESS run leaves none of those open
outside Week 1 (enforced by the report's unit tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["RULES", "ChecklistItem", "Rule", "Source", "default_checklist", "normalise", "parse_checklist",
           "rule_for", "summary", "tick"]

_BOX = re.compile(r"^\s*[-*]\s+(?:\[[ xX]\]|✅)\s+(?P<text>.+?)\s*$")
_BULLET = re.compile(r"^\s*[-*]\s+(?P<text>.+?)\s*$")
_TRIGGERS = re.compile(r"^\*\*Triggers for rollback\*\*")
_HEADING = re.compile(r"^(?P<level>#{2,4})\s+(?P<text>.+?)\s*$")
_STEP = re.compile(r"^\d+[a-z]:\s+(?P<title>.+?)(?:\s+\([^)]*\))?$")
_MIN_REVERSE = 12  # a runbook quote this long may be contained in a longer checklist line
TICKED, ATTESTED, NOT_APPLICABLE, OPEN = "ticked", "attested", "not-applicable", "open"


@dataclass(frozen=True)
class Source:
    """One thing the run records that satisfies a runbook line.

    ``kind``: ``tests`` (``ref``: the runbook quote; empty: the line itself), ``stage`` (a stage name),
    ``action`` (``name`` or ``name:step`` of an action record), ``notification`` (an event delivered),
    ``week1`` (a Week-1 check name), ``trigger`` (a rollback trigger that must not fire).
    """

    kind: str
    ref: str = ""


@dataclass(frozen=True)
class Rule:
    """What satisfies one runbook line: automated ``checks``, a person's attestation, or a reason it does not apply.

    ``person`` is a ``[team.KEY]`` attestation (``decommission``: a decommission record);
    ``person_required`` makes it needed even when every check passed (a person decides).
    """

    checks: tuple[Source, ...] = ()
    person: str | None = None
    person_required: bool = False
    not_applicable: str | None = None

    @property
    def week1(self) -> bool:
        return any(s.kind == "week1" for s in self.checks)


def _t(*quotes: str) -> tuple[Source, ...]:
    return tuple(Source("tests", q) for q in quotes) or (Source("tests"),)


_SELF = _t()
# Every runbook line, by its text (a line that appears twice, like "Database backups taken", means the same).
RULES: dict[str, Rule] = {
    # PRE-CUTOVER VALIDATION (Day 7): one test per line; the team lines test the config's attestations.
    **{line: Rule(_SELF) for line in (
        "All syntax verified with `py_compile`", "All imports verified", "Test suite created and ready",
        "No merge conflicts", "All changes committed to git", "Database backups taken",
        "Vector count verified in Qdrant", "Memory fragment count verified", "Attachment BLOB count verified",
        "Supabase project fully provisioned", "pgvector extension enabled", "Storage bucket created with RLS policies",
        "Connection pooler URL working", "SSL certificates valid", "Stakeholders notified of maintenance window",
        "Support team on standby", "Rollback plan documented", "Escalation contacts confirmed")},
    # STEP 1
    "Send notification to users about maintenance window": Rule((Source("notification", "maintenance-enabled"),)),
    "Monitor support channel for questions": Rule(person="support_channel_monitored"),
    # STEP 2-5 sub-steps
    "Run Final Vector Migration": Rule(_t("Vector migration completed successfully")),
    "Verify Data Consistency": Rule(_t("Verify Data Consistency", "Compare vector counts",
                                       "Check for any NULL file_data without storage_path",
                                       "Verify org isolation still working")),
    "Update Environment Variables": Rule((*_SELF, Source("action", "env-switch"))),
    "Verify New Connection String": Rule(_SELF),
    "Stop Current Services": Rule((Source("action", "restart:stop"),)),
    "Clear Connection Pools": Rule((Source("action", "restart:drain"),)),
    "Start New Services": Rule((Source("action", "restart:start"), *_t("Restart Backend Services"))),
    **{line: Rule(_SELF) for line in ("Health Check", "Database Connectivity", "RLS Testing", "Vector Search Test",
                                      "Storage Access Test", "API Endpoint Test")},
    # STEP 7
    'Send "maintenance complete" notification': Rule((Source("notification", "maintenance-disabled"),)),
    "Confirm service is fully operational": Rule((*_t("Maintenance mode disabled"), Source("stage", "smoke"))),
    "Thank users for patience": Rule(person="users_thanked"),
    # ROLLBACK PROCEDURE: triggers for rollback (ticked = watched and did not fire)
    "Error rate > 5%": Rule((*_SELF, Source("trigger", "error-rate"))),
    "RLS data leakage detected": Rule((*_SELF, Source("trigger", "rls-leak"))),
    "Database connection failures": Rule((*_SELF, Source("trigger", "database-connection-failures"))),
    "Critical feature broken": Rule((*_SELF, Source("trigger", "critical-feature-broken"))),
    "Vector search completely broken": Rule((*_SELF, Source("trigger", "vector-search-broken"))),
    # POST-CUTOVER MONITORING: success criteria
    **{line: Rule(_SELF) for line in ("Error rate < 1%", "No RLS data leaks", "Vector search latency < 100ms",
                                      "Storage operations succeeding", "Database stable")},
    "User reports positive": Rule(person="user_reports_positive"),
    # FINAL CHECKLIST: Pre-Cutover (Day 7)
    "All code reviewed": Rule(person="code_reviewed"),
    "Syntax verified": Rule(_t("All syntax verified with `py_compile`")),
    "Supabase project ready": Rule(_t("Supabase project fully provisioned")),
    "Team notified": Rule(_t("Stakeholders notified of maintenance window")),
    # During Cutover
    "Maintenance mode enabled": Rule((*_SELF, Source("action", "maintenance-on"))),
    "Vector migration completed successfully": Rule(_SELF),
    "Database URL switched to Supabase pooler": Rule((Source("action", "env-switch"),
                                                      *_t("Update Environment Variables"))),
    "Services restarted": Rule((Source("action", "restart"), *_t("Restart Backend Services"))),
    "All smoke tests passed": Rule((Source("stage", "smoke"),)),
    "Logs monitored for 30 minutes": Rule(_SELF),
    "Maintenance mode disabled": Rule((*_SELF, Source("action", "maintenance-off"))),
    "Users notified of completion": Rule((Source("notification", "maintenance-disabled"),)),
    # Post-Cutover (Week 1): what the Week-1 panel says
    "Monitoring continued for 24 hours": Rule((Source("week1", "monitoring-24h"),)),
    "No critical issues found": Rule((Source("week1", "no-critical-issues"),)),
    "Error rates < 1%": Rule((Source("week1", "error-rate"),)),
    "BLOB migration script run (during low traffic)": Rule((Source("week1", "blob-migration"),)),
    "Old infrastructure decommissioned (after 7 days stable)": Rule((Source("week1", "decommission-ready"),),
                                                                    person="decommission", person_required=True),
}


@dataclass
class ChecklistItem:
    """One line of the runbook checklist, its state and the evidence for it."""

    section: str
    text: str
    line: int
    kind: str = "box"  # box: "- [ ]" or success criterion; step: "#### 5a: Health Check"; trigger: a rollback trigger
    state: str = OPEN
    problem: str | None = None  # for open lines: failed | not-run | pending | needs a person | unmapped
    automatable: bool = False
    week1: bool = False
    evidence: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    attested: dict[str, Any] | None = None
    why: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"section": self.section, "text": self.text, "line": self.line, "kind": self.kind, "state": self.state,
                "problem": self.problem, "automatable": self.automatable, "week1": self.week1,
                "evidence": self.evidence, "attested": self.attested, "why": self.why,
                "tests": [{"id": t["id"], "outcome": t["outcome"], "stage": t.get("stage")} for t in self.tests]}


def normalise(text: str) -> str:
    """Lower case, markup and punctuation folded to single spaces (``<`` and ``>`` kept: they carry meaning)."""
    text = re.sub(r"[`*_]", "", text.lower())
    text = re.sub(r"[^\w<>%.]+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" .")


def _clean_heading(text: str) -> str:
    return re.sub(r"^[^\w(]+", "", text).strip()


def parse_checklist(markdown: str) -> list[ChecklistItem]:
    """Every checkbox, success criterion, cutover sub-step and rollback trigger, with its section."""
    items: list[ChecklistItem] = []
    headings: dict[int, str] = {}
    in_code = in_triggers = False
    for number, line in enumerate(markdown.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        section = " / ".join(headings[lvl] for lvl in sorted(headings))
        if _TRIGGERS.match(line):
            in_triggers = True
            continue
        if in_triggers:
            bullet = _BULLET.match(line)
            if bullet:
                items.append(ChecklistItem(section=f"{section} / Triggers for rollback", text=bullet["text"],
                                           line=number, kind="trigger"))
                continue
            if line.strip():
                in_triggers = False
        heading = _HEADING.match(line)
        if heading:
            level = len(heading["level"])
            headings = {lvl: txt for lvl, txt in headings.items() if lvl < level}
            step = _STEP.match(heading["text"]) if level == 4 else None
            if step:  # "#### 5a: Health Check": a sub-step of the cutover
                section = " / ".join(headings[lvl] for lvl in sorted(headings))
                items.append(ChecklistItem(section=section, text=step["title"], line=number, kind="step"))
            else:
                headings[level] = _clean_heading(heading["text"])
            continue
        box = _BOX.match(line)
        if box:
            items.append(ChecklistItem(section=section, text=box["text"], line=number))
    return items


def default_checklist() -> str:
    """The runbook's checklist shipped with the package (a copy of ``reference/cutover-checklist.md``)."""
    return resources.files("pytest_cutover.report").joinpath("templates/cutover-checklist.md").read_text("utf-8")


_RULES = {normalise(text): rule for text, rule in RULES.items()}


def rule_for(text: str) -> Rule | None:
    """The declared rule of one runbook line, or ``None`` when the line is not mapped."""
    return _RULES.get(normalise(text))


def _covers(runbook: str, item: str) -> bool:
    if not runbook or not item:
        return False
    return item in runbook or (len(runbook) >= _MIN_REVERSE and runbook in item)


@dataclass(frozen=True)
class _Finding:
    ok: bool | None  # None: nothing recorded yet (not run, pending)
    evidence: dict[str, Any]


_TEST_FAILED = {"failed", "error", "blocked"}


def _tests_finding(quote: str, tests: Sequence[dict[str, Any]]) -> tuple[_Finding, list[dict[str, Any]]]:
    key = normalise(quote)
    hits = [t for t in tests if _covers(normalise(t.get("runbook") or ""), key)]
    outcomes = {t.get("outcome") for t in hits}
    ok: bool | None
    if not hits:
        ok = None
    elif outcomes & _TEST_FAILED:
        ok = False
    elif outcomes <= {"passed", "xfailed"}:
        ok = True
    else:
        ok = None  # skipped or not run: not done
    ids = [t["id"] for t in hits]
    what = f"{len(hits)} test(s) quoting {quote!r}: " + ", ".join(sorted(o for o in outcomes if o)) if hits \
        else f"no test quoting {quote!r} ran"
    evidence = {"source": "tests", "ref": quote, "text": what, "tests": ids[:6], "more": max(len(ids) - 6, 0)}
    return _Finding(ok, evidence), hits


def _latest(records: Sequence[Mapping[str, Any]], key: str, value: str) -> Mapping[str, Any] | None:
    found = [r for r in records if r.get(key) == value]
    return found[-1] if found else None


def _finding(source: Source, report: Mapping[str, Any]) -> _Finding:
    kind, ref = source.kind, source.ref
    if kind == "stage":
        stage = next((s for s in report.get("stages") or [] if s.get("name") == ref), {})
        state = stage.get("state") or stage.get("verdict") or "not-run"
        ok = True if state == "passed" else (False if state in ("failed", "blocked") else None)
        return _Finding(ok, {"source": "stage", "ref": ref, "text": f"stage {ref} {state}"})
    if kind == "action":
        name, _, step = ref.partition(":")
        rec = _latest(report.get("actions") or [], "action", name)
        if rec is None:
            return _Finding(None, {"source": "action", "ref": ref, "text": f"no {name} action recorded"})
        ok, detail = bool(rec.get("ok")), str(rec.get("detail") or "")
        if step:
            steps = ((rec.get("after") or {}).get("steps") or []) if isinstance(rec.get("after"), Mapping) else []
            entry = next((s for s in steps if isinstance(s, Mapping) and s.get("step") == step), None)
            if entry is None:
                return _Finding(None, {"source": "action", "ref": ref, "at": rec.get("at"),
                                       "text": f"{name} action recorded no {step} step"})
            ok, detail = bool(entry.get("ok")), str(entry.get("detail") or "")
        return _Finding(ok, {"source": "action", "ref": ref, "at": rec.get("at"),
                             "text": f"{ref} {'done' if ok else 'failed'}" + (f": {detail[:160]}" if detail else "")})
    if kind == "notification":
        sent = [n for n in report.get("notifications") or [] if n.get("event") == ref]
        if not sent:
            return _Finding(None, {"source": "notification", "ref": ref, "text": f"no {ref} notification recorded"})
        good = [n for n in sent if n.get("ok")]
        chosen = good[0] if good else sent[-1]
        return _Finding(bool(good), {"source": "notification", "ref": ref, "at": chosen.get("at"),
                                     "text": f"{ref} {'delivered' if good else 'not delivered'} via "
                                             f"{chosen.get('channel')}"})
    if kind == "week1":
        checks = (report.get("week1") or {}).get("checks") or []
        check = next((c for c in checks if c.get("name") == ref), None)
        if check is None:
            return _Finding(None, {"source": "week1", "ref": ref, "text": "Week 1 not evaluated in this run"})
        verdict = check.get("verdict")
        ok = True if verdict == "passed" else (False if verdict == "failed" else None)
        return _Finding(ok, {"source": "week1", "ref": ref, "text": f"Week 1 {verdict}: {check.get('evidence')}"})
    if kind == "trigger":
        fired = [t for t in report.get("triggers") or [] if t.get("name") == ref]
        if fired:
            return _Finding(False, {"source": "trigger", "ref": ref, "at": fired[0].get("at"),
                                    "text": f"trigger {ref} fired: {str(fired[0].get('evidence'))[:160]}"})
        return _Finding(True, {"source": "trigger", "ref": ref, "text": f"trigger {ref} did not fire"})
    raise ValueError(f"unknown source kind {kind!r}")


def _attestation(key: str, report: Mapping[str, Any]) -> dict[str, Any] | None:
    if key == "decommission":
        decided = ((report.get("week1") or {}).get("decommission") or [])
        if decided:
            d = decided[-1]
            return {"who": d.get("decided_by") or d.get("who"), "when": d.get("at") or d.get("ts"),
                    "via": "decommission record", "note": d.get("forced")}
        return None
    att = (report.get("team") or {}).get(key)
    if not isinstance(att, Mapping) or not att.get("who"):
        return None
    return {"who": att.get("who"), "when": att.get("when"), "via": f"[team.{key}]", "note": att.get("note")}


def _judge(item: ChecklistItem, rule: Rule, report: Mapping[str, Any], tests: Sequence[dict[str, Any]]) -> None:
    findings: list[_Finding] = []
    for source in rule.checks:
        if source.kind == "tests":
            finding, hits = _tests_finding(source.ref or item.text, tests)
            item.tests.extend(t for t in hits if t not in item.tests)
        else:
            finding = _finding(source, report)
        findings.append(finding)
    item.evidence = [f.evidence for f in findings]
    item.automatable, item.week1 = bool(rule.checks), rule.week1
    attested = _attestation(rule.person, report) if rule.person else None
    all_ok = bool(findings) and all(f.ok for f in findings)
    if any(f.ok is False for f in findings):
        item.state, item.problem = OPEN, "failed"
    elif all_ok and (attested or not rule.person_required):
        item.state, item.attested = TICKED, attested
    elif attested and not rule.person_required:
        item.state, item.attested = ATTESTED, attested
    elif rule.not_applicable:
        item.state, item.why = NOT_APPLICABLE, rule.not_applicable
    else:
        item.state = OPEN
        if all_ok:
            item.problem = "needs a person"
            who = "a decommission record" if rule.person == "decommission" else f"[team.{rule.person}]"
            item.why = f"the checks passed; a person decides: {who}"
        elif findings:
            item.problem = "pending" if rule.week1 else "not-run"
            item.why = next(str(f.evidence["text"]) for f in findings if f.ok is None)
        else:
            item.problem = "needs a person"
            item.why = f"only a person can confirm this: add [team.{rule.person}] who/when to the config"


def tick(report: Mapping[str, Any], markdown: str | None = None,
         path: str | Path | None = None) -> list[dict[str, Any]]:
    """Every runbook line of ``markdown`` (default: the packaged runbook) in its state, from ``report``'s
    stages (tests), actions, notifications, triggers, Week-1 checks and attestations."""
    if markdown is None:
        markdown = Path(path).read_text("utf-8") if path else default_checklist()
    items = parse_checklist(markdown)
    tests = [{**t, "stage": s.get("name")} for s in report.get("stages") or [] for t in s.get("tests") or []]
    for item in items:
        rule = rule_for(item.text)
        if rule is None:
            item.state, item.problem = OPEN, "unmapped"
            item.why = "this runbook line has no rule in pytest_cutover.report.checklist.RULES"
            continue
        _judge(item, rule, report, tests)
    return [i.as_dict() for i in items]


def summary(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many lines are in each state (and how many open lines the suite could have ticked)."""
    out = {TICKED: 0, ATTESTED: 0, NOT_APPLICABLE: 0, OPEN: 0, "open_automatable": 0, "total": 0}
    for item in items:
        out["total"] += 1
        out[item["state"]] = out.get(item["state"], 0) + 1
        if item["state"] == OPEN and item.get("automatable") and not item.get("week1"):
            out["open_automatable"] += 1
    return out
