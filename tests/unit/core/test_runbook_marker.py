"""The `runbook` marker carries each staged test's runbook line into the ledger (and so the report's checklist);
parametrised cases keep their own lines, and every test of the packaged suite declares one."""

from __future__ import annotations

import pytest

from pytest_cutover.fixtures import RUNBOOK_MARKER
from pytest_cutover.stages import STAGES

from .conftest import CutoverPytester

PARAMETRISED = '''
import pytest

@pytest.mark.precutover
@pytest.mark.parametrize("name", [
    pytest.param("a", id="a", marks=pytest.mark.runbook("Error rate > 5%")),
    pytest.param("b", id="b", marks=pytest.mark.runbook("RLS data leakage detected")),
])
def test_trigger(name):
    """Not the runbook line: the marker wins."""

@pytest.mark.precutover
@pytest.mark.runbook("Database backups taken")
def test_marked():
    pass

@pytest.mark.precutover
def test_docstring_only():
    """No merge conflicts

    A user's own check written before the marker existed.
    """
'''


def test_each_parametrised_case_records_its_own_runbook_line(cutover_pytester: CutoverPytester) -> None:
    cutover_pytester.suite(PARAMETRISED)
    run = cutover_pytester.run("--strict-markers", "-m", "precutover")  # --strict-markers: the marker is registered
    assert run.result.ret == 0, run.output
    (record,) = [r for r in run.records() if r["kind"] == "stage"]
    lines = {t["id"].rsplit("::", 1)[1]: t["runbook"] for t in record["tests"]}
    assert lines == {"test_trigger[a]": "Error rate > 5%", "test_trigger[b]": "RLS data leakage detected",
                     "test_marked": "Database backups taken", "test_docstring_only": "No merge conflicts"}


def test_the_marker_is_listed_with_a_description(cutover_pytester: CutoverPytester) -> None:
    result = cutover_pytester.pytester.runpytest("--markers")
    assert any(line.startswith(f"@pytest.mark.{RUNBOOK_MARKER}(line): the runbook line") for line in
               result.stdout.lines), result.stdout.str()


def test_every_packaged_staged_test_declares_its_runbook_line(cutover_pytester: CutoverPytester) -> None:
    """No packaged test relies on the docstring fallback (kept for users' own older checks only)."""
    (cutover_pytester.path / "cutover.toml").write_text('[run]\nid = "night"\n')
    items, _ = cutover_pytester.pytester.inline_genitems("--cutover-suite=packaged", "-p", "no:cacheprovider")
    staged = [i for i in items if any(m.name in STAGES for m in i.iter_markers())]
    assert len(staged) > 40
    undeclared = [i.nodeid for i in staged if i.get_closest_marker(RUNBOOK_MARKER) is None]
    assert not undeclared, f"staged tests without @pytest.mark.runbook: {undeclared}"
    monitor = {i.name: i.get_closest_marker(RUNBOOK_MARKER).args[0] for i in staged if "test_monitor" in i.nodeid}
    assert monitor["test_no_trigger[error-rate]"] == "Error rate > 5%"
    assert monitor["test_success_criterion[error-rate]"] == "Error rate < 1%"


@pytest.mark.parametrize("args", [(), ("",)])
def test_an_empty_marker_records_no_line(cutover_pytester: CutoverPytester, args: tuple[str, ...]) -> None:
    marker = f"@pytest.mark.runbook({', '.join(repr(a) for a in args)})"
    cutover_pytester.suite(f"import pytest\n\n@pytest.mark.precutover\n{marker}\ndef test_x():\n    pass\n")
    run = cutover_pytester.run("-m", "precutover")
    (record,) = [r for r in run.records() if r["kind"] == "stage"]
    assert record["tests"][0]["runbook"] is None
