"""Self-test wiring shared by every tests/unit package."""

from __future__ import annotations

import pytest


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """``pytester`` with an ini that keeps third-party plugins quiet inside the inner runs."""
    # pytest-benchmark (where installed) turns itself off with a warning inside an xdist worker: keep it out.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\naddopts = -p no:benchmark\n")
    return pytester
