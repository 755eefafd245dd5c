"""Which rehearsal stack ``cutover rehearse --stack NAME`` builds: a name -> dotted-path registry.

The classes are imported on first use, so the embedded path never imports testcontainers/docker and the
containers path is only loaded when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from pytest_cutover.errors import ConfigError

__all__ = ["DEFAULT_STACK", "STACKS", "get_stack_class", "rehearse_args", "stack_names", "stack_options"]

DEFAULT_STACK = "embedded"
#: name -> "module:attribute"; both classes share EmbeddedStack's public surface.
STACKS: dict[str, str] = {
    "embedded": "pytest_cutover.rehearsal.stack:EmbeddedStack",
    "containers": "pytest_cutover.rehearsal.containers:ContainerStack",
}


def stack_names() -> list[str]:
    """The registered stack names, the default first."""
    return [DEFAULT_STACK, *sorted(n for n in STACKS if n != DEFAULT_STACK)]


def get_stack_class(name: str) -> Any:
    """The stack class registered as ``name`` (imported now); ``ConfigError`` naming the choices if unknown."""
    try:
        target = STACKS[name]
    except KeyError:
        raise ConfigError(f"unknown rehearsal stack {name!r}",
                          hint="use one of: " + ", ".join(stack_names())) from None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def stack_options(name: str, images: str, say: Callable[[str], None]) -> dict[str, Any]:
    """The keyword arguments the stack ``name`` takes besides the common ones (the containers' image set)."""
    return {"images": images, "say": say} if name == "containers" else {}


def rehearse_args(name: str, images: str) -> list[str]:
    """The ``cutover rehearse`` options that build the same stack in another process (the matrix's fresh rows)."""
    return [] if name == DEFAULT_STACK else ["--stack", name, *(["--images", images] if name == "containers" else [])]
