"""Both stacks implement the declared stack protocol; the fault catalog depends on the protocol, not a stack."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import faults, protocol
from pytest_cutover.rehearsal.containers import ContainerStack
from pytest_cutover.rehearsal.stack import EmbeddedStack, StackBase

PKG = Path(protocol.__file__).resolve().parent


def _members(proto: type) -> set[str]:
    names: set[str] = set()
    for klass in proto.__mro__:
        if klass in (object,) or klass.__name__ in ("Protocol", "Generic"):
            continue
        names |= set(getattr(klass, "__annotations__", {}))
        names |= {n for n, v in vars(klass).items() if callable(v) or isinstance(v, property)}
    return {n for n in names if not n.startswith("_") or n in ("__enter__", "__exit__")}


def _missing(cls: type) -> list[str]:
    stack = cls(None)  # not started: attributes set in __init__ count, properties are looked up on the class
    return sorted(n for n in _members(protocol.RehearsalStack) if n not in vars(stack) and not hasattr(cls, n))


@pytest.mark.parametrize("cls", [EmbeddedStack, ContainerStack])
def test_each_stack_has_every_member_of_the_protocol(cls: type) -> None:
    assert _missing(cls) == [], f"{cls.__name__} lacks {_missing(cls)}"


def test_a_member_missing_from_a_stack_is_found() -> None:
    """The check above can fail: a stack-like class without ``undo`` and ``config_document`` is reported."""

    class Half:
        def __init__(self, workdir: object) -> None:
            self.faults: list[str] = []

        def start(self) -> None: ...

    assert {"undo", "config_document", "plant"} <= set(_missing(Half))
    assert "faults" not in _missing(Half) and "start" not in _missing(Half)


def test_stacks_share_a_base_and_override_none_of_each_others_methods() -> None:
    assert EmbeddedStack.__bases__ == (StackBase,) and ContainerStack.__bases__ == (StackBase,)
    assert not (StackBase.__abstractmethods__ - set(vars(EmbeddedStack)))
    assert not (StackBase.__abstractmethods__ - set(vars(ContainerStack)))
    private = {n for n, v in vars(ContainerStack).items() if n.startswith("_") and not n.startswith("__")
               and inspect.isfunction(v)}
    assert not (private & set(vars(EmbeddedStack))), "the containers stack overrides embedded private methods"
    assert not (private & set(vars(StackBase))), "the containers stack overrides the base's private methods"


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_faults_and_protocol_import_no_stack() -> None:
    """The faults <-> stack cycle is gone: faults plant through the protocol (imports inside functions too)."""
    stacks = {"pytest_cutover.rehearsal.stack", "pytest_cutover.rehearsal.containers"}
    for module in (faults, protocol):
        path = Path(inspect.getfile(module))
        assert not (_imports(path) & stacks), f"{path.name} imports a stack"
    assert faults.FaultTarget is protocol.FaultTarget
