"""The full containers stack with Docker: start it, run the precutover stage against it, stop it.

Skipped with reason "Docker not available" where no engine answers (as on the build machine).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cutover.ledger import Ledger
from pytest_cutover.rehearsal.containers import docker_unavailable_reason
from pytest_cutover.stages import PASSED

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def docker_engine() -> None:
    if docker_unavailable_reason() is not None:
        pytest.skip("Docker not available")


@pytest.mark.docker
@pytest.mark.slow
def test_container_stack_passes_precutover(docker_engine: None, tmp_path: Path) -> None:
    reports, run = tmp_path / "reports", "containers-precutover"
    done = subprocess.run([sys.executable, "-m", "pytest_cutover.cli", "rehearse", "--stack", "containers",
                           "--until", "precutover", "--run", run, "--reports-dir", str(reports)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=1800, check=False)
    assert "building the containers stack" in done.stdout, done.stdout + done.stderr
    stages = Ledger.for_run(reports, run).stage_records()
    assert stages.get("precutover", {}).get("verdict") == PASSED, done.stdout[-4000:] + done.stderr[-2000:]
