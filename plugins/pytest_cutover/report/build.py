"""Aggregate a run's ledger into the sign-off report (a plain dict, the ``report.json`` contract).

Pure apart from reading the ledger: every invocation of one run appended its stage
verdicts and other records (triggers, rollback steps, notifications, figures, monitor
summaries, acks, notes); the report is what they add up to.  Effective stage verdicts
come from :meth:`Ledger.stage_records`, so a re-run of an earlier stage invalidates the
later ones exactly as gating sees it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pytest_cutover.config import CutoverConfig, Thresholds, config_hash, config_hosts  # config_hosts re-exported
from pytest_cutover.ledger import Ledger
from pytest_cutover.redact import redact_obj
from pytest_cutover.report.versions import versions
from pytest_cutover.stages import (
    BLOCKED,
    CONTRACT_VERDICT,
    INTERRUPTED,
    NOT_RUN,
    PARTIAL,
    ROLLBACK,
    STAGES,
    run_status,
)

__all__ = ["REPORT_VERSION", "build_report", "config_hosts", "is_waived", "merge_figure", "sign_off"]

REPORT_VERSION = 1
# Fields every ledger record carries for bookkeeping; they are not part of a record's payload.
_BOOKKEEPING = frozenset({"v", "ts", "kind", "run", "host", "user", "git_rev", "config_hash", "args", "invocation"})
_FAILED_OUTCOMES = ("failed", "error")
_AFTERWARDS = frozenset({"ack", "note", "config"})


def _payload(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _BOOKKEEPING}


def merge_figure(figures: dict[str, Any], name: str, value: Any, default_section: str) -> None:
    """Merge one recorded figure into ``figures`` (section -> {name: value}).

    ``record_figure("vectors", {...})`` fills the section ``vectors``; ``"vectors.points"`` sets one
    key of it; any other plain name lands in the section of the stage that recorded it.
    """
    if isinstance(value, Mapping):
        section = figures.get(name)
        if not isinstance(section, dict):
            section = figures[name] = {}
        section.update(value)
    elif "." in name:
        section_name, key = name.split(".", 1)
        section = figures.get(section_name)
        if not isinstance(section, dict):
            section = figures[section_name] = {}
        section[key] = value
    else:
        section = figures.get(default_section)
        if not isinstance(section, dict):
            section = figures[default_section] = {}
        section[name] = value


def is_waived(test_id: str, reason: str, waivers: Mapping[str, str]) -> str | None:
    """The waiver text that covers a skipped check, or ``None``.

    A waiver key matches the test id, the test's name (``test_backup_recent``), or the config key
    its skip reason names (``missing config key target.storage_url`` is waived by ``target.storage_url``).
    """
    name = test_id.rsplit("::", 1)[-1]
    bare = name.split("[", 1)[0]
    for key, text in waivers.items():
        if key in (test_id, name, bare):
            return text
        if re.search(rf"(?<![\w.]){re.escape(key)}(?![\w.])", reason or ""):
            return text
    return None


def sign_off(config: CutoverConfig | None, acks: Iterable[Mapping[str, Any]], started: datetime | None,
             finished: datetime | None) -> dict[str, Any]:
    """The sign-off block: the lead, the contacts whose shift overlaps the cutover window (every contact
    when the window is unknown), and who acknowledged the report (``cutover report --ack NAME``) and when."""
    from pytest_cutover.checks.people import contacts_on_duty

    contacts = config.people.contacts if config else ()
    return {"lead": config.run.lead if config else None,
            "contacts_on_duty": contacts_on_duty(contacts, started or finished, finished),
            "acks": [{"who": a.get("name"), "at": a.get("at")} for a in acks]}


def _utc(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _local_time(moment: datetime | None, timezone: str | None, issues: list[str]) -> dict[str, str] | None:
    if moment is None or not timezone:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        local = moment.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        issues.append(f"config run.timezone {timezone!r} is not a known time zone: local time not shown")
        return None
    return {"timezone": timezone, "date": local.strftime("%Y-%m-%d"), "time": local.strftime("%H:%M:%S %Z")}


def _announced(config: CutoverConfig | None) -> str | None:
    """The announced maintenance window (``[run] maintenance_start`` → ``maintenance_end``), if configured."""
    if config is None or not (config.run.maintenance_start or config.run.maintenance_end):
        return None
    return f"{config.run.maintenance_start or '?'} → {config.run.maintenance_end or '?'}"


def _stage_entry(name: str, rec: Mapping[str, Any] | None, attempts: int) -> dict[str, Any]:
    if rec is None:
        return {"name": name, "verdict": NOT_RUN, "state": NOT_RUN, "not_run": [], "forced": None,
                "forced_over": None, "start": None, "end": None,
                "duration": None, "reason": None, "first_failure": None, "counts": {}, "tests": [], "skipped": [],
                "invocation": None, "host": None, "user": None, "git_rev": None, "attempts": attempts}
    tests = [
        {"id": t.get("id"), "outcome": t.get("outcome"), "runbook": t.get("runbook"),
         "duration": t.get("duration"), "message": t.get("message")}
        for t in rec.get("tests") or []
    ]
    return {
        # The contract's vocabulary has no partial or interrupted stage: they did not run as a stage.
        "name": name, "verdict": CONTRACT_VERDICT.get(rec.get("verdict"), rec.get("verdict")),
        "state": rec.get("verdict"), "not_run": list(rec.get("not_run") or []), "forced": rec.get("forced"),
        "forced_over": rec.get("forced_over"), "start": rec.get("start"), "end": rec.get("end"),
        "duration": rec.get("duration"), "reason": rec.get("reason"), "first_failure": rec.get("first_failure"),
        "counts": {k: v for k, v in (rec.get("counts") or {}).items() if v}, "tests": tests,
        "skipped": list(rec.get("skipped") or []), "invocation": rec.get("invocation"), "host": rec.get("host"),
        "user": rec.get("user"), "git_rev": rec.get("git_rev"), "attempts": attempts,
    }


def _first_line(text: Any, limit: int = 300) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _distinct(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def build_report(ledger: Ledger, config: CutoverConfig | None, run: str, *, notes: str | None = None,
                 local_versions: bool = True) -> dict[str, Any]:
    """The sign-off report of ``run``: every stage in order, figures, triggers, issues and the status."""
    records = ledger.records()
    effective = ledger.stage_records()
    # Without a config (a rehearsal's is gone; a rebuild from another folder), use the one the run recorded.
    from pytest_cutover.report.effective import CONFIG_KIND, recorded_config

    recorded = recorded_config(records) if config is None else None
    if recorded is not None:
        config = recorded.config
    waivers = dict(config.waivers) if config else {}
    issues: list[str] = []

    attempts: dict[str, int] = {s: 0 for s in STAGES}
    history = []
    for rec in records:
        if rec["kind"] == "stage":
            attempts[rec["stage"]] += 1
            history.append({"stage": rec["stage"], "verdict": rec.get("verdict"), "start": rec.get("start"),
                            "end": rec.get("end"), "invocation": rec.get("invocation"), "forced": rec.get("forced"),
                            "effective": effective.get(rec["stage"]) == rec})
    stages = [_stage_entry(s, effective.get(s), attempts[s]) for s in STAGES]

    # Figures: the effective stage records' figures in stage order, then explicit "figures"/"monitor" records.
    figures: dict[str, Any] = {}
    for stage in stages:
        rec = effective.get(stage["name"])
        for name, value in ((rec or {}).get("figures") or {}).items():
            merge_figure(figures, name, value, stage["name"])
    triggers, rollback, notifications, actions, acks, note_texts, monitor_summaries = [], [], [], [], [], [], []
    other: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        kind, body = rec["kind"], _payload(rec)
        if kind in ("stage", CONFIG_KIND):
            continue
        if kind == "trigger":
            triggers.append({"name": body.get("name"), "evidence": body.get("evidence"), "stage": body.get("stage"),
                             "at": rec.get("ts"), **{k: v for k, v in body.items()
                                                     if k not in ("name", "evidence", "stage")}})
        elif kind == "rollback":
            rollback.append({"step": body.get("step"), "ok": bool(body.get("ok")), "detail": body.get("detail"),
                             "at": rec.get("ts")})
        elif kind == "notification":
            notifications.append({"event": body.get("event"), "channel": body.get("channel"),
                                  "ok": bool(body.get("ok")), "status": body.get("status"), "at": rec.get("ts")})
        elif kind == "figures":
            section = body.get("section") or "figures"
            merge_figure(figures, section, dict(body.get("figures") or {}), section)
        elif kind == "monitor":
            monitor_summaries.append({**body, "at": rec.get("ts")})
            summary = {k: v for k, v in body.items() if not isinstance(v, Mapping | list)}
            merge_figure(figures, "monitor", {**summary, **(body.get("figures") or {})}, "monitor")
        elif kind == "ack":
            acks.append({"name": body.get("who") or body.get("name"), "at": body.get("at") or rec.get("ts")})
        elif kind == "note":
            if body.get("text"):
                note_texts.append(str(body["text"]))
        elif kind == "action":
            actions.append({**body, "at": rec.get("ts"), "user": rec.get("user"), "host": rec.get("host")})
        else:
            other.setdefault(kind, []).append({**body, "at": rec.get("ts")})

    # Issues: failures, blocks, forced overrides, triggers, failed rollback steps and deliveries, skips and waivers.
    forced_overrides, waived, unwaived = [], [], []
    for stage in stages:
        name = stage["name"]
        for test in stage["tests"]:
            if test["outcome"] in _FAILED_OUTCOMES:
                issues.append(f"{name}: {test['id']} {test['outcome']}: {_first_line(test['message']) or 'no message'}")
        if stage["verdict"] == BLOCKED:
            issues.append(f"{name}: blocked - {_first_line(stage['reason'])}")
        if stage["state"] in (PARTIAL, INTERRUPTED):
            issues.append(f"{name}: {stage['state']}, does not count - {_first_line(stage['reason'])}")
        if stage["forced"]:
            forced_overrides.append({"stage": name, "reason": stage["forced"], "over": stage["forced_over"]})
            issues.append(f"{name}: forced over a gate ({_first_line(stage['forced_over'])}); "
                          f"reason given: {stage['forced']}")
        for skip in stage["skipped"]:
            waiver = is_waived(skip.get("id", ""), skip.get("reason", ""), waivers)
            entry = {"stage": name, "id": skip.get("id"), "reason": skip.get("reason"), "waiver": waiver}
            if waiver is None:
                unwaived.append(entry)
                issues.append(f"{name}: {skip.get('id')} skipped without a waiver: {_first_line(skip.get('reason'))}")
            else:
                waived.append(entry)
                issues.append(f"{name}: {skip.get('id')} skipped, waived: {waiver}")
    for trig in triggers:
        where = f" ({trig['stage']})" if trig.get("stage") else ""
        issues.append(f"rollback trigger {trig['name']}{where}: {_first_line(trig['evidence'])}")
    for step in rollback:
        if not step["ok"]:
            issues.append(f"rollback step {step['step']} failed: {_first_line(step['detail'])}")
    for note in notifications:
        if not note["ok"]:
            issues.append(f"notification {note['event']} via {note['channel']} failed (status {note['status']})")

    # Status: decided in the core, next to the gate (stages.run_status).
    status, why = run_status({s["name"]: s["state"] for s in stages}, rollback=bool(triggers or rollback),
                             unwaived_skips=len(unwaived))
    if status == ROLLBACK:
        why = f"{len(triggers)} rollback trigger(s) fired" if triggers else "a rollback ran"

    # What the report's own commands append (acks, notes, the config) does not stretch the cutover's window.
    happened = [r for r in records if r["kind"] not in _AFTERWARDS]
    finished = max((d for d in (_utc(r.get("end") or r.get("ts")) for r in happened) if d), default=None)
    # The window opens with the first stage (a Day-7 note does not start the cutover) and closes with the last record.
    opening = [r for r in records if r["kind"] == "stage"] or happened
    started = min((d for d in (_utc(r.get("start") or r.get("ts")) for r in opening) if d), default=None)
    all_notes = [n for n in ([config.run.notes] if config and config.run.notes else []) + note_texts + [notes or ""]
                 if n]
    stamps = [r for r in records if r["kind"] == "stage"] or happened
    invocations: dict[str, dict[str, Any]] = {}
    for rec in records:
        inv = rec.get("invocation")
        if not inv:
            continue
        entry = invocations.setdefault(inv, {"invocation": inv, "first": rec.get("ts"), "host": rec.get("host"),
                                             "user": rec.get("user"), "git_rev": rec.get("git_rev"),
                                             "args": rec.get("args"), "stages": []})
        if rec["kind"] == "stage":
            entry["stages"].append(f"{rec['stage']}:{rec.get('verdict')}")

    report = {
        "report_version": REPORT_VERSION,
        "run": run,
        "status": status,
        "status_reason": why,
        "lead": config.run.lead if config else None,
        "maintenance_window": _announced(config),
        "thresholds": (config.thresholds if config else Thresholds()).model_dump(),
        "date": finished.strftime("%Y-%m-%d") if finished else None,
        "time": finished.strftime("%H:%M:%SZ") if finished else None,
        "local_time": _local_time(finished, config.run.timezone if config else None, issues),
        "started": started.isoformat().replace("+00:00", "Z") if started else None,
        "finished": finished.isoformat().replace("+00:00", "Z") if finished else None,
        "stages": stages,
        "history": history,
        "forced_overrides": forced_overrides,
        "figures": figures,
        "triggers": triggers,
        "rollback": rollback,
        "notifications": notifications,
        "actions": actions,
        "monitor": monitor_summaries,
        "acks": acks,
        "sign_off": sign_off(config, acks, started, finished),
        "team": {k: v.model_dump() for k, v in (config.team.items() if config else [])},
        "waivers": waived,
        "unwaived_skips": unwaived,
        "issues": issues,
        "notes": "\n".join(all_notes),
        "other_records": other,
        "invocations": list(invocations.values()),
        "environment": {
            "git_rev": stamps[-1].get("git_rev") if stamps else None,
            "git_revs": _distinct(r.get("git_rev") for r in stamps),
            "config_hash": stamps[-1].get("config_hash") if stamps else None,
            "config_hashes": _distinct(r.get("config_hash") for r in stamps),
            "config_path": config.path if config else None,
            "config_source": ("recorded in the ledger" if recorded is not None else "file") if config else None,
            "hosts": recorded.hosts if recorded is not None else config_hosts(config),
            "machines": _distinct(r.get("host") for r in records),
            "users": _distinct(r.get("user") for r in records),
            "versions": versions(figures, local=local_versions),
        },
        "artifacts": {},
    }
    # Week 1 (rolling monitor window, the five checks, who decided to decommission), judged as of the
    # ledger's last record so that rebuilding the report from the same ledger gives the same verdicts.
    from pytest_cutover.week1.checks import week1_section, week1_settings

    week1 = week1_section(records, week1_settings(config), finished or datetime.now(UTC))
    if week1 is not None:
        report["week1"] = week1
    from pytest_cutover.report.plan import plan_versus_actual  # the night's steps, planned against actual
    report["plan"] = plan_versus_actual(records, config, run).as_dict()
    if len(report["environment"]["git_revs"]) > 1:
        issues.append("stages ran from different suite revisions: " + ", ".join(report["environment"]["git_revs"]))
    if len(report["environment"]["config_hashes"]) > 1:
        issues.append("stages ran with different configs: " + ", ".join(report["environment"]["config_hashes"]))
    built_with = recorded.config_hash if recorded is not None else config_hash(config)
    report["environment"]["report_config_hash"] = built_with
    if report["environment"]["config_hashes"] and built_with not in report["environment"]["config_hashes"]:
        ran_with = ", ".join(report["environment"]["config_hashes"])
        issues.append(f"this report was built with config {built_with or 'none'}, but the stages ran with "
                      f"{ran_with}: rebuild with `cutover report --config PATH`")
    return redact_obj(report)

