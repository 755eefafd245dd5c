"""Self-test wiring shared by every tests/unit package."""

from __future__ import annotations

import os

import pytest

# The plugin's own tests write small throwaway suites with a cutover.toml beside them: the packaged acceptance
# suite must not join those inner runs.  Tests about the packaged suite pass --cutover-suite=packaged.
os.environ["CUTOVER_SUITE"] = "none"


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """``pytester`` with an ini that keeps third-party plugins quiet inside the inner runs."""
    # pytest-benchmark (where installed) turns itself off with a warning inside an xdist worker: keep it out.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\naddopts = -p no:benchmark\n")
    return pytester


_CONTAINERS_EVIDENCE: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the containers tests' evidence (a user property, so it crosses from xdist workers)."""
    if report.when == "call" and report.passed:
        _CONTAINERS_EVIDENCE.extend(str(v) for k, v in report.user_properties if k == "containers-evidence")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say in the test command's output that the containers rehearsal ran and what it caught."""
    if _CONTAINERS_EVIDENCE:
        terminalreporter.section("containers rehearsal (Docker)")
        for line in _CONTAINERS_EVIDENCE:
            terminalreporter.write_line(line)
