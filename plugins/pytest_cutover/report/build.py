"""Aggregate a run's ledger into the sign-off report (a plain dict, the ``report.json`` contract).

Pure apart from reading the ledger: every invocation of one run appended its stage
verdicts and other records (triggers, rollback steps, notifications, figures, monitor
summaries, acks, notes); the report is what they add up to.  Effective stage verdicts
come from :meth:`Ledger.stage_records`, so a re-run of an earlier stage invalidates the
later ones exactly as gating sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pytest_cutover.config import CutoverConfig, Thresholds, config_hash, config_hosts  # config_hosts re-exported
from pytest_cutover.ledger import Ledger
from pytest_cutover.redact import redact_obj
from pytest_cutover.report.effective import CONFIG_KIND, RecordedConfig, recorded_config
from pytest_cutover.report.plan import plan_versus_actual
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
from pytest_cutover.week1.checks import week1_section, week1_settings

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


@dataclass(frozen=True)
class _Source:
    """What the report is built from: the ledger's records, the effective stage records, and the config
    (the one given, else the one the run recorded: a rehearsal's is gone, a rebuild may run elsewhere)."""

    records: list[dict[str, Any]]
    effective: dict[str, dict[str, Any]]
    config: CutoverConfig | None
    recorded: RecordedConfig | None

    @classmethod
    def read(cls, ledger: Ledger, config: CutoverConfig | None) -> _Source:
        records = ledger.records()
        recorded = recorded_config(records) if config is None else None
        return cls(records, ledger.stage_records(), recorded.config if recorded is not None else config, recorded)

    @property
    def waivers(self) -> dict[str, str]:
        return dict(self.config.waivers) if self.config else {}


@dataclass
class _Kinds:
    """The non-stage records, parsed by kind (one small function each, :data:`_KIND_PARSERS`)."""

    figures: dict[str, Any] = field(default_factory=dict)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    rollback: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    monitor: list[dict[str, Any]] = field(default_factory=list)
    other: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _trigger(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    rest = {k: v for k, v in body.items() if k not in ("name", "evidence", "stage")}
    kinds.triggers.append({"name": body.get("name"), "evidence": body.get("evidence"), "stage": body.get("stage"),
                           "at": rec.get("ts"), **rest})


def _rollback(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    kinds.rollback.append({"step": body.get("step"), "ok": bool(body.get("ok")), "detail": body.get("detail"),
                           "at": rec.get("ts")})


def _notification(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    kinds.notifications.append({"event": body.get("event"), "channel": body.get("channel"),
                                "ok": bool(body.get("ok")), "status": body.get("status"), "at": rec.get("ts")})


def _figures(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    section = body.get("section") or "figures"
    merge_figure(kinds.figures, section, dict(body.get("figures") or {}), section)


def _monitor(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    kinds.monitor.append({**body, "at": rec.get("ts")})
    summary = {k: v for k, v in body.items() if not isinstance(v, Mapping | list)}
    merge_figure(kinds.figures, "monitor", {**summary, **(body.get("figures") or {})}, "monitor")


def _ack(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    kinds.acks.append({"name": body.get("who") or body.get("name"), "at": body.get("at") or rec.get("ts")})


def _note(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    if body.get("text"):
        kinds.notes.append(str(body["text"]))


def _action(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    kinds.actions.append({**body, "at": rec.get("ts"), "user": rec.get("user"), "host": rec.get("host")})


def _ignored(kinds: _Kinds, rec: Mapping[str, Any], body: dict[str, Any]) -> None:
    """Stage records are read through :meth:`Ledger.stage_records`; the config record by :func:`recorded_config`."""


_KIND_PARSERS: dict[str, Callable[[_Kinds, Mapping[str, Any], dict[str, Any]], None]] = {
    "stage": _ignored, CONFIG_KIND: _ignored, "trigger": _trigger, "rollback": _rollback,
    "notification": _notification, "figures": _figures, "monitor": _monitor, "ack": _ack, "note": _note,
    "action": _action,
}


def _parse_kinds(records: Iterable[Mapping[str, Any]], stages: list[dict[str, Any]],
                 effective: Mapping[str, Mapping[str, Any]]) -> _Kinds:
    """Figures: the effective stage records' figures in stage order, then explicit "figures"/"monitor" records;
    every other kind into its list (an unknown kind under ``other_records``)."""
    kinds = _Kinds()
    for stage in stages:
        for name, value in ((effective.get(stage["name"]) or {}).get("figures") or {}).items():
            merge_figure(kinds.figures, name, value, stage["name"])
    for rec in records:
        body = _payload(rec)
        parser = _KIND_PARSERS.get(rec["kind"])
        if parser is None:
            kinds.other.setdefault(rec["kind"], []).append({**body, "at": rec.get("ts")})
        else:
            parser(kinds, rec, body)
    return kinds


def _stages(source: _Source) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every stage in order (its effective verdict) and the history of every stage record."""
    attempts: dict[str, int] = dict.fromkeys(STAGES, 0)
    history = []
    for rec in source.records:
        if rec["kind"] == "stage":
            attempts[rec["stage"]] += 1
            history.append({"stage": rec["stage"], "verdict": rec.get("verdict"), "start": rec.get("start"),
                            "end": rec.get("end"), "invocation": rec.get("invocation"), "forced": rec.get("forced"),
                            "effective": source.effective.get(rec["stage"]) == rec})
    return [_stage_entry(s, source.effective.get(s), attempts[s]) for s in STAGES], history


@dataclass
class _StageIssues:
    """What the stages add to the issues: failures, blocks, partial runs, forced overrides, skips and waivers."""

    issues: list[str] = field(default_factory=list)
    forced_overrides: list[dict[str, Any]] = field(default_factory=list)
    waived: list[dict[str, Any]] = field(default_factory=list)
    unwaived: list[dict[str, Any]] = field(default_factory=list)

    def add_stage(self, stage: Mapping[str, Any], waivers: Mapping[str, str]) -> None:
        name = stage["name"]
        for test in stage["tests"]:
            if test["outcome"] in _FAILED_OUTCOMES:
                self.issues.append(f"{name}: {test['id']} {test['outcome']}: "
                                   f"{_first_line(test['message']) or 'no message'}")
        if stage["verdict"] == BLOCKED:
            self.issues.append(f"{name}: blocked - {_first_line(stage['reason'])}")
        if stage["state"] in (PARTIAL, INTERRUPTED):
            self.issues.append(f"{name}: {stage['state']}, does not count - {_first_line(stage['reason'])}")
        if stage["forced"]:
            self.forced_overrides.append({"stage": name, "reason": stage["forced"], "over": stage["forced_over"]})
            self.issues.append(f"{name}: forced over a gate ({_first_line(stage['forced_over'])}); "
                               f"reason given: {stage['forced']}")
        for skip in stage["skipped"]:
            self.add_skip(name, skip, waivers)

    def add_skip(self, stage: str, skip: Mapping[str, Any], waivers: Mapping[str, str]) -> None:
        waiver = is_waived(skip.get("id", ""), skip.get("reason", ""), waivers)
        entry = {"stage": stage, "id": skip.get("id"), "reason": skip.get("reason"), "waiver": waiver}
        if waiver is None:
            self.unwaived.append(entry)
            self.issues.append(f"{stage}: {skip.get('id')} skipped without a waiver: {_first_line(skip.get('reason'))}")
        else:
            self.waived.append(entry)
            self.issues.append(f"{stage}: {skip.get('id')} skipped, waived: {waiver}")


def _record_issues(kinds: _Kinds) -> list[str]:
    """Fired triggers, failed rollback steps and failed deliveries."""
    issues = []
    for trig in kinds.triggers:
        where = f" ({trig['stage']})" if trig.get("stage") else ""
        issues.append(f"rollback trigger {trig['name']}{where}: {_first_line(trig['evidence'])}")
    issues += [f"rollback step {s['step']} failed: {_first_line(s['detail'])}" for s in kinds.rollback if not s["ok"]]
    issues += [f"notification {n['event']} via {n['channel']} failed (status {n['status']})"
               for n in kinds.notifications if not n["ok"]]
    return issues


def _status(stages: list[dict[str, Any]], kinds: _Kinds, unwaived: int) -> dict[str, str]:
    """Status: decided in the core, next to the gate (:func:`stages.run_status`)."""
    status, why = run_status({s["name"]: s["state"] for s in stages},
                             rollback=bool(kinds.triggers or kinds.rollback), unwaived_skips=unwaived)
    if status == ROLLBACK:
        why = f"{len(kinds.triggers)} rollback trigger(s) fired" if kinds.triggers else "a rollback ran"
    return {"status": status, "status_reason": why}


@dataclass(frozen=True)
class _Window:
    """When the cutover ran: from the first stage to the last record (what the report's own commands append,
    acks, notes and the config, does not stretch it; a Day-7 note does not start it)."""

    started: datetime | None
    finished: datetime | None
    stamps: list[dict[str, Any]]  # the records whose revision and config hash describe the run

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> _Window:
        happened = [r for r in records if r["kind"] not in _AFTERWARDS]
        finished = max((d for d in (_utc(r.get("end") or r.get("ts")) for r in happened) if d), default=None)
        opening = [r for r in records if r["kind"] == "stage"] or happened
        started = min((d for d in (_utc(r.get("start") or r.get("ts")) for r in opening) if d), default=None)
        return cls(started, finished, opening)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _invocations(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per invocation that wrote to the ledger, with the stage verdicts it recorded."""
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
    return list(invocations.values())


def _notes(config: CutoverConfig | None, kinds: _Kinds, notes: str | None) -> str:
    """The config's notes, the note records, then the notes given to this build."""
    given = ([config.run.notes] if config and config.run.notes else []) + kinds.notes + [notes or ""]
    return "\n".join(n for n in given if n)


def _environment(source: _Source, window: _Window, figures: dict[str, Any], local_versions: bool) -> dict[str, Any]:
    """Where and with what the stages ran: revisions, config hashes, hosts, machines, users, versions."""
    config, recorded, stamps, records = source.config, source.recorded, window.stamps, source.records
    return {
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
        "report_config_hash": recorded.config_hash if recorded is not None else config_hash(config),
    }


def _environment_issues(environment: Mapping[str, Any]) -> list[str]:
    """Stages that ran from different revisions or configs, and a report built with yet another config."""
    issues = []
    if len(environment["git_revs"]) > 1:
        issues.append("stages ran from different suite revisions: " + ", ".join(environment["git_revs"]))
    if len(environment["config_hashes"]) > 1:
        issues.append("stages ran with different configs: " + ", ".join(environment["config_hashes"]))
    built_with = environment["report_config_hash"]
    if environment["config_hashes"] and built_with not in environment["config_hashes"]:
        ran_with = ", ".join(environment["config_hashes"])
        issues.append(f"this report was built with config {built_with or 'none'}, but the stages ran with "
                      f"{ran_with}: rebuild with `cutover report --config PATH`")
    return issues


def build_report(ledger: Ledger, config: CutoverConfig | None, run: str, *, notes: str | None = None,
                 local_versions: bool = True) -> dict[str, Any]:
    """The sign-off report of ``run``: every stage in order, figures, triggers, issues and the status.

    Each part is derived by one small function from the records; a new section is one line in the dict below.
    """
    source = _Source.read(ledger, config)
    config = source.config
    stages, history = _stages(source)
    kinds = _parse_kinds(source.records, stages, source.effective)
    checked = _StageIssues()
    for stage in stages:
        checked.add_stage(stage, source.waivers)
    issues = checked.issues + _record_issues(kinds)
    window = _Window.of(source.records)
    finished = window.finished
    local_time = _local_time(finished, config.run.timezone if config else None, issues)
    environment = _environment(source, window, kinds.figures, local_versions)
    issues += _environment_issues(environment)
    report = {
        "report_version": REPORT_VERSION,
        "run": run,
        **_status(stages, kinds, len(checked.unwaived)),
        "lead": config.run.lead if config else None,
        "maintenance_window": _announced(config),
        "thresholds": (config.thresholds if config else Thresholds()).model_dump(),
        "date": finished.strftime("%Y-%m-%d") if finished else None,
        "time": finished.strftime("%H:%M:%SZ") if finished else None,
        "local_time": local_time,
        "started": _iso(window.started),
        "finished": _iso(finished),
        "stages": stages,
        "history": history,
        "forced_overrides": checked.forced_overrides,
        "figures": kinds.figures,
        "triggers": kinds.triggers,
        "rollback": kinds.rollback,
        "notifications": kinds.notifications,
        "actions": kinds.actions,
        "monitor": kinds.monitor,
        "acks": kinds.acks,
        "sign_off": sign_off(config, kinds.acks, window.started, finished),
        "team": {k: v.model_dump() for k, v in (config.team.items() if config else [])},
        "waivers": checked.waived,
        "unwaived_skips": checked.unwaived,
        "issues": issues,
        "notes": _notes(config, kinds, notes),
        "other_records": kinds.other,
        "invocations": _invocations(source.records),
        "environment": environment,
        "artifacts": {},
        # Week 1 (rolling monitor window, the five checks, who decided to decommission), judged as of the
        # ledger's last record so that rebuilding the report from the same ledger gives the same verdicts.
        "week1": week1_section(source.records, week1_settings(config), finished or datetime.now(UTC)),
    }
    if report["week1"] is None:
        del report["week1"]
    report["plan"] = plan_versus_actual(source.records, config, run).as_dict()  # the night, planned against actual
    return redact_obj(report)
