"""``cutover rehearse --matrix --stack containers``: the matrix builds the stack asked for (not always the
embedded one), resolves the image set once, passes it to every fresh row, and lists the faults that stack
refuses as not run.  No Docker here: the engine, the stack and the rows are stand-ins; a real matrix on
containers is too slow for the suite (README: one narrow run by hand)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from pytest_cutover.rehearsal import backends, containers, matrix
from pytest_cutover.rehearsal.matrix import MatrixRow


def test_rehearse_args_and_options_name_the_stack_and_its_images() -> None:
    assert backends.rehearse_args("embedded", "official") == []
    assert backends.rehearse_args("containers", "local") == ["--stack", "containers", "--images", "local"]
    say = print
    assert backends.stack_options("embedded", "local", say) == {}
    assert backends.stack_options("containers", "local", say) == {"images": "local", "say": say}


def test_embedded_matrix_needs_no_docker() -> None:
    assert matrix.matrix_stack("embedded", "official", print) == ("official", {})


class _Stack:
    built: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, workdir: Any, **kwargs: Any) -> None:
        _Stack.built.append(kwargs)

    def __enter__(self) -> _Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class _Shared:
    def __init__(self, stack: Any, reports: Path, **kwargs: Any) -> None:
        self.stack = stack

    def row(self, name: str) -> MatrixRow:
        guard = matrix.catalog.get_fault(name).stage
        return MatrixRow(name, guard, guard, "caught", "shared-precutover")


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Docker answers, the official images cannot be pulled (the local set is used), rows are recorded."""
    seen: dict[str, Any] = {"classes": [], "fresh": []}
    _Stack.built = []

    def get_stack_class(name: str) -> type[_Stack]:
        seen["classes"].append(name)
        return _Stack

    def fresh(name: str, reports: Path, **kwargs: Any) -> MatrixRow:
        seen["fresh"].append((name, kwargs["stack_args"]))
        guard = matrix.catalog.get_fault(name).stage
        return MatrixRow(name, guard, guard, "caught")

    def resolve(choice: str, say: Any) -> containers.ImageSet:
        say(f"notice: official image x could not be pulled; using the local image set instead (asked {choice})")
        return containers.local_images()

    monkeypatch.setattr(containers, "require_docker", lambda: None)
    monkeypatch.setattr(containers, "resolve_images", resolve)
    monkeypatch.setattr(backends, "get_stack_class", get_stack_class)
    monkeypatch.setattr(matrix, "SharedStack", _Shared)
    monkeypatch.setattr(matrix, "fresh_row", fresh)
    return seen


def test_matrix_on_containers_builds_the_containers_stack_with_the_resolved_images(wired: dict[str, Any],
                                                                                   tmp_path: Path) -> None:
    lines: list[str] = []
    code = matrix.run_matrix(["bucket-public", "app-fails-start", "blob-corrupt"], reports_dir=tmp_path,
                             monitor_window=4.0, echo=lines.append, stack="containers", images="official")
    assert code == 0, lines
    assert wired["classes"] == ["containers"]
    assert _Stack.built[0]["images"] == "local"  # resolved once: the rows do not each retry the pull
    assert wired["fresh"] == [("app-fails-start", ["--stack", "containers", "--images", "local"])]
    refused = [line for line in lines if line.startswith("blob-corrupt")]
    assert refused and "not run" in refused[0] and "refuses it" in refused[0], lines
    assert lines[-1] == ("2 of 2 faults failed the stage that guards them on the containers stack; "
                         "not run (refused by the stack): blob-corrupt")


def test_matrix_without_docker_fails_before_building_anything(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from pytest_cutover.rehearsal.errors import RehearsalError

    def no_docker() -> None:
        raise RehearsalError("Docker not available: test", hint="--stack embedded")

    monkeypatch.setattr(containers, "require_docker", no_docker)
    monkeypatch.setattr(backends, "get_stack_class", lambda name: pytest.fail("a stack was built"))
    with pytest.raises(RehearsalError, match="Docker not available"):
        matrix.run_matrix(["bucket-public"], reports_dir=tmp_path, monitor_window=4.0, echo=print,
                          stack="containers")


def test_cli_passes_the_stack_and_images_to_the_matrix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pytest_cutover.rehearsal import cli

    got: dict[str, Any] = {}

    def run_matrix(names: Any, **kwargs: Any) -> int:
        got.update(kwargs, names=list(names))
        return 0

    monkeypatch.setattr(matrix, "run_matrix", run_matrix)
    done = CliRunner().invoke(cli.rehearse, ["--matrix", "--stack", "containers", "--images", "local",
                                             "--fault", "bucket-public", "--reports-dir", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (got["stack"], got["images"], got["names"]) == ("containers", "local", ["bucket-public"])
