"""What the Docker tests of this folder share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def docker_engine() -> None:
    """Skip the module with the engine's own answer when no Docker engine answers (CI starts one)."""
    from pytest_cutover.rehearsal.containers import docker_unavailable_reason

    reason = docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Docker not available: {reason}")
