"""The opt-in ``embedded_stack`` session fixture, run in an inner pytest session."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_embedded_stack_fixture_runs_one_stack_per_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import psutil

        SEEN = []

        def test_first(embedded_stack):
            SEEN.append(embedded_stack.pids()["postgres"])
            assert embedded_stack.planted == {"bucket-public": "storage bucket attachments is public"}
            assert embedded_stack.config_path.exists()

        def test_second(embedded_stack):
            assert embedded_stack.pids()["postgres"] == SEEN[0]
            assert psutil.pid_exists(SEEN[0])
    """)
    result = pytester.runpytest_subprocess("-p", "pytest_cutover.rehearsal.fixtures", "-p", "no:cacheprovider",
                                           "--cutover-rehearsal-no-services",
                                           "--cutover-rehearsal-fault", "bucket-public", "-q")
    result.assert_outcomes(passed=2)
