"""The declared interface of a rehearsal stack: what ``cutover rehearse``, the fault matrix and the faults use.

Why a protocol: two stacks (embedded processes, containers) must be interchangeable for the CLI, the matrix
and the fault catalog, and neither may depend on the other's internals.  Both implement these members (a unit
test checks it); the faults only ever see :class:`FaultTarget`, so ``faults.py`` imports no stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = ["FaultTarget", "RehearsalStack"]


@runtime_checkable
class FaultTarget(Protocol):
    """What a fault needs from the stack it is planted on."""

    faults_file: Path
    app_dir: Path | None
    workdir: Path | None
    env_file: Path | None
    backup_path: Path
    qdrant_path: Path
    collection: str
    storage_data_dir: Path

    def target_sql(self, sql: str) -> str: ...          # as the superuser on the target database
    def old_sql(self, sql: str) -> str: ...             # as the superuser on the old database
    def set_app_database(self, *, user: str | None = None, pooler: str | None = None) -> None: ...
    def set_people_fault(self, name: str, on: bool = True) -> None: ...  # rewrites the config


@runtime_checkable
class RehearsalStack(FaultTarget, Protocol):
    """A whole rehearsal environment: start, stop, endpoints, config, faults and their state."""

    faults: list[str]
    planted: dict[str, str]
    config_path: Path | None
    startup_s: float | None
    extra_config: dict[str, dict[str, Any]]

    # -- life cycle
    def start(self) -> None: ...
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> None: ...

    # -- endpoints and config
    def environ(self) -> dict[str, str]: ...            # the ${VAR} values cutover.toml refers to
    def write_config(self) -> Path: ...
    def config_document(self) -> dict[str, Any]: ...
    def write_stack_env(self, path: Path) -> Path: ...
    def describe(self) -> str: ...
    def environment_figures(self) -> dict[str, str]: ...

    # -- faults and the state the matrix compares
    def plant(self, name: str) -> str: ...
    def plant_due(self, when: Any) -> dict[str, str]: ...
    def undo(self, name: str) -> None: ...
    @property
    def app_database_choice(self) -> tuple[str, str]: ...
    @property
    def people_choice(self) -> tuple[str, ...]: ...
