"""``cutover rehearse --stack``: the option, its choices, and the clear error where Docker is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _cutover(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_cutover.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=60, check=False)


def test_help_lists_both_stacks() -> None:
    done = _cutover("rehearse", "--help")
    assert done.returncode == 0
    assert "--stack [embedded|containers]" in done.stdout and "[default: embedded]" in done.stdout


def test_unknown_stack_is_a_usage_error() -> None:
    done = _cutover("rehearse", "--stack", "kubernetes")
    assert done.returncode == 2
    assert "kubernetes" in done.stderr and "embedded" in done.stderr


def test_containers_without_docker_says_so(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    done = _cutover("rehearse", "--stack", "containers", "--until", "precutover", "--reports-dir",
                    str(tmp_path / "reports"), env=env)
    assert done.returncode != 0
    assert "building the containers stack" in done.stdout
    assert "Docker not available: " in done.stderr and "--stack embedded" in done.stderr
