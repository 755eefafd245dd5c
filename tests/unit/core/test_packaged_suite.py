"""The acceptance suite ships with the package: a directory holding only a cutover.toml runs it, the user's own
staged tests join the same gate, and `cutover init` starts such a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cutover.cli import main
from pytest_cutover.init import EXAMPLE_CONFIG
from pytest_cutover.suite import SUITE_NODE_PREFIX, suite_modules

from .conftest import CutoverPytester

MINIMAL = '[run]\nid = "night"\n'


def _collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line]


def test_a_directory_with_only_a_config_collects_the_packaged_suite(cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(MINIMAL)
    result = cutover_pytester.pytester.runpytest("--cutover-suite=packaged", "--co", "-q", "-m", "precutover")
    ids = _collected(result)
    assert ids and all(i.startswith(f"{SUITE_NODE_PREFIX}/test_precutover.py::") for i in ids)
    assert f"{SUITE_NODE_PREFIX}/test_precutover.py::test_syntax_verified_with_py_compile" in ids


def test_every_stage_module_is_packaged() -> None:
    names = {p.name for p in suite_modules()}
    assert {f"test_{stage}.py" for stage in ("precutover", "sync", "switch", "smoke", "rls", "monitor")} <= names


def test_no_config_no_packaged_suite(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite()
    result = cutover_pytester.pytester.runpytest("--cutover-suite=packaged", "--co", "-q")
    assert not [i for i in _collected(result) if i.startswith(SUITE_NODE_PREFIX)]


def test_the_packaged_suite_ignores_the_users_python_files_pattern(cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(MINIMAL)
    result = cutover_pytester.pytester.runpytest("--cutover-suite=packaged", "--co", "-q", "-m", "sync",
                                                 "-o", "python_files=check_*.py")
    assert any(i.startswith(f"{SUITE_NODE_PREFIX}/test_sync.py::") for i in _collected(result))


def test_the_users_staged_tests_join_the_same_gate(cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(MINIMAL)
    cutover_pytester.pytester.makepyfile(test_ours='''
import pytest

@pytest.mark.precutover
def test_our_own_check():
    assert 0, "our dashboard is not ready: ask the SRE team"
''')
    run = cutover_pytester.run("--cutover-suite=packaged", "-m", "precutover", run="night")
    record = [r for r in run.records() if r["kind"] == "stage"][-1]
    ids = {t["id"] for t in record["tests"]}
    assert "test_ours.py::test_our_own_check" in ids
    assert any(i.startswith(SUITE_NODE_PREFIX) for i in ids)
    assert record["verdict"] == "failed" and record["first_failure"] == "test_ours.py::test_our_own_check"
    assert "our dashboard is not ready: ask the SRE team" in run.output


def test_deselecting_one_packaged_test_makes_the_stage_partial(cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(MINIMAL)
    # sync with a config that names nothing: every check skips (absent keys), which alone would pass the stage
    node = f"{SUITE_NODE_PREFIX}/test_sync.py::test_maintenance_mode_enabled"
    whole = cutover_pytester.run("--cutover-suite=packaged", "-m", "sync", "--cutover-force", "test", run="night")
    assert [r for r in whole.records() if r["kind"] == "stage"][-1]["verdict"] == "passed"
    run = cutover_pytester.run("--cutover-suite=packaged", "-m", "sync", "--cutover-force", "test",
                               "--deselect", node, run="night")
    record = [r for r in run.records() if r["kind"] == "stage"][-1]
    assert record["verdict"] == "partial"
    assert record["not_run"] == [{"id": node, "why": f"deselected by -m 'sync', --deselect {node}"}]


def test_cutover_suite_none_turns_it_off(cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(MINIMAL)
    result = cutover_pytester.pytester.runpytest("--cutover-suite=none", "--co", "-q")
    assert not [i for i in _collected(result) if i.startswith(SUITE_NODE_PREFIX)]
    bad = cutover_pytester.pytester.runpytest("--cutover-suite=some")
    assert bad.ret == 4 and "--cutover-suite" in bad.stderr.str()


def test_init_writes_the_commented_example_and_refuses_to_overwrite(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", str(tmp_path)]) == 0
    written = (tmp_path / "cutover.toml").read_text()
    assert written.startswith("# A production cutover.toml")
    assert written.count("\n") == EXAMPLE_CONFIG.read_text().count("\n")
    assert "reports/" in (tmp_path / ".gitignore").read_text()
    (tmp_path / "cutover.toml").write_text("# mine, filled in\n")
    assert main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "cutover.toml").read_text() == "# mine, filled in\n"
