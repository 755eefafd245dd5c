"""A stack owner that is told to stop (SIGTERM) or interrupted (Ctrl-C) leaves no process and no port behind."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_cutover.rehearsal.procs import port_is_free

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_OWNER = """
import sys, time, warnings
warnings.simplefilter("ignore")
from pytest_cutover.rehearsal.seed import SeedSize
from pytest_cutover.rehearsal.stack import EmbeddedStack
tiny = SeedSize(orgs=2, users_per_org=1, threads_per_user=1, messages_per_thread=1, fragments_per_org=10,
                attachments_per_org=1, attachment_bytes=512, max_blob_bytes=4096, topics_per_org=1,
                subtopics_per_topic=1)
stack = EmbeddedStack(sys.argv[1], size=tiny, services=sys.argv[2] == "services")
stack.start()
print("READY", ",".join(map(str, stack.ports)), ",".join(map(str, stack.pids().values())), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_owner_signal_stops_every_part(scratch: Path, sig: int) -> None:
    workdir = scratch / "stack"
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(workdir), "no-services"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = owner.stdout.readline() if owner.stdout else ""
        assert line.startswith("READY"), (line, owner.stderr.read() if owner.stderr else "")
        _, ports_text, pids_text = line.split()
        ports = [int(p) for p in ports_text.split(",")]
        pids = [int(p) for p in pids_text.split(",")]
        assert pids and all(psutil.pid_exists(p) for p in pids)
        owner.send_signal(sig)
        owner.wait(timeout=60)
    finally:
        if owner.poll() is None:  # the test failed early: let the owner tear its stack down, never SIGKILL first
            owner.terminate()
            try:
                owner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                owner.kill()
                owner.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if psutil.pid_exists(p)]
    assert all(port_is_free(p) for p in ports)
    assert not workdir.exists()


@pytest.mark.parametrize("how", ["ctl stop-all", "the next start's sweep"])
def test_a_killed_owners_parts_are_cleaned_up(scratch: Path, how: str) -> None:
    """SIGKILL cannot be caught: the parts outlive their owner.  `ctl stop-all` stops them by pid; the next
    stack start's sweep (rehearsal/leftovers.py) finds the dead owner's folder, stops them and removes it."""
    from pytest_cutover.rehearsal.leftovers import sweep_stale_stacks
    from pytest_cutover.rehearsal.stack import services_available

    workdir = scratch / "cutover-stack-killed"
    mode = "services" if services_available() is None else "no-services"
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(workdir), mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        line = owner.stdout.readline() if owner.stdout else ""
        assert line.startswith("READY"), (line, owner.stderr.read() if owner.stderr else "")
        _, ports_text, pids_text = line.split()
        ports = [int(p) for p in ports_text.split(",")]
        pids = [int(p) for p in pids_text.split(",")]
        owner.kill()
        owner.wait(timeout=30)
        time.sleep(0.5)
        assert all(psutil.pid_exists(p) for p in pids), "the parts should outlive a SIGKILLed owner"
        if how == "ctl stop-all":
            done = subprocess.run([sys.executable, "-m", "pytest_cutover.rehearsal.ctl", "stop-all", str(workdir)],
                                  capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr
            said = done.stdout
        else:
            lines: list[str] = []
            assert [s.path for s in sweep_stale_stacks(lines.append, root=scratch)] == [workdir]
            said = "\n".join(lines)
            assert not workdir.exists() and "removed its folder" in said, said
        assert "postgres stopped" in said and "pgbouncer-transaction stopped" in said
    finally:
        if owner.poll() is None:
            owner.terminate()
            owner.wait(timeout=60)
        for pid in pids:  # never leave orphans behind, even when an assertion failed
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive
    assert all(port_is_free(p) for p in ports)
