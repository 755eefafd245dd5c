"""Labels on every Docker object the containers stack creates, and the sweep of objects a dead rehearsal left.

Why: the stack's teardown runs on success, failure, Ctrl-C, SIGTERM and at exit, but not after a SIGKILL (or
an OOM kill, or a machine reboot of the client only): then its containers and network stay in the engine.
Every container, network and volume the stack creates carries :func:`owner_labels`: the project, the run id,
and the owner process (pid, its start time, the host it runs on).  At each stack start :func:`sweep_stale`
removes the objects of this project whose owner process on this host is gone, and says what it removed.
Objects of a live owner (another rehearsal running now, e.g. the other xdist worker) are never touched, nor
objects owned on another host (a shared engine: their owner cannot be checked from here), nor objects whose
owner labels are missing or unreadable.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pytest_cutover.redact import redact

__all__ = ["OWNER_HOST_LABEL", "OWNER_PID_LABEL", "OWNER_START_LABEL", "PART_LABEL", "PROJECT", "PROJECT_LABEL",
           "RUN_LABEL",
           "DockerObject", "owner_alive", "owner_labels", "stale_objects", "sweep_stale"]

PROJECT_LABEL = "org.pytest-cutover.project"
PROJECT = "pytest-cutover"
RUN_LABEL = "org.pytest-cutover.run"
OWNER_PID_LABEL = "org.pytest-cutover.owner-pid"
OWNER_START_LABEL = "org.pytest-cutover.owner-start"
OWNER_HOST_LABEL = "org.pytest-cutover.owner-host"
#: Which part of the stack a container is (``postgres``, ``pgbouncer-transaction``, ``app``...).
PART_LABEL = "org.pytest-cutover.part"
#: Removal order: containers first (they hold the network and their anonymous volumes), then networks, volumes.
KINDS = ("container", "network", "volume")
SWEEP_TIMEOUT = 60


@dataclasses.dataclass(frozen=True)
class DockerObject:
    """One container, network or volume as the engine lists it (what the sweep decides on)."""

    kind: str
    id: str
    name: str
    labels: Mapping[str, str]

    def describe(self) -> str:
        return (f"{self.kind} {self.name} (run {self.labels.get(RUN_LABEL, '?')}, "
                f"owner pid {self.labels.get(OWNER_PID_LABEL, '?')} gone)")


def _start_time(pid: int) -> float:
    import psutil

    return psutil.Process(pid).create_time()


def owner_labels(run_id: str, *, pid: int | None = None) -> dict[str, str]:
    """The labels of every object the stack of ``run_id`` creates, owned by ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    return {PROJECT_LABEL: PROJECT, RUN_LABEL: run_id, OWNER_PID_LABEL: str(pid),
            OWNER_START_LABEL: f"{_start_time(pid):.2f}", OWNER_HOST_LABEL: socket.gethostname()}


def owner_alive(pid: int, start: float | None) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start`` (a recycled pid is not)."""
    from pytest_cutover.rehearsal.ctl import _process_if_same

    return _process_if_same(pid, start) is not None


def stale_objects(objects: Iterable[DockerObject], *, host: str,
                  alive: Callable[[int, float | None], bool] = owner_alive) -> list[DockerObject]:
    """The objects to remove: this project's, owned on ``host``, whose owner ``alive`` says is gone; in
    :data:`KINDS` order.  Anything else (another project, another host, owner labels missing) is kept."""
    chosen = []
    for obj in objects:
        labels = obj.labels
        if labels.get(PROJECT_LABEL) != PROJECT or labels.get(OWNER_HOST_LABEL) != host:
            continue
        try:
            pid = int(labels[OWNER_PID_LABEL])
            start = float(labels[OWNER_START_LABEL]) if labels.get(OWNER_START_LABEL) else None
        except (KeyError, ValueError):
            continue  # not ours to judge
        if pid > 0 and not alive(pid, start):
            chosen.append(obj)
    return sorted(chosen, key=lambda o: KINDS.index(o.kind) if o.kind in KINDS else len(KINDS))


def _listed(client: Any) -> list[DockerObject]:
    """This project's containers (running or not), networks and volumes, by the project label."""
    wanted = {"label": f"{PROJECT_LABEL}={PROJECT}"}
    found = [DockerObject("container", c.id, c.name, c.labels or {})
             for c in client.containers.list(all=True, filters=wanted)]
    found += [DockerObject("network", n.id, n.name, n.attrs.get("Labels") or {})
              for n in client.networks.list(filters=wanted)]
    found += [DockerObject("volume", v.id, v.name, v.attrs.get("Labels") or {})
              for v in client.volumes.list(filters=wanted)]
    return found


def _remove(client: Any, obj: DockerObject) -> None:
    if obj.kind == "container":
        client.containers.get(obj.id).remove(force=True, v=True)  # v: its anonymous volumes too
    elif obj.kind == "network":
        client.networks.get(obj.id).remove()
    else:
        client.volumes.get(obj.id).remove(force=True)


def sweep_stale(say: Callable[[str], None], *, client: Any = None, host: str | None = None,
                alive: Callable[[int, float | None], bool] = owner_alive) -> list[DockerObject]:
    """Remove what dead rehearsals on this host left in the engine; one line through ``say`` if anything was
    found (what was removed, and what could not be).  Returns the objects removed."""
    import docker
    import docker.errors

    own = client is None
    client = client or docker.from_env(version="auto", timeout=SWEEP_TIMEOUT)
    removed: list[DockerObject] = []
    failed: list[str] = []
    try:
        for obj in stale_objects(_listed(client), host=host or socket.gethostname(), alive=alive):
            try:
                _remove(client, obj)
                removed.append(obj)
            except docker.errors.NotFound:
                continue  # gone meanwhile (another rehearsal's sweep)
            except docker.errors.APIError as exc:
                failed.append(f"{obj.describe()}: {redact(str(exc)).splitlines()[0][:160]}")
    finally:
        if own:
            client.close()
    if removed:
        say(f"containers: removed {len(removed)} object(s) left by rehearsals whose process is gone: "
            + "; ".join(o.describe() for o in removed))
    if failed:
        say("containers: could not remove objects left by dead rehearsals: " + "; ".join(failed))
    return removed

