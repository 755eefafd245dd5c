"""``cutover report --ack NAME`` and ``cutover report sign --ack NAME``: ledger records and the sign-off block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.config import load_config
from pytest_cutover.report.sign import keygen, verify_report

from ..report import factory

CONFIG = """[run]
id = "night"
lead = "Ada Lovelace"

[[people.contacts]]
name = "Sam Patel (CTO)"
role = "escalation"
channel = "phone:+49 30 5550100"

[[people.contacts]]
name = "Lee Wong"
role = "on-call"
channel = "slack:#incidents"
from = "2027-01-15T06:00:00Z"
until = "2027-01-15T14:00:00Z"

[[people.contacts]]
name = "Kai Berg"
role = "on-call"
channel = "slack:#incidents"
from = "2027-01-16T06:00:00Z"
"""


@pytest.fixture
def run(tmp_path: Path) -> dict[str, Any]:
    """A run whose six stages passed (2027-01-15 08:00-09:05Z), and its config with a roster."""
    cfg = tmp_path / "cutover.toml"
    cfg.write_text(CONFIG)
    ctx = factory.context(tmp_path, load_config(cfg))
    factory.all_passed(ctx)
    base = ["--config", str(cfg), "--run", "night", "--reports-dir", str(tmp_path / "reports")]
    return {"ctx": ctx, "base": base, "cfg": cfg}


def _cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), standalone_mode=False, catch_exceptions=False)


def test_ack_is_a_ledger_record_and_the_sign_off_block(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    result = _cli("report", *run["base"], "--no-allure", "--ack", "Dana Smith", "--ack", " Lee Wong ")
    assert result.return_value == 0, result.output
    acks = [r for r in ctx.ledger.records() if r["kind"] == "ack"]
    assert [a["who"] for a in acks] == ["Dana Smith", "Lee Wong"]
    assert all(a["at"].endswith("Z") and a["run"] == "night" and a["user"] for a in acks)
    report = json.loads((ctx.run_dir / "report.json").read_text())
    assert report["sign_off"] == {
        "lead": "Ada Lovelace",
        # Kai's shift starts the day after the cutover window: not on duty.
        "contacts_on_duty": [
            {"name": "Sam Patel (CTO)", "role": "escalation", "channel": "phone:+49 30 5550100", "from": None,
             "until": None},
            {"name": "Lee Wong", "role": "on-call", "channel": "slack:#incidents", "from": "2027-01-15T06:00:00Z",
             "until": "2027-01-15T14:00:00Z"}],
        "acks": [{"who": "Dana Smith", "at": acks[0]["at"]}, {"who": "Lee Wong", "at": acks[1]["at"]}],
    }
    assert report["acks"] == [{"name": "Dana Smith", "at": acks[0]["at"]}, {"name": "Lee Wong", "at": acks[1]["at"]}]
    html = (ctx.run_dir / "report.html").read_text()
    assert "On duty</div>" in html and "Sam Patel (CTO)" in html and "Kai Berg" not in html
    assert "Dana Smith" in html and acks[1]["at"] in html
    if factory.CHECK_REPORT.exists():
        checked = factory.check_report(ctx.run_dir / "report.json")
        assert checked.returncode == 0, checked.stdout


def test_without_acks_the_block_says_nobody_yet(run: dict[str, Any]) -> None:
    assert _cli("report", *run["base"], "--no-allure").return_value == 0
    report = json.loads((run["ctx"].run_dir / "report.json").read_text())
    assert report["sign_off"]["acks"] == [] and report["sign_off"]["lead"] == "Ada Lovelace"
    assert "nobody yet: <code>cutover report --ack NAME</code>" in (run["ctx"].run_dir / "report.html").read_text()


def test_sign_with_ack_rebuilds_then_signs_so_the_signature_covers_it(run: dict[str, Any], tmp_path: Path) -> None:
    ctx = run["ctx"]
    assert _cli("report", *run["base"], "--no-allure", "--ack", "Dana Smith").return_value == 0
    key, pub, _ = keygen(tmp_path / "keys" / "lead.key")
    result = _cli("report", "sign", *run["base"], "--key", str(key), "--ack", "Sam Patel")
    assert result.return_value == 0, result.output
    assert "acknowledged by Sam Patel; report rebuilt" in result.output
    path = ctx.run_dir / "report.json"
    report = json.loads(path.read_text())
    assert [a["who"] for a in report["sign_off"]["acks"]] == ["Dana Smith", "Sam Patel"]
    verified = verify_report(path, pubkey=pub)
    assert verified.ok, verified.problems


def test_sign_with_ack_on_a_report_without_its_ledger_is_refused(run: dict[str, Any], tmp_path: Path) -> None:
    assert _cli("report", *run["base"], "--no-allure").return_value == 0
    loose = tmp_path / "copy" / "report.json"
    loose.parent.mkdir()
    loose.write_text((run["ctx"].run_dir / "report.json").read_text())
    key, _, _ = keygen(tmp_path / "keys" / "lead.key")
    with pytest.raises(click.UsageError, match=r"no ledger\.jsonl beside"):
        _cli("report", "sign", "--key", str(key), "--ack", "Sam", str(loose))


@pytest.mark.parametrize("args", [("--ack", "  "), ("--ack", "Dana", "sign")])
def test_ack_usage_errors(run: dict[str, Any], args: tuple[str, ...]) -> None:
    with pytest.raises(click.UsageError):
        _cli("report", *run["base"], "--no-allure", *args)
    assert not [r for r in run["ctx"].ledger.records() if r["kind"] == "ack"]
