"""Runbook "Team Communication" and "Support contacts": the people on duty, named and reachable.

``[[people.contacts]]`` entries (``name``, ``role`` = escalation | on-call | support, ``channel`` =
``scheme:address``, optional ``from``/``until``) replace "see contact list" with a list the suite can
read.  A role with nobody, an entry without a name, a channel that does not parse, or a maintenance
window nobody of that role covers fails, naming exactly what is missing.  Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pytest_cutover.checks.base import CheckResult, result

if TYPE_CHECKING:
    from pytest_cutover.config import Contact, CutoverConfig

__all__ = ["CHANNEL_KINDS", "ROLES", "Channel", "check_contacts", "contacts_on_duty", "parse_channel", "parse_when"]

#: Role -> the runbook line it makes checkable.
ROLES: dict[str, str] = {
    "escalation": "Escalation contacts confirmed",
    "on-call": "Call: On-call team (see contact list)",
    "support": "Support team on standby",
}
#: Channel scheme -> what its address looks like (for the message when it does not parse).
CHANNEL_KINDS: dict[str, str] = {
    "slack": "a channel or member: slack:#incident, slack:@dana",
    "phone": "an international number: phone:+49 30 1234567",
    "sms": "an international number: sms:+49 151 1234567",
    "mail": "an address: mail:dana@example.com",
    "pagerduty": "a service or schedule: pagerduty:backend-primary",
    "opsgenie": "a team or schedule: opsgenie:backend",
    "https": "a bridge or roster URL: https://meet.example.com/incident",
}
_ALIASES = {"email": "mail", "tel": "phone", "pager": "pagerduty"}
_SLACK = re.compile(r"^[#@]?[a-z0-9][a-z0-9._-]{0,79}$", re.IGNORECASE)
_PHONE = re.compile(r"^\+[0-9][0-9 ().-]*$")
_MAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_TOKEN = re.compile(r"^\S+$")
# Words people type while a roster is still a draft: not a name.
_PLACEHOLDERS = frozenset({"tbd", "tba", "todo", "?", "??", "n/a", "na", "none", "nobody", "xxx", "-", "name"})


@dataclass(frozen=True)
class Channel:
    """A parsed ``scheme:address`` channel."""

    kind: str
    address: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.address}"


def parse_channel(text: str) -> Channel:
    """``"slack:#incident"`` -> ``Channel("slack", "#incident")``; ``ValueError`` saying why otherwise.

    >>> parse_channel("phone:+49 30 1234567").kind
    'phone'
    """
    raw = (text or "").strip()
    scheme, sep, address = raw.partition(":")
    scheme, address = _ALIASES.get(scheme.strip().lower(), scheme.strip().lower()), address.strip()
    if not sep or not scheme:
        raise ValueError("write it as kind:address (" + ", ".join(sorted(CHANNEL_KINDS)) + ")")
    if scheme == "http":
        raise ValueError("use an https:// URL")
    if scheme not in CHANNEL_KINDS:
        raise ValueError(f"unknown kind {scheme!r}: use one of " + ", ".join(sorted(CHANNEL_KINDS)))
    if not address:
        raise ValueError(f"no address after {scheme}: ({CHANNEL_KINDS[scheme]})")
    ok = {
        "slack": lambda a: bool(_SLACK.match(a)),
        "phone": lambda a: bool(_PHONE.match(a)) and 7 <= len(re.sub(r"\D", "", a)) <= 15,
        "sms": lambda a: bool(_PHONE.match(a)) and 7 <= len(re.sub(r"\D", "", a)) <= 15,
        "mail": lambda a: bool(_MAIL.match(a)),
        "pagerduty": lambda a: bool(_TOKEN.match(a)),
        "opsgenie": lambda a: bool(_TOKEN.match(a)),
        "https": lambda a: a.startswith("//") and bool(urlsplit("https:" + a).hostname),
    }[scheme](address)
    if not ok:
        raise ValueError(f"{address!r} is not {CHANNEL_KINDS[scheme]}")
    return Channel(scheme, address)


def parse_when(text: str | None) -> dt.datetime | None:
    """An ISO date or date/time as an aware UTC datetime (a naive one is taken as UTC); ``None`` if unparseable."""
    if not text or not text.strip():
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _label(index: int, contact: Contact) -> str:
    who = contact.name.strip()
    return f"people.contacts[{index}]" + (f" {who}" if who else "") + f" ({contact.role})"


def _entry_problems(index: int, contact: Contact) -> list[str]:
    label = _label(index, contact)
    problems = []
    if not contact.name.strip() or contact.name.strip().lower() in _PLACEHOLDERS:
        what = f"name {contact.name.strip()!r} is a placeholder" if contact.name.strip() else "no name"
        problems.append(f"{label}: {what}: write who it is (a person, or a team with its lead)")
    if not contact.channel.strip():
        problems.append(f"{label}: no channel: add channel = \"slack:#incident\" (or phone:+..., mail:...) so they "
                        f"can be reached during the window")
    else:
        try:
            parse_channel(contact.channel)
        except ValueError as exc:
            problems.append(f"{label}: channel {contact.channel.strip()!r} does not parse: {exc}")
    start, end = contact.from_, contact.until
    for key, value in (("from", start), ("until", end)):
        if value is not None and parse_when(value) is None:
            problems.append(f"{label}: {key} = {value!r} is not an ISO date/time (e.g. 2026-11-26T06:00Z)")
    a, b = parse_when(start), parse_when(end)
    if a is not None and b is not None and b <= a:
        problems.append(f"{label}: until {end} is not after from {start}")
    return problems


def _shift(contact: Contact) -> tuple[dt.datetime, dt.datetime]:
    low = dt.datetime.min.replace(tzinfo=dt.UTC)
    high = dt.datetime.max.replace(tzinfo=dt.UTC)
    return parse_when(contact.from_) or low, parse_when(contact.until) or high


def _gaps(shifts: Iterable[tuple[dt.datetime, dt.datetime]], start: dt.datetime,
          end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The parts of ``[start, end]`` that no shift covers."""
    gaps, cursor = [], start
    for a, b in sorted(shifts):
        if b <= cursor:
            continue
        if a > cursor:
            gaps.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        gaps.append((cursor, end))
    return [(a, b) for a, b in gaps if b > a]


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="minutes").replace("+00:00", "Z")


