"""The suite's test command relies on ``--dist loadgroup`` keeping an ``xdist_group`` on one worker: the fault
matrix shares one stack per group, and the Docker tests compare the engine's objects before and after, which
only holds when no other worker starts containers meanwhile.  pytest 9.2 with pytest-xdist 3.8 silently
stopped grouping (pytest-dev/pytest-xdist#1386), so the installed pair is checked here, not assumed.
"""

from __future__ import annotations

import re

import pytest

MODULE = """
import os, time, pytest
pytestmark = pytest.mark.xdist_group("together")

@pytest.mark.parametrize("i", range(3))
def test_one(i):
    time.sleep(0.2)
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""


def test_an_xdist_group_runs_on_one_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=MODULE, test_b=MODULE)
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                                           "-p", "no:cutover")
    result.assert_outcomes(passed=6)
    workers = set(re.findall(r"^\[(gw\d+)\] .*PASSED", result.stdout.str(), flags=re.MULTILINE))
    assert len(workers) == 1, (f"the group ran on {sorted(workers)}: --dist loadgroup does not group with this "
                               f"pytest {pytest.__version__}; see pyproject.toml's pin")
