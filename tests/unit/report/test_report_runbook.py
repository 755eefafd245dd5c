"""Every runbook line has a declared rule, and each state agrees with what the run recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.report.checklist import RULES, default_checklist, parse_checklist, rule_for, summary, tick
from pytest_cutover.report.writer import write_report_files

from . import factory

REFERENCE = Path("/work/shared/reference/cutover-checklist.md")
# The sections the issue names: Day 8 steps, rollback triggers, success criteria, final checklist, Week 1.
SECTIONS = ("CUTOVER STEPS", "Triggers for rollback", "Success Criteria", "FINAL CHECKLIST",
            "Post-Cutover (Week 1)")


def _runbook() -> str:
    return REFERENCE.read_text("utf-8") if REFERENCE.exists() else default_checklist()


def test_every_runbook_line_is_mapped() -> None:
    items = parse_checklist(_runbook())
    for section in SECTIONS:
        assert any(section in i.section for i in items), f"no runbook line parsed from {section}"
    unmapped = [f"line {i.line}: {i.text}" for i in items if rule_for(i.text) is None]
    assert not unmapped, "runbook lines without a rule in checklist.RULES: " + "; ".join(unmapped)
    stale = sorted(set(RULES) - {i.text for i in items})
    assert not stale, f"rules for lines the runbook does not have: {stale}"


def test_an_unmapped_line_is_open_and_says_so() -> None:
    lines = tick({"stages": []}, "## Day 7\n- [ ] Sacrifice a goat\n- [ ] No merge conflicts\n")
    assert (lines[0]["state"], lines[0]["problem"]) == ("open", "unmapped")
    assert "RULES" in lines[0]["why"]


def _rehearsal_like(tmp_path: Path, *, trigger: bool = False, stop_after: str | None = None) -> Any:
    """A ledger shaped like a clean rehearsal: real test ids and runbook quotes, actions, notifications."""
    cfg = factory.config(run={"id": "night", "lead": "Ada Lovelace", "maintenance_start": "2026-12-05T08:00Z",
                              "maintenance_end": "2026-12-05T14:00Z"},
                         people={"contacts": [{"name": "Grace", "role": "on-call", "channel": "slack:#incident"},
                                              {"name": "Linus", "role": "escalation", "channel": "phone:+4930"}]},
                         team={"support_standby": {"who": "Grace", "when": "2026-12-04T16:00Z"}})
    ctx = factory.context(tmp_path, cfg)
    return ctx, factory.rehearsal_ledger(ctx, trigger=trigger, stop_after=stop_after)


def test_a_success_report_has_no_open_line_the_suite_can_automate(tmp_path: Path) -> None:
    ctx, _ = _rehearsal_like(tmp_path)
    report = write_report_files(ctx, generate_allure=False).report
    assert report["status"] == "SUCCESS", report["issues"]
    lines = {i["text"]: i for i in report["checklist"]}
    open_auto = [t for t, i in lines.items() if i["state"] == "open" and i["automatable"] and not i["week1"]]
    assert not open_auto, open_auto
    assert summary(report["checklist"])["open_automatable"] == 0
    # The lines the issue saw unticked on a SUCCESS report, each with the record that did it.
    for text, kind in [("Database URL switched to Supabase pooler", "action"), ("Services restarted", "action"),
                       ("All smoke tests passed", "stage"), ("Run Final Vector Migration", "tests"),
                       ('Send "maintenance complete" notification', "notification"),
                       ("Stop Current Services", "action"), ("Clear Connection Pools", "action")]:
        assert lines[text]["state"] == "ticked", (text, lines[text])
        assert kind in {e["source"] for e in lines[text]["evidence"]}
    # Only a person can confirm these; they are open and say who should write what.
    assert lines["User reports positive"]["problem"] == "needs a person"
    # Triggers: watched and did not fire.
    assert lines["Error rate > 5%"]["state"] == "ticked"


def test_week1_lines_agree_with_the_week1_panel(tmp_path: Path) -> None:
    ctx, _ = _rehearsal_like(tmp_path)
    report = write_report_files(ctx, generate_allure=False).report
    panel = {c["title"]: c["verdict"] for c in report["week1"]["checks"]}
    by_check = {"Monitoring continued for 24 hours": "monitoring-24h", "No critical issues found": "no-critical-issues",
                "Error rates < 1%": "error-rate", "BLOB migration script run (during low traffic)": "blob-migration",
                "Old infrastructure decommissioned (after 7 days stable)": "decommission-ready"}
    verdicts = {c["name"]: c["verdict"] for c in report["week1"]["checks"]}
    assert panel
    for item in report["checklist"]:
        if item["text"] in by_check:
            assert item["week1"]
            expected = "ticked" if verdicts[by_check[item["text"]]] == "passed" else "open"
            assert item["state"] == expected, (item["text"], verdicts[by_check[item["text"]]], item)
    assert {i["text"]: i["state"] for i in report["checklist"]}["Error rates < 1%"] == "ticked"


def test_a_fired_trigger_opens_its_line_and_attestations_name_who(tmp_path: Path) -> None:
    ctx, _ = _rehearsal_like(tmp_path, trigger=True)
    report = write_report_files(ctx, generate_allure=False).report
    assert report["status"] == "ROLLBACK"
    lines = {i["text"]: i for i in report["checklist"]}
    assert (lines["Error rate > 5%"]["state"], lines["Error rate > 5%"]["problem"]) == ("open", "failed")
    assert "fired" in " ".join(e["text"] for e in lines["Error rate > 5%"]["evidence"])


def test_a_person_attests_a_line_only_a_person_can_confirm(tmp_path: Path) -> None:
    report = {"stages": [], "team": {"user_reports_positive": {"who": "Dana", "when": "2026-12-06T10:00Z"}}}
    line = next(i for i in tick(report) if i["text"] == "User reports positive")
    assert line["state"] == "attested" and line["attested"]["who"] == "Dana"
    assert line["attested"]["when"] == "2026-12-06T10:00Z"


@pytest.mark.parametrize("stop_after", ["switch"])
def test_an_incomplete_run_leaves_later_lines_open_not_run(tmp_path: Path, stop_after: str) -> None:
    ctx, _ = _rehearsal_like(tmp_path, stop_after=stop_after)
    report = write_report_files(ctx, generate_allure=False).report
    assert report["status"] == "INCOMPLETE"
    lines = {i["text"]: i for i in report["checklist"]}
    assert (lines["All smoke tests passed"]["state"], lines["All smoke tests passed"]["problem"]) == ("open", "not-run")
    assert lines["Services restarted"]["state"] == "ticked"
