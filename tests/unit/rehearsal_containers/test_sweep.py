"""The labels on the containers stack's objects and the sweep of what a dead (SIGKILLed) rehearsal left."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cutover.rehearsal import sweep
from pytest_cutover.rehearsal.sweep import DockerObject, owner_labels, stale_objects
from tests.unit.rehearsal_containers.test_containers_docker import GROUP

HOST = "host-a"


def _obj(kind: str, name: str, pid: int | None, *, host: str = HOST, project: str = sweep.PROJECT,
         start: str | None = "100.00") -> DockerObject:
    labels = {sweep.PROJECT_LABEL: project, sweep.RUN_LABEL: f"run-{name}", sweep.OWNER_HOST_LABEL: host}
    if pid is not None:
        labels[sweep.OWNER_PID_LABEL] = str(pid)
    if start is not None:
        labels[sweep.OWNER_START_LABEL] = start
    return DockerObject(kind, f"id-{name}", name, labels)


def test_only_this_projects_objects_of_a_dead_owner_on_this_host_are_chosen() -> None:
    live = {11}
    objects = [
        _obj("network", "dead-net", 12), _obj("container", "dead-box", 12), _obj("volume", "dead-vol", 13),
        _obj("container", "live-box", 11),                       # the other xdist worker's rehearsal
        _obj("container", "other-host", 12, host="host-b"),      # a shared engine: not checkable from here
        _obj("container", "other-project", 12, project="someone-else"),
        _obj("container", "no-owner", None),                     # owner labels missing: not ours to judge
        DockerObject("container", "id-garbled", "garbled", {**_obj("container", "g", 1).labels,
                                                            sweep.OWNER_PID_LABEL: "twelve"}),
    ]
    chosen = stale_objects(objects, host=HOST, alive=lambda pid, start: pid in live)
    # containers first (they hold the network), then networks, then volumes
    assert [o.name for o in chosen] == ["dead-box", "dead-net", "dead-vol"]


def test_a_recycled_pid_is_not_the_owner() -> None:
    """The owner's start time is part of its identity: a new process on the same pid does not keep objects."""
    me = owner_labels("r")
    assert me[sweep.OWNER_PID_LABEL] == str(os.getpid())
    assert sweep.owner_alive(os.getpid(), float(me[sweep.OWNER_START_LABEL]))
    assert not sweep.owner_alive(os.getpid(), float(me[sweep.OWNER_START_LABEL]) - 3600)
    recycled = DockerObject("network", "id", "n", {**me, sweep.OWNER_START_LABEL: "1.00"})
    assert stale_objects([recycled], host=me[sweep.OWNER_HOST_LABEL]) == [recycled]
    mine = DockerObject("network", "id", "n", me)
    assert stale_objects([mine], host=me[sweep.OWNER_HOST_LABEL]) == []


def test_the_sweep_says_what_it_removed_and_what_it_could_not() -> None:
    import docker.errors

    class Thing:
        def __init__(self, fail: Exception | None = None) -> None:
            self.fail = fail

        def remove(self, **_: Any) -> None:
            if self.fail:
                raise self.fail

    class Kind:
        def __init__(self, listed: list[Any], things: dict[str, Thing]) -> None:
            self.listed, self.things = listed, things

        def list(self, **_: Any) -> list[Any]:
            return self.listed

        def get(self, ident: str) -> Thing:
            return self.things[ident]

    class Listed:
        def __init__(self, ident: str, labels: dict[str, str]) -> None:
            self.id = self.name = ident
            self.labels = labels
            self.attrs = {"Labels": labels}

    dead = {sweep.PROJECT_LABEL: sweep.PROJECT, sweep.RUN_LABEL: "r1", sweep.OWNER_PID_LABEL: "7",
            sweep.OWNER_HOST_LABEL: HOST}
    client = type("Client", (), {})()
    client.containers = Kind([Listed("box", dead)], {"box": Thing()})
    client.networks = Kind([Listed("net", dead)], {"net": Thing(docker.errors.APIError("network has endpoints"))})
    client.volumes = Kind([], {})
    said: list[str] = []
    removed = sweep.sweep_stale(said.append, client=client, host=HOST, alive=lambda pid, start: False)
    assert [o.name for o in removed] == ["box"]
    assert said[0].startswith("containers: removed 1 object(s) left by rehearsals whose process is gone: "
                              "container box (run r1, owner pid 7 gone)")
    assert "could not remove" in said[1] and "network has endpoints" in said[1]
    assert sweep.sweep_stale(said.append, client=client, host="elsewhere") == [] and len(said) == 2


# ------------------------------------------------------------------------------------------------ with Docker
def _dead_pid() -> tuple[int, float]:
    """A process that has ended: its pid and start time (as a SIGKILLed rehearsal leaves them)."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    started = psutil.Process(proc.pid).create_time()
    proc.kill()
    proc.wait(timeout=10)
    return proc.pid, started


@pytest.fixture
def engine_client() -> Iterator[Any]:
    import docker

    client = docker.from_env(version="auto", timeout=60)
    yield client
    client.close()


@pytest.mark.docker
@pytest.mark.xdist_group(GROUP)  # it creates objects while the leak tests count them: one after another
@pytest.mark.usefixtures("docker_engine")
def test_sweep_removes_a_dead_owners_container_and_network_and_keeps_a_live_ones(engine_client: Any) -> None:
    from pytest_cutover.rehearsal.images import LOCAL_IMAGES

    pid, started = _dead_pid()
    dead = {**owner_labels("sweep-test-dead"), sweep.OWNER_PID_LABEL: str(pid),
            sweep.OWNER_START_LABEL: f"{started:.2f}"}
    live = owner_labels("sweep-test-live")  # this test's own process: alive
    made: list[Any] = []
    try:
        dead_net = engine_client.networks.create("cutover-sweep-dead", labels=dead)
        made.append(dead_net)
        live_net = engine_client.networks.create("cutover-sweep-live", labels=live)
        made.append(live_net)
        box = engine_client.containers.run(LOCAL_IMAGES["base"], ["sleep", "300"], detach=True, labels=dead,
                                           network=dead_net.name, name="cutover-sweep-dead-box")
        made.append(box)
        said: list[str] = []
        removed = sweep.sweep_stale(said.append)
        assert {o.name for o in removed} >= {"cutover-sweep-dead-box", "cutover-sweep-dead"}
        assert "cutover-sweep-live" not in {o.name for o in removed}
        assert said and "container cutover-sweep-dead-box (run sweep-test-dead" in said[0], said
        names = {n.name for n in engine_client.networks.list()}
        assert "cutover-sweep-dead" not in names and "cutover-sweep-live" in names
        assert not engine_client.containers.list(all=True, filters={"name": "cutover-sweep-dead-box"})
    finally:
        import docker.errors

        for obj in reversed(made):
            with contextlib.suppress(docker.errors.NotFound):
                if hasattr(obj, "stop"):  # a container
                    obj.remove(force=True)
                else:
                    obj.remove()
