"""keygen / sign / verify: a signed report verifies, and any one-byte change fails naming the file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from pytest_cutover.cli import cli
from pytest_cutover.report.sign import canonical, keygen, sign_report, verify_report
from pytest_cutover.report.writer import write_report, write_report_files

from . import factory


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, standalone_mode=False, catch_exceptions=False)
    return result.return_value, result.output


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    """A complete run (ledger, monitor series, junit, report) signed with a fresh key."""
    ctx = factory.context(tmp_path, factory.config())
    factory.all_passed(ctx)
    (ctx.run_dir / "monitor.jsonl").write_text(
        "".join(json.dumps({"kind": "sample", "window": 1, "elapsed_s": i * 10.0, "probes": [
            {"name": "search", "kind": "search", "ok": True, "latency_ms": 20.0 + i}], "rss_bytes": 10_000_000 + i})
            + "\n" for i in range(5)))
    junit = tmp_path / "junit.xml"
    junit.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1"/></testsuites>')
    path = write_report_files(ctx, junit=junit, invocation="inv1", generate_allure=False).path
    key, pub, _ = keygen(tmp_path / "keys" / "lead.key")
    sign_report(path, key)
    return path, pub


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    code, out = _run(["keygen", "--out", str(tmp_path / "k" / "lead.key")])
    assert code == 0
    key = tmp_path / "k" / "lead.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "k" / "lead.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "fingerprint: SHA256:" in out and "PRIVATE" not in out
    from pytest_cutover.errors import CutoverError

    with pytest.raises(CutoverError, match="already exists"):
        keygen(key)


def test_sign_and_verify_round_trip(signed: tuple[Path, Path]) -> None:
    path, pub = signed
    report = json.loads(path.read_text())
    result = verify_report(path, pubkey=pub)
    assert result.ok, result.problems
    assert report["signature"]["public_key_fingerprint"] == result.fingerprint
    assert set(report["artifacts"]) == {"ledger.jsonl", "monitor.jsonl", "report.html", "junit/inv1.xml"}
    page = (path.parent / "report.html").read_text()
    box = page[page.index('<div class="sig"'):]
    box = box[:box.index("</div>")]
    assert "<b>Signature</b> (Ed25519) by key" in box
    assert "unchanged since signing; it is not an approval" in box  # what a signature proves, and what it does not
    code, out = _run(["report", "verify", str(path), "--pubkey", str(pub)])
    assert code == 0 and out.startswith("OK:")


def _flip_one_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    index = len(data) // 2 if at is None else at
    data[index] = ord("X") if data[index] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["ledger.jsonl", "monitor.jsonl", "report.html", "junit/inv1.xml"])
def test_one_byte_change_in_any_artifact_fails_naming_it(signed: tuple[Path, Path], name: str) -> None:
    path, pub = signed
    _flip_one_byte(path.parent / name)
    result = verify_report(path, pubkey=pub)
    assert not result.ok
    assert len(result.problems) == 1 and result.problems[0].startswith(f"{name}: changed (sha256 ")
    code, _ = _run(["report", "verify", str(path)])
    assert code == 1


def test_one_byte_change_in_report_json_fails_naming_what_changed(signed: tuple[Path, Path]) -> None:
    path, pub = signed
    text = path.read_text()
    path.write_text(text.replace('"status": "SUCCESS"', '"status": "SUCCESX"'))
    result = verify_report(path, pubkey=pub)
    assert not result.ok
    assert result.problems[0] == "report.json: signature does not match its content; changed: status"


def test_whitespace_change_in_report_json_still_fails(signed: tuple[Path, Path]) -> None:
    path, pub = signed
    path.write_text(path.read_text() + " ")
    result = verify_report(path, pubkey=pub)
    assert result.problems == ["report.json: bytes changed since signing "
                               "(formatting only: the signed content still matches)"]


def test_changed_test_outcome_names_the_stage(signed: tuple[Path, Path]) -> None:
    path, _ = signed
    report = json.loads(path.read_text())
    report["stages"][2]["tests"][0]["outcome"] = "failed"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    assert verify_report(path).problems[0].endswith("changed: stages.switch")


def test_wrong_key_missing_signature_and_missing_artifact(signed: tuple[Path, Path], tmp_path: Path) -> None:
    path, _ = signed
    _, other_pub, _ = keygen(tmp_path / "other.key")
    assert "not by the trusted key" in verify_report(path, pubkey=other_pub).problems[0]
    (path.parent / "monitor.jsonl").unlink()
    digest = json.loads(path.read_text())["artifacts"]["monitor.jsonl"]
    assert verify_report(path).problems == [f"monitor.jsonl: missing (report lists sha256 {digest[:16]}…)"]
    path.with_name("report.json.sig").unlink()
    assert verify_report(path).problems == ["report.json.sig: missing: the report is not signed"]


def test_signature_covers_canonical_json(signed: tuple[Path, Path]) -> None:
    path, _ = signed
    sig = json.loads(path.with_name("report.json.sig").read_text())
    from base64 import b64decode

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(b64decode(sig["public_key"])).verify(
        b64decode(sig["signature"]), canonical(json.loads(path.read_text())))


def test_unchanged_rebuild_keeps_the_signature_and_a_changed_one_removes_it(signed: tuple[Path, Path]) -> None:
    path, pub = signed
    ctx = factory.context(path.parent.parent.parent, factory.config())
    result = write_report_files(ctx, generate_allure=False)
    assert not result.changed and "report unchanged" in result.messages
    assert verify_report(path, pubkey=pub).ok
    ctx.ledger.append({"kind": "note", "text": "late note"})
    result = write_report_files(ctx, generate_allure=False)
    assert result.changed
    assert any("report.json.sig removed" in m for m in result.messages)
    assert not path.with_name("report.json.sig").exists()


def test_refuses_to_sign_when_artifacts_changed_after_the_build(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.all_passed(ctx)
    path = write_report(ctx, generate_allure=False)
    ctx.ledger.append({"kind": "note", "text": "appended after the build"})
    key, _, _ = keygen(tmp_path / "lead.key")
    from pytest_cutover.errors import CutoverError

    with pytest.raises(CutoverError, match=r"ledger.jsonl: changed .* bytes now, \d+ when the report was built"):
        sign_report(path, key)


def test_cli_report_rebuild_sign_and_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    ctx = factory.context(tmp_path, None, run="cli-run")
    factory.all_passed(ctx)
    code, out = _run(["report", "--run", "cli-run", "--notes", "all good", "--no-allure"])
    assert code == 0, out
    assert out.startswith("SUCCESS: every stage passed")
    report = json.loads((ctx.run_dir / "report.json").read_text())
    assert report["notes"] == "all good"
    code, out = _run(["keygen", "--out", "k/lead.key"])
    code, out = _run(["report", "sign", "--run", "cli-run", "--key", "k/lead.key", "--signer", "Ada"])
    assert code == 0 and "signed" in out
    code, out = _run(["report", "verify", str(ctx.run_dir)])
    assert code == 0, out
    factory.stage(ctx, "sync", "failed", offset=9000)
    code, out = _run(["report", "--run", "cli-run", "--no-allure"])
    assert code == 1 and out.startswith("INCOMPLETE:") and "report.json.sig removed" in out


def test_junit_inside_the_run_folder_is_listed_in_place(tmp_path: Path) -> None:
    ctx = factory.context(tmp_path, factory.config())
    factory.all_passed(ctx)
    junit = ctx.run_dir / "junit.xml"
    junit.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1"/></testsuites>')
    report = write_report_files(ctx, junit=junit, invocation="inv9", generate_allure=False).report
    assert "junit.xml" in report["artifacts"] and not (ctx.run_dir / "junit").exists()


def test_a_deleted_page_is_rendered_again_byte_for_byte(signed: tuple[Path, Path]) -> None:
    path, pub = signed
    page = path.parent / "report.html"
    page.unlink()
    ctx = factory.context(path.parent.parent.parent, factory.config())
    result = write_report_files(ctx, generate_allure=False)
    assert not result.changed and "report.html was missing: rendered again from report.json" in result.messages
    assert verify_report(path, pubkey=pub).ok


def test_cli_says_what_is_wrong_with_a_corrupt_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_cutover.cli import main

    monkeypatch.chdir(tmp_path)
    ctx = factory.context(tmp_path, None, run="bad")
    factory.stage(ctx, "precutover")
    with open(ctx.ledger.path, "a") as fh:
        fh.write('{"kind": "stage", "v": 1, "stage": "precutover", "verdict"\n')
    assert main(["report", "--run", "bad", "--no-allure"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ledger.jsonl line 2 is not valid JSON" in err
