"""The containers stack with a real Docker engine: a rehearsal to SUCCESS, faults caught on containers, and a
teardown that leaves no container, network or volume behind (after a pass, a failing run and Ctrl-C).

Skipped with reason "Docker not available" only where no engine answers.  Where one answers, the images come
from the registry or, as here (no registry), from the local set ``bash .ci/setup`` builds; a missing local set
fails with the command that builds it.  Every test is in one xdist group: they run one after another on one
worker (the before/after comparison of the engine's objects needs that), beside the rest of the suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.rehearsal.matrix import MatrixRow, fresh_row
from tests.unit.fault_matrix.test_fault_matrix import assert_guarded

ROOT = Path(__file__).resolve().parents[3]
GROUP = "containers-docker"
#: The user property tests/unit/conftest.py prints in the summary, so the test command's output shows that the
#: containers rehearsal ran and what it caught (a skip would show in the SKIPPED lines instead).
EVIDENCE = "containers-evidence"
MONITOR_WINDOW_S = 6.0
#: Faults of the switch and rls stages, guarded on containers (precutover ones: test_containers_shared.py).
FRESH_FAULTS = ("app-fails-start", "private-tier-leak")  # switch, rls: a containers rehearsal each
CONTAINERS = ("--stack", "containers")

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group(GROUP),
              pytest.mark.usefixtures("docker_engine")]



def docker_objects() -> dict[str, list[str]]:
    """Every container (running or not), network and volume the engine has, as ``docker`` lists them."""
    out = {}
    for kind, argv in {"containers": ["ps", "-a", "--no-trunc"], "networks": ["network", "ls", "--no-trunc"],
                       "volumes": ["volume", "ls"]}.items():
        done = subprocess.run(["docker", *argv, "-q"], capture_output=True, text=True, timeout=30, check=True)
        out[kind] = sorted(done.stdout.split())
    return out


def labelled_owners(run: str) -> dict[str, list[str]]:
    """The owner pid label of every container and network labelled with run id ``run``."""
    from pytest_cutover.rehearsal.sweep import OWNER_PID_LABEL, RUN_LABEL

    out = {}
    for kind, argv in {"containers": ["ps", "-a"], "networks": ["network", "ls"]}.items():
        done = subprocess.run(["docker", *argv, "--filter", f"label={RUN_LABEL}={run}", "--format",
                               f'{{{{.Label "{OWNER_PID_LABEL}"}}}}'], capture_output=True, text=True, timeout=30,
                              check=True)
        out[kind] = done.stdout.split()
    return out


@pytest.fixture
def no_leak() -> Iterator[None]:
    """The engine has exactly the same containers, networks and volumes after the test as before it."""
    before = docker_objects()
    yield
    after = docker_objects()
    assert after == before, f"left behind: { {k: sorted(set(after[k]) - set(before[k])) for k in after} }"


def _rehearse(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    return subprocess.run([sys.executable, "-m", "pytest_cutover.cli", "rehearse", *CONTAINERS, *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout, check=False)


class AppContainerWatch(threading.Thread):
    """Polls the engine while a rehearsal runs for its app container (by the run and part labels): what image
    and network it runs, and each start (``State.StartedAt``): a restart by the switch is a second start."""

    def __init__(self, run: str) -> None:
        super().__init__(daemon=True)
        from pytest_cutover.rehearsal.sweep import PART_LABEL, RUN_LABEL

        self.filters = {"label": [f"{RUN_LABEL}={run}", f"{PART_LABEL}=app"]}
        self.starts: set[str] = set()
        self.seen: set[tuple[str, str, str]] = set()  # (name, image, network mode)
        self.done = threading.Event()

    def run(self) -> None:
        import docker

        client = docker.from_env(version="auto", timeout=30)
        try:
            while not self.done.wait(0.5):
                for box in client.containers.list(filters=self.filters):  # running ones, inspected
                    self.starts.add(box.attrs["State"]["StartedAt"])
                    self.seen.add((box.name, box.attrs["Config"]["Image"], box.attrs["HostConfig"]["NetworkMode"]))
        finally:
            client.close()


def test_containers_rehearsal_reaches_success(no_leak: None, tmp_path: Path, record_property: Any) -> None:
    reports, run = tmp_path / "reports", "containers-success"
    started = time.monotonic()
    watch = AppContainerWatch(run)
    watch.start()
    try:
        done = _rehearse("--run", run, "--reports-dir", str(reports), "--monitor-window", str(MONITOR_WINDOW_S))
    finally:
        watch.done.set()
        watch.join(timeout=30)
    out = done.stdout + done.stderr
    assert "building the containers stack" in done.stdout, out[-4000:]
    assert done.returncode == 0, out[-6000:]
    report = json.loads((reports / run / "report.json").read_text())
    assert report["status"] == "SUCCESS"
    assert [s["verdict"] for s in report["stages"]] == ["passed"] * 6
    stack = report["figures"]["versions"]["stack"]
    assert stack.startswith("containers ("), stack
    if "using the local image set" in out:  # no registry: the fallback said so, and the report says how
        assert "pytest-cutover/postgres:18-pgvector" in stack
        qdrant = report["environment"]["versions"]["qdrant"]
        assert qdrant["version"].startswith("local mode") and "no Qdrant server image" in qdrant["version"]
        # The app ran in a container of the app image, on the host network, and the switch restarted that
        # container (a second start) -- the restart whose database check saw the app on the target.
        assert {(image, network) for _, image, network in watch.seen} == {("pytest-cutover/app:local", "host")}, \
            watch.seen
        assert len(watch.starts) >= 2, f"the app container was never restarted: {watch.starts}"
        app = report["figures"]["versions"]["app"]
        assert app.startswith(f"container {next(iter(watch.seen))[0]} (pytest-cutover/app:local"), app
    record_property(EVIDENCE, f"rehearsal {report['status']} on {stack} in {time.monotonic() - started:.0f} s"
                              + (f", the app in container {next(iter(watch.seen))[0]} (started {len(watch.starts)}"
                                 " times: the switch restarted it)" if watch.seen else "")
                              + ", no container, network or volume left")


@pytest.mark.parametrize("fault", FRESH_FAULTS)
def test_a_fault_fails_its_stage_on_a_containers_rehearsal_and_leaves_nothing(no_leak: None, tmp_path: Path,
                                                                              fault: str, record_property: Any) -> None:
    """A failing run (the fault's stage fails) tears its containers down like a passing one."""
    row: MatrixRow = fresh_row(fault, tmp_path / "reports", monitor_window_s=MONITOR_WINDOW_S,
                               stack_args=CONTAINERS)
    assert_guarded(row)
    record_property(EVIDENCE, caught(row))


def caught(row: MatrixRow) -> str:
    """One line of evidence for the summary: the fault, the stage that failed, what it said."""
    return f"fault {row.fault} caught: stage {row.failed} failed: {row.message[:140]}"


def test_ctrl_c_during_the_suite_tears_the_containers_down(no_leak: None, tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) while the suite runs on the containers: the rehearsal exits and removes everything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    proc = subprocess.Popen([sys.executable, "-m", "pytest_cutover.cli", "rehearse", *CONTAINERS, "--run", "ctrl-c",
                             "--reports-dir", str(tmp_path / "reports")], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    try:
        for line in proc.stdout:
            seen.append(line)
            if "stage 1/6 precutover" in line or time.monotonic() > deadline:
                break
        assert any("stage 1/6 precutover" in line for line in seen), "".join(seen)[-3000:]
        owners = labelled_owners("ctrl-c")
        # every object of the running stack names its run and owner process (what a later sweep reads)
        assert owners["containers"] and owners["networks"], owners
        assert set(owners["containers"] + owners["networks"]) == {str(proc.pid)}, owners
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode != 0, "".join(seen) + rest
    assert "rehearsal ctrl-c: SUCCESS" not in rest
