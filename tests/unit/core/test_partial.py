"""Complete-or-nothing: every ordinary way of running only part of a stage leaves it not PASSED, the next stage
blocked, and an exit code a script can trust.

Each test runs pytest for real on a throwaway suite (pytester), the way an operator would type it.
"""

from __future__ import annotations

import pytest

from pytest_cutover.stages import EXIT_BLOCKED, EXIT_PARTIAL

from .conftest import CutoverPytester, CutoverRun

THREE_CHECKS = '''
import pytest

@pytest.mark.precutover
def test_a():
    pass

@pytest.mark.precutover
def test_b():
    pass

@pytest.mark.precutover
def test_c():
    pass

@pytest.mark.sync
def test_sync():
    pass
'''


def _stage(run: CutoverRun, stage: str) -> dict:
    return [r for r in run.records() if r["kind"] == "stage" and r["stage"] == stage][-1]


def _assert_next_stage_blocked(cutover_pytester: CutoverPytester, words: str) -> None:
    blocked = cutover_pytester.run("-m", "sync", "-rs")
    assert blocked.result.ret == EXIT_BLOCKED
    assert "stage `precutover`" in blocked.output and words in blocked.output
    assert _stage(blocked, "sync")["verdict"] == "blocked"


def test_the_whole_stage_passes_and_exits_0(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    run = cutover_pytester.run("-m", "precutover")
    assert run.result.ret == 0
    record = _stage(run, "precutover")
    assert (record["verdict"], record["not_run"]) == ("passed", [])
    assert cutover_pytester.run("-m", "sync").result.ret == 0


@pytest.mark.parametrize("selection", [
    ["-k", "test_a"],
    ["--deselect", "test_cutover_suite.py::test_b"],
    ["-m", "precutover and not slow"],
])
def test_a_selection_inside_a_stage_is_partial(cutover_pytester: CutoverPytester, selection: list[str]) -> None:
    cutover_pytester.suite(THREE_CHECKS.replace("@pytest.mark.precutover\ndef test_b",
                                                "@pytest.mark.precutover\n@pytest.mark.slow\ndef test_b"))
    args = selection if selection[0] == "-m" else ["-m", "precutover", *selection]
    run = cutover_pytester.run(*args)
    assert run.result.ret == EXIT_PARTIAL, run.output
    record = _stage(run, "precutover")
    assert record["verdict"] == "partial"
    assert "test_cutover_suite.py::test_b" in {n["id"] for n in record["not_run"]}
    assert "did not run (deselected by" in record["reason"]
    assert "PARTIAL" in run.output and "exit status 7" in run.output
    _assert_next_stage_blocked(cutover_pytester, "ran only in part")


def test_explicit_node_ids_are_a_narrowed_collection(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    run = cutover_pytester.run("test_cutover_suite.py::test_a", "test_cutover_suite.py::test_b",
                               "test_cutover_suite.py::test_c")
    assert run.result.ret == EXIT_PARTIAL
    assert "collection narrowed to test_cutover_suite.py::test_a" in _stage(run, "precutover")["reason"]
    _assert_next_stage_blocked(cutover_pytester, "ran only in part")


def test_the_whole_directory_given_explicitly_is_not_narrowed(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    run = cutover_pytester.run(str(cutover_pytester.path), "-m", "precutover")
    assert run.result.ret == 0 and _stage(run, "precutover")["verdict"] == "passed"


def test_last_failed_only_is_partial(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS.replace("def test_b():\n    pass", "def test_b():\n    assert 0, 'b'"))
    first = cutover_pytester.pytester.runpytest("-p", "no:benchmark", "--cutover-run=r1", "-m", "precutover")
    assert first.ret == 1
    cutover_pytester.suite(THREE_CHECKS)  # fixed
    run = cutover_pytester.pytester.runpytest("-p", "no:benchmark", "--cutover-run=r1", "-m", "precutover", "--lf")
    assert run.ret == EXIT_PARTIAL
    records = [r for r in CutoverRun(run, cutover_pytester.pytester, "r1").records() if r["kind"] == "stage"]
    assert records[-1]["verdict"] == "partial" and "--lf" in records[-1]["reason"]
    _assert_next_stage_blocked(cutover_pytester, "ran only in part")


def test_stop_at_first_failure_fails_the_stage(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS.replace("def test_b():\n    pass", "def test_b():\n    assert 0, 'b'"))
    run = cutover_pytester.run("-m", "precutover", "-x")
    assert run.result.ret == 1
    assert _stage(run, "precutover")["verdict"] == "failed"
    _assert_next_stage_blocked(cutover_pytester, "failed")


def test_a_stop_before_the_stage_records_nothing_and_unblocks_nothing(cutover_pytester: CutoverPytester) -> None:
    # unstaged tests run before the stages: --maxfail=1 stops the run before precutover begins
    cutover_pytester.suite("def test_unstaged():\n    assert 0\n" + THREE_CHECKS)
    run = cutover_pytester.run("--maxfail=1", "-m", "precutover or not sync")
    assert run.result.ret == 1
    assert [r for r in run.records() if r["kind"] == "stage"] == []
    blocked = cutover_pytester.run("-m", "sync", "-rs")
    assert blocked.result.ret == EXIT_BLOCKED and "stage `precutover` has not passed" in blocked.output


def test_a_collection_error_makes_every_stage_partial(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    cutover_pytester.pytester.makepyfile(test_broken="import pytest\n\n@pytest.mark.precutover\ndef test_x(:\n")
    run = cutover_pytester.run("-m", "precutover", "--continue-on-collection-errors")
    assert run.result.ret != 0
    record = _stage(run, "precutover")
    assert record["verdict"] == "partial" and "collection error" in record["reason"]
    assert "test_broken.py" in record["reason"]
    (cutover_pytester.path / "test_broken.py").unlink()
    _assert_next_stage_blocked(cutover_pytester, "ran only in part")


# Ctrl-C for real: the test process sends itself SIGINT inside test_b's setup (a fixture) or its call.
SIGINT_SUITE = '''
import os, signal, time, pytest

@pytest.fixture
def stop_here():
    {setup}

@pytest.mark.precutover
def test_a():
    pass

@pytest.mark.precutover
def test_b(stop_here):
    {call}

@pytest.mark.precutover
def test_c():
    pass

@pytest.mark.sync
def test_sync():
    pass
'''
_KILL = "os.kill(os.getpid(), signal.SIGINT); time.sleep(5)"
SIGINT_IN = {
    "setup": SIGINT_SUITE.format(setup=_KILL, call="pass"),
    "call": SIGINT_SUITE.format(setup="pass", call=_KILL),
}


@pytest.mark.parametrize("phase", sorted(SIGINT_IN))
def test_ctrl_c_during_a_stage_is_interrupted(cutover_pytester: CutoverPytester, phase: str) -> None:
    cutover_pytester.suite(SIGINT_IN[phase])
    run = cutover_pytester.run("-m", "precutover", subprocess=True)
    assert run.result.ret == 2
    record = _stage(run, "precutover")
    assert record["verdict"] == "interrupted"
    assert {"test_cutover_suite.py::test_b", "test_cutover_suite.py::test_c"} <= {n["id"] for n in record["not_run"]}
    _assert_next_stage_blocked(cutover_pytester, "was interrupted")


@pytest.mark.xdist_group("xdist-inner")
def test_a_killed_xdist_worker_never_passes_the_stage(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite('''
import os, pytest

@pytest.mark.precutover
@pytest.mark.parametrize("i", range(4))
def test_a(i):
    pass

@pytest.mark.precutover
def test_killed():
    os._exit(3)

@pytest.mark.sync
def test_sync():
    pass
''')
    run = cutover_pytester.run("-m", "precutover", "-n", "2", "--max-worker-restart=0", subprocess=True)
    assert run.result.ret != 0
    record = _stage(run, "precutover")
    assert record["verdict"] == "failed" and record["first_failure"] == "test_cutover_suite.py::test_killed"
    _assert_next_stage_blocked(cutover_pytester, "stage `precutover`")


def test_a_single_test_for_diagnosis_runs_but_never_counts(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    assert cutover_pytester.run("-m", "precutover").result.ret == 0
    assert cutover_pytester.run("-m", "sync").result.ret == 0
    diagnosis = cutover_pytester.run("-m", "precutover", "-k", "test_b")
    diagnosis.result.assert_outcomes(passed=1, deselected=3)
    assert _stage(diagnosis, "precutover")["verdict"] == "partial"
    # the earlier complete verdict no longer stands alone: the stage must be run whole again
    _assert_next_stage_blocked(cutover_pytester, "ran only in part")


FAILING_CHECK = '''
import pytest

class Found:
    ok = False
    message = "table public.secrets has RLS disabled: run ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY"

@pytest.fixture
def noisy():
    return {"a" * 10: list(range(50))}

@pytest.mark.precutover
def test_rls(noisy):
    found = Found()
    assert found.ok, found.message
'''


def test_findings_come_first_in_a_few_lines(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(FAILING_CHECK)
    run = cutover_pytester.run("-m", "precutover")
    out = run.result.stdout.str()
    findings = out[out.index("cutover findings"):out.index("cutover stages")]
    assert "precutover FAILED test_cutover_suite.py::test_rls" in findings
    assert "table public.secrets has RLS disabled: run ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY" \
        in findings
    assert len(findings.strip().splitlines()) <= 5
    assert "def test_rls" not in out  # no traceback source by default
    assert "(full tracebacks: -v or --tb=long)" in out


@pytest.mark.parametrize("flag", ["-v", "--tb=long"])
def test_the_full_traceback_is_one_flag_away(cutover_pytester: CutoverPytester, flag: str) -> None:
    cutover_pytester.suite(FAILING_CHECK)
    out = cutover_pytester.run("-m", "precutover", flag).result.stdout.str()
    assert "def test_rls" in out and "cutover findings" in out


def test_a_stage_header_stands_on_its_own_line(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    lines = cutover_pytester.run("-m", "precutover or sync", "-q").result.stdout.lines
    headers = [line for line in lines if "stage 1/6 precutover" in line or "stage 2/6 sync" in line]
    assert len(headers) == 2
    assert all(line.startswith("-") for line in headers)


@pytest.mark.xdist_group("xdist-inner")
def test_under_xdist_the_controller_knows_the_whole_stage(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(THREE_CHECKS)
    run = cutover_pytester.run("-m", "precutover", "-k", "test_a or test_b", "-n", "2", subprocess=True)
    assert run.result.ret == EXIT_PARTIAL, run.output
    assert _stage(run, "precutover")["not_run"] == [{"id": "test_cutover_suite.py::test_c",
                                                    "why": "deselected by -k 'test_a or test_b', -m 'precutover'"}]
    whole = cutover_pytester.run("-m", "precutover", "-n", "2", subprocess=True)
    assert whole.result.ret == 0 and _stage(whole, "precutover")["verdict"] == "passed"