def check_contacts(config: CutoverConfig, role: str) -> CheckResult:
    """Every ``role`` contact is named and reachable, there is at least one, and together they cover the
    maintenance window (``run.maintenance_start``..``maintenance_end``, when both are ISO times)."""
    if role not in ROLES:
        raise ValueError(f"unknown contact role {role!r}: one of {', '.join(ROLES)}")
    line = ROLES[role]
    everyone = list(enumerate(config.people.contacts))
    mine = [(i, c) for i, c in everyone if c.role == role]
    if not mine:
        listed = ", ".join(f"{r} {sum(1 for _, c in everyone if c.role == r)}" for r in ROLES)
        return result(f"people[{role}]", [
            f"no {role} contact in the config (runbook: '{line}'): add [[people.contacts]] name = \"<name>\", "
            f"role = \"{role}\", channel = \"slack:#incident\" (or phone:+..., mail:...) (listed so far: {listed})"],
            f"people.contacts: no {role} entry", {"count": 0})
    problems = [p for i, c in mine for p in _entry_problems(i, c)]
    start, end = parse_when(config.run.maintenance_start), parse_when(config.run.maintenance_end)
    covered = "window not checked (run.maintenance_start/maintenance_end are not both ISO times)"
    if start is not None and end is not None and end > start:
        usable = [_shift(c) for i, c in mine if not _entry_problems(i, c)]
        gaps = _gaps(usable, start, end)
        for a, b in gaps:
            problems.append(f"no {role} contact is on duty from {_iso(a)} to {_iso(b)}, inside the maintenance window "
                            f"{_iso(start)}..{_iso(end)}: extend a shift (from/until) or add a {role} contact")
        covered = f"window {_iso(start)}..{_iso(end)} " + ("covered" if not gaps else f"has {len(gaps)} gap(s)")
    names = [c.name.strip() for _, c in mine]
    shown = ", ".join(f"{c.name.strip() or '?'} ({c.channel.strip() or 'no channel'})" for _, c in mine)
    return result(f"people[{role}]", problems, f"'{line}': {shown}; {covered}",
                  {"count": len(mine), "names": names})


def contacts_on_duty(contacts: Sequence[Contact], start: dt.datetime | None,
                     end: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The contacts whose shift overlaps ``start``..``end`` (every contact when ``start`` is unknown), for the
    report's sign-off block."""
    out = []
    for contact in contacts:
        a, b = _shift(contact)
        if start is not None and (b < start or a > (end or start)):
            continue
        out.append({"name": contact.name.strip(), "role": contact.role, "channel": contact.channel.strip(),
                    "from": contact.from_, "until": contact.until})
    return out
