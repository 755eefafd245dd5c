"""Runbook "Team Communication": attestations only a person can give, recorded in the config with who and when.

``[team.<item>] who = "...", when = "2026-11-25T16:00Z"`` for each of the four runbook items.  A missing
item fails naming it and showing the TOML to add; a ``when`` that is not an ISO date/time fails too, so
"yes" cannot stand in for a time.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from pytest_cutover.checks.base import CheckResult, result

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["TEAM_ITEMS", "check_team_item"]

#: Item key -> the runbook line it attests.
TEAM_ITEMS: dict[str, str] = {
    "stakeholders_notified": "Stakeholders notified of maintenance window",
    "support_standby": "Support team on standby",
    "rollback_plan_documented": "Rollback plan documented",
    "escalation_contacts": "Escalation contacts confirmed",
}


def _parse_when(text: str) -> dt.datetime | None:
    value = text.strip().replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            return dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
        except ValueError:
            return None


def check_team_item(config: CutoverConfig, item: str) -> CheckResult:
    """The attestation for ``item`` exists, names who, and says when (ISO 8601)."""
    line = TEAM_ITEMS.get(item, item)
    att = config.team.get(item)
    if att is None:
        known = ", ".join(sorted(config.team)) or "none"
        return result(f"team[{item}]", [
            f"no attestation for '{line}' (team.{item}): once it is done, add [team.{item}] who = \"<name>\" and "
            f"when = \"<ISO date/time>\" to the config (attested so far: {known})"], f"team.{item}: missing")
    problems = []
    if not att.who.strip():
        problems.append(f"team.{item}.who is empty: name the person who confirms '{line}'")
    if _parse_when(att.when) is None:
        problems.append(f"team.{item}.when = {att.when!r} is not an ISO date/time: write when it was done, e.g. "
                        f"2026-11-25T16:00Z")
    note = f" ({att.note})" if att.note else ""
    return result(f"team[{item}]", problems, f"'{line}': attested by {att.who} at {att.when}{note}",
                  {"who": att.who, "when": att.when})
