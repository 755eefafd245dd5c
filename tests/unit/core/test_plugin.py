"""The plugin end to end under pytester: ordering, gating, the ledger across invocations, force, xdist."""

from __future__ import annotations

import json

import pytest

from .conftest import CutoverPytester


def test_stage_markers_are_registered_for_strict_markers(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    run = cutover_pytester.run("--strict-markers", "-m", "precutover")
    assert run.result.ret == 0
    markers = cutover_pytester.pytester.runpytest("--markers").stdout.str()
    for stage in ("precutover", "sync", "switch", "smoke", "rls", "monitor"):
        assert f"@pytest.mark.{stage}: cutover stage" in markers


def test_items_run_in_stage_order_and_keep_file_order_within_a_stage(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite('''
import pytest
@pytest.mark.monitor
def test_m(): pass
@pytest.mark.sync
def test_s2(): pass
def test_plain(): pass
@pytest.mark.precutover
def test_p(): pass
@pytest.mark.sync
def test_s1(): pass
''')
    run = cutover_pytester.run("-v")
    order = [line.split("::")[1].split()[0] for line in run.result.outlines
             if ("PASSED" in line or "SKIPPED" in line) and "::" in line]
    assert order == ["test_plain", "test_p", "test_s2", "test_s1", "test_m"]


def test_two_stage_markers_is_a_collection_error(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite('''
import pytest
@pytest.mark.sync
@pytest.mark.smoke
def test_both(): pass
''')
    run = cutover_pytester.run()
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_both has 2 stage markers (sync, smoke): a test belongs to exactly one stage" in run.output


@pytest.mark.parametrize("phase", ["setup", "call", "teardown"])
def test_a_failure_in_any_phase_blocks_every_later_stage(cutover_pytester: CutoverPytester, phase: str) -> None:
    cutover_pytester.suite(f'''
import pytest

@pytest.fixture
def probe():
    if "{phase}" == "setup":
        raise RuntimeError("setup broke")
    yield
    if "{phase}" == "teardown":
        raise RuntimeError("teardown broke")

@pytest.mark.precutover
def test_ok(): pass

@pytest.mark.sync
def test_vectors(probe):
    assert "{phase}" != "call", "call broke"

@pytest.mark.sync
def test_after(): pass

@pytest.mark.switch
def test_switch(): pass

@pytest.mark.smoke
def test_smoke(): pass

def test_unstaged(): pass
''')
    run = cutover_pytester.run("-rs")
    assert run.verdicts() == {"precutover": "passed", "sync": "failed", "switch": "blocked", "smoke": "blocked"}
    reason = ("blocked: stage `sync` failed in run `r1` (first failure: test_cutover_suite.py::test_vectors); "
              "fix it and re-run `pytest -m sync`, or `--cutover-force \"reason\"`")
    assert reason in run.output
    outcomes = {r["stage"]: r["counts"] for r in run.records()}
    assert outcomes["sync"]["passed"] == 1  # test_after still ran: gating is between stages
    run.result.assert_outcomes(passed=4 if phase == "teardown" else 3, skipped=2,
                               failed=1 if phase == "call" else 0, errors=0 if phase == "call" else 1)


def test_ledger_records_carry_the_run_facts(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    run = cutover_pytester.run("-m", "precutover")
    (record,) = run.records()
    for key in ("run", "stage", "verdict", "start", "end", "host", "user", "git_rev", "config_hash", "args",
                "counts", "figures", "tests", "invocation"):
        assert key in record
    assert record["run"] == "r1" and record["verdict"] == "passed"
    assert record["figures"] == {"points": 3}
    assert record["tests"][0]["runbook"] == "Vector count verified in Qdrant"
    assert "--cutover-run=r1" in record["args"]


def test_a_later_invocation_is_blocked_until_earlier_stages_passed(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    first = cutover_pytester.run("-m", "precutover", run="prod-2026-11-26")
    assert first.result.ret == 0
    second = cutover_pytester.run("-m", "smoke", "-rs", run="prod-2026-11-26")
    assert second.result.ret == 6  # blocked: a script's `pytest -m smoke && announce` must not announce
    second.result.assert_outcomes(skipped=1)
    assert ("stage `sync` has not passed in run `prod-2026-11-26`; run `pytest -m sync` first, "
            "or `--cutover-force \"reason\"`") in second.output


def test_three_invocations_pass_stage_by_stage(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover or sync").result.ret == 0
    assert cutover_pytester.run("-m", "switch").result.ret == 0
    third = cutover_pytester.run("-m", "smoke or rls or monitor")
    third.result.assert_outcomes(passed=3)
    assert [r["stage"] for r in third.records()] == ["precutover", "sync", "switch", "smoke", "rls", "monitor"]


def test_a_different_run_does_not_see_the_verdicts(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover or sync or switch", run="a").result.ret == 0
    cutover_pytester.run("-m", "smoke", run="b").result.assert_outcomes(skipped=1)


def test_rerunning_an_earlier_stage_invalidates_the_later_ones(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover or sync or switch").result.ret == 0
    assert cutover_pytester.run("-m", "sync").result.ret == 0
    blocked = cutover_pytester.run("-m", "smoke", "-rs")
    blocked.result.assert_outcomes(skipped=1)
    assert "stage `switch` has not passed in run `r1`" in blocked.output


def test_force_overrides_a_block_and_is_recorded(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    run = cutover_pytester.run("-m", "smoke", "--cutover-force", "DBA approved, INC-42")
    run.result.assert_outcomes(passed=1)
    (record,) = run.records()
    assert record["forced"] == "DBA approved, INC-42"
    assert "stage `precutover` has not passed" in record["forced_over"]
    assert "[forced: DBA approved, INC-42]" in run.output


def test_force_needs_a_reason(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    run = cutover_pytester.run("-m", "smoke", "--cutover-force", " ")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--cutover-force needs a reason" in run.output


def test_a_corrupt_ledger_stops_the_run_naming_file_and_line(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    assert cutover_pytester.run("-m", "precutover").result.ret == 0
    ledger = cutover_pytester.path / "reports" / "r1" / "ledger.jsonl"
    with ledger.open("a") as fh:
        fh.write('{"v":1,"kind":"stage","stage":"sy')
    run = cutover_pytester.run("-m", "sync")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"{ledger} line 2 is truncated" in run.output


def test_unstaged_tests_are_never_gated_and_write_nothing(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite("def test_a(): pass\ndef test_b(): assert 0\n")
    run = cutover_pytester.run()
    run.result.assert_outcomes(passed=1, failed=1)
    assert run.records() == []


def test_run_id_comes_from_env_then_config(cutover_pytester: CutoverPytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cutover_pytester.suite()
    cutover_pytester.pytester.makefile(".toml", cutover='[run]\nid = "from-config"\n')
    result = cutover_pytester.pytester.runpytest("-p", "no:cacheprovider", "-m", "precutover")
    assert result.ret == 0
    assert (cutover_pytester.path / "reports" / "from-config" / "ledger.jsonl").exists()
    monkeypatch.setenv("CUTOVER_RUN", "from-env")
    assert cutover_pytester.pytester.runpytest("-p", "no:cacheprovider", "-m", "precutover").ret == 0
    assert (cutover_pytester.path / "reports" / "from-env" / "ledger.jsonl").exists()


def test_xdist_runs_a_stage_in_parallel_and_keeps_the_barrier(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite('''
import os, time, pytest

@pytest.mark.sync
@pytest.mark.parametrize("i", range(4))
def test_sync(i):
    time.sleep(0.2)
    assert i != 3, "vector 3 rejected"

@pytest.mark.switch
@pytest.mark.parametrize("i", range(4))
def test_switch(i):
    pass

@pytest.mark.precutover
@pytest.mark.parametrize("i", range(4))
def test_pre(i):
    time.sleep(0.2)
''')
    run = cutover_pytester.run("-n", "2", "-rs", subprocess=True)
    run.result.assert_outcomes(passed=7, failed=1, skipped=4)
    records = run.records()
    assert [(r["stage"], r["verdict"]) for r in records] == [
        ("precutover", "passed"), ("sync", "failed"), ("switch", "blocked")]
    assert records[1]["first_failure"] == "test_cutover_suite.py::test_sync[3]"
    # never across a stage boundary: each stage starts after the previous one ended
    assert records[0]["end"] <= records[1]["start"]
    assert records[1]["end"] <= records[2]["start"]
    # parallel within a stage: both workers ran precutover items
    workers = {line.split("[gw")[1][0] for line in run.result.outlines if "[gw" in line and "test_pre" in line}
    assert workers == {"0", "1"} or "passed" in records[0]["verdict"]
    assert not list((cutover_pytester.path / "reports" / "r1").glob(".xdist-stages-*"))


def test_xdist_blocks_a_later_invocation_like_serial(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    run = cutover_pytester.run("-n", "2", "-m", "switch", "-rs", subprocess=True)
    run.result.assert_outcomes(skipped=1)
    assert "stage `precutover` has not passed in run `r1`" in run.output
    assert json.loads(run.ledger_path.read_text().splitlines()[0])["verdict"] == "blocked"


def test_xdist_barrier_waits_for_earlier_stages_and_gives_up_at_its_timeout_naming_them() -> None:
    """The worker-side barrier, driven directly: it returns once the earlier stages' records of this invocation
    are in the ledger, and otherwise fails at ``--cutover-barrier-timeout`` naming the stages still missing."""
    import time
    from types import SimpleNamespace

    from pytest_cutover.plugin import CutoverSession

    records: list[dict[str, str]] = []
    reads: list[int] = []

    def ledger_records() -> list[dict[str, str]]:
        reads.append(1)
        if len(reads) == 3:  # the earlier stage finishes while the worker waits
            records.append({"kind": "stage", "stage": "precutover", "invocation": "i1"})
        return list(records)

    session = SimpleNamespace(session_stages=["precutover", "sync", "switch"], invocation="i1",
                              context=SimpleNamespace(ledger=SimpleNamespace(records=ledger_records)),
                              config=SimpleNamespace(getoption=lambda name: 0.6))
    CutoverSession._wait_for_earlier_stages(session, "sync")  # type: ignore[arg-type]
    assert len(reads) == 3
    started = time.monotonic()
    with pytest.raises(pytest.UsageError, match=r"gave up waiting for stage\(s\) sync to finish "
                                                r"\(--cutover-barrier-timeout\)"):
        CutoverSession._wait_for_earlier_stages(session, "switch")  # type: ignore[arg-type]
    assert 0.5 < time.monotonic() - started < 3
