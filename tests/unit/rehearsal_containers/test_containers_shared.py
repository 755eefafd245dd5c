"""Reversible precutover faults on one shared containers stack: plant, run the stage, undo, prove the undo
(the fault matrix's ``SharedStack``), then prove the stack left nothing behind in the engine.

Its own module, so the shared stack is torn down when these tests end, not after the whole folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cutover.rehearsal.matrix import SharedStack
from tests.unit.fault_matrix.test_fault_matrix import assert_guarded
from tests.unit.rehearsal_containers.test_containers_docker import (
    EVIDENCE,
    GROUP,
    MONITOR_WINDOW_S,
    caught,
    docker_objects,
)

#: Precutover faults in the parts the containers replace: the pooler the app URL names, the storage bucket.
SHARED_FAULTS = ("session-pooler-url", "bucket-public")

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.xdist_group(GROUP),
              pytest.mark.usefixtures("docker_engine")]



@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    """One containers stack for the reversible precutover faults (plant, run, undo, prove the undo)."""
    from pytest_cutover.rehearsal.containers import ContainerStack

    before = docker_objects()
    with ContainerStack(None, images="official", monitor_window_s=MONITOR_WINDOW_S,
                        monitor_interval_s=MONITOR_WINDOW_S / 8) as stack:
        yield SharedStack(stack, tmp_path_factory.mktemp("containers-shared"), monitor_window_s=MONITOR_WINDOW_S)
    assert docker_objects() == before, "the shared containers stack left objects behind"


@pytest.mark.parametrize("fault", SHARED_FAULTS)
def test_a_precutover_fault_fails_its_stage_on_containers(shared: SharedStack, fault: str,
                                                          record_property: Any) -> None:
    row = shared.row(fault)
    assert_guarded(row)
    record_property(EVIDENCE, caught(row))


