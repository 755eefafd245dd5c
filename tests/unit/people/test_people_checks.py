"""Contacts, on-call roster and support standby: pure checks on synthetic configs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from pytest_cutover.checks import people
from pytest_cutover.config import parse_config
from pytest_cutover.errors import ConfigError


def _cfg(*contacts: dict[str, Any], **run: str) -> Any:
    return parse_config({"run": {"lead": "Ada", **run}, "people": {"contacts": list(contacts)}}, env={})


def test_public_names() -> None:
    assert all(hasattr(people, name) for name in people.__all__)
    assert sorted(people.__all__) == sorted(n for n in vars(people) if not n.startswith(("_", "@")) and n not in (
        "annotations", "dt", "re", "Iterable", "Sequence", "dataclass", "TYPE_CHECKING", "Any", "urlsplit",
        "CheckResult", "result"))


@pytest.mark.parametrize(("text", "kind", "address"), [
    ("slack:#incident", "slack", "#incident"),
    ("Slack: @dana.smith", "slack", "@dana.smith"),
    ("phone:+49 30 1234567", "phone", "+49 30 1234567"),
    ("tel:+1 (415) 555-0100", "phone", "+1 (415) 555-0100"),
    ("sms:+447700900123", "sms", "+447700900123"),
    ("mail:dana@example.com", "mail", "dana@example.com"),
    ("email:ops-oncall@corp.example.org", "mail", "ops-oncall@corp.example.org"),
    ("pagerduty:backend-primary", "pagerduty", "backend-primary"),
    ("https://meet.example.com/incident", "https", "//meet.example.com/incident"),
])
def test_channels_that_parse(text: str, kind: str, address: str) -> None:
    channel = people.parse_channel(text)
    assert (channel.kind, channel.address) == (kind, address)


@pytest.mark.parametrize(("text", "why"), [
    ("", "write it as kind:address (https, mail, opsgenie, pagerduty, phone, slack, sms)"),
    ("#incident", "write it as kind:address (https, mail, opsgenie, pagerduty, phone, slack, sms)"),
    ("slack:", "no address after slack: (a channel or member: slack:#incident, slack:@dana)"),
    ("slack:#inc ident", "'#inc ident' is not a channel or member: slack:#incident, slack:@dana"),
    ("phone:030 1234567", "'030 1234567' is not an international number: phone:+49 30 1234567"),
    ("phone:+12", "'+12' is not an international number: phone:+49 30 1234567"),
    ("mail:dana", "'dana' is not an address: mail:dana@example.com"),
    ("fax:+4930123456", "unknown kind 'fax': use one of https, mail, opsgenie, pagerduty, phone, slack, sms"),
    ("http://meet.example.com/x", "use an https:// URL"),
])
def test_channels_that_do_not_parse(text: str, why: str) -> None:
    with pytest.raises(ValueError) as error:
        people.parse_channel(text)
    assert str(error.value) == why


def test_a_role_with_nobody_fails_naming_the_role_and_the_toml_to_add() -> None:
    cfg = _cfg({"name": "Sam Patel", "role": "escalation", "channel": "phone:+49 30 5550100"})
    check = people.check_contacts(cfg, "support")
    assert not check.ok
    assert check.problems == (
        "no support contact in the config (runbook: 'Support team on standby'): add [[people.contacts]] "
        "name = \"<name>\", role = \"support\", channel = \"slack:#incident\" (or phone:+..., mail:...) "
        "(listed so far: escalation 1, on-call 0, support 0)",)
    assert check.figures == {"count": 0}


def test_no_people_section_fails_every_role() -> None:
    cfg = parse_config({}, env={})
    assert [people.check_contacts(cfg, role).ok for role in people.ROLES] == [False, False, False]


def test_every_incomplete_entry_is_listed_exactly() -> None:
    cfg = _cfg(
        {"name": "Lee Wong", "role": "on-call", "channel": "slack:#incidents"},
        {"role": "on-call", "channel": "phone:+49 151 1234567"},
        {"name": "TBD", "role": "on-call", "channel": "slack:#incidents"},
        {"name": "Kim", "role": "on-call"},
        {"name": "Ola", "role": "on-call", "channel": "phone:12345"},
        {"name": "Max", "role": "on-call", "channel": "mail:max@example.com", "from": "tonight"},
        {"name": "Sam", "role": "escalation", "channel": "nonsense"},  # another role: not this check's business
    )
    check = people.check_contacts(cfg, "on-call")
    assert not check.ok
    assert check.problems == (
        "people.contacts[1] (on-call): no name: write who it is (a person, or a team with its lead)",
        "people.contacts[2] TBD (on-call): name 'TBD' is a placeholder: write who it is (a person, or a team with "
        "its lead)",
        "people.contacts[3] Kim (on-call): no channel: add channel = \"slack:#incident\" (or phone:+..., mail:...) "
        "so they can be reached during the window",
        "people.contacts[4] Ola (on-call): channel 'phone:12345' does not parse: '12345' is not an international "
        "number: phone:+49 30 1234567",
        "people.contacts[5] Max (on-call): from = 'tonight' is not an ISO date/time (e.g. 2026-11-26T06:00Z)",
    )
    assert check.figures["count"] == 6


def test_a_complete_roster_passes_with_names_as_figures() -> None:
    cfg = _cfg({"name": "Sam Patel (CTO)", "role": "escalation", "channel": "phone:+49 30 5550100"},
               {"name": "Ana Ruiz", "role": "escalation", "channel": "mail:ana@example.com"})
    check = people.check_contacts(cfg, "escalation")
    assert check.ok, check.message
    assert check.figures == {"count": 2, "names": ["Sam Patel (CTO)", "Ana Ruiz"]}
    assert check.evidence.startswith("'Escalation contacts confirmed': Sam Patel (CTO) (phone:+49 30 5550100), "
                                     "Ana Ruiz (mail:ana@example.com); window not checked")


def test_on_call_shifts_must_cover_the_maintenance_window() -> None:
    window = {"maintenance_start": "2026-11-26T08:00:00Z", "maintenance_end": "2026-11-26T14:00:00Z"}
    early = {"name": "Lee", "role": "on-call", "channel": "slack:#incidents", "from": "2026-11-26T06:00Z",
             "until": "2026-11-26T10:00Z"}
    late = {"name": "Kai", "role": "on-call", "channel": "slack:#incidents", "from": "2026-11-26T11:00Z",
            "until": "2026-11-26T13:30Z"}
    check = people.check_contacts(_cfg(early, late, **window), "on-call")
    assert check.problems == (
        "no on-call contact is on duty from 2026-11-26T10:00Z to 2026-11-26T11:00Z, inside the maintenance window "
        "2026-11-26T08:00Z..2026-11-26T14:00Z: extend a shift (from/until) or add a on-call contact",
        "no on-call contact is on duty from 2026-11-26T13:30Z to 2026-11-26T14:00Z, inside the maintenance window "
        "2026-11-26T08:00Z..2026-11-26T14:00Z: extend a shift (from/until) or add a on-call contact")
    whole = {"name": "Mo", "role": "on-call", "channel": "phone:+49 151 1234567"}  # no shift: the whole cutover
    assert people.check_contacts(_cfg(early, late, whole, **window), "on-call").ok
    until_end = {**late, "until": "2026-11-26T15:00+01:00"}  # 14:00Z: time zones are compared in UTC
    assert people.check_contacts(_cfg({**early, "until": "2026-11-26T11:00Z"}, until_end, **window), "on-call").ok


def test_an_unknown_role_is_a_config_error_listing_the_roles() -> None:
    with pytest.raises(ConfigError) as error:
        _cfg({"name": "Lee", "role": "oncall", "channel": "slack:#x"})
    assert str(error.value) == ("config: people.contacts.0.role: input should be 'escalation', 'on-call' or "
                                "'support' (got str)")


def test_contacts_on_duty_are_those_whose_shift_overlaps_the_window() -> None:
    cfg = _cfg({"name": "Lee", "role": "on-call", "channel": "slack:#i", "from": "2026-11-26T06:00Z",
                "until": "2026-11-26T10:00Z"},
               {"name": "Kai", "role": "on-call", "channel": "slack:#i", "from": "2026-11-27T06:00Z"},
               {"name": "Sam", "role": "escalation", "channel": "phone:+49 30 5550100"})
    start = dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC)
    on_duty = people.contacts_on_duty(cfg.people.contacts, start, start + dt.timedelta(hours=3))
    assert [c["name"] for c in on_duty] == ["Lee", "Sam"]
    assert on_duty[1] == {"name": "Sam", "role": "escalation", "channel": "phone:+49 30 5550100", "from": None,
                          "until": None}
    assert [c["name"] for c in people.contacts_on_duty(cfg.people.contacts, None)] == ["Lee", "Kai", "Sam"]
