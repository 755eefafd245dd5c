"""What "the whole stage" is in one invocation: the packaged suite joined to the collection, and every way
the collection may have been cut short.

A stage may only pass when every test that belongs to it ran.  "Belongs to it" is what a complete
collection holds (the packaged suite plus the user's own staged tests) *before* any selection.  This module
turns pytest's view of the collection into plain :class:`~pytest_cutover.stages.StageScope` values: which
tests were left out by a selection (``-k``, ``-m``, ``--deselect``, ``--lf``, ``--sw``, another plugin), and
why the collection itself may be narrower than the whole suite (explicit paths, ``--ignore``, ``--lf``
skipping files, a collection error).  The verdict itself is decided in :mod:`pytest_cutover.stages`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

from pytest_cutover.stages import StageScope
from pytest_cutover.suite import SUITE_NODE_PREFIX, suite_modules

__all__ = ["build_scopes", "narrowing", "packaged_items", "selection", "suite_enabled"]

SUITE_CHOICES = ("packaged", "none")


def suite_enabled(choice: str | None, has_config: bool) -> bool:
    """Whether the packaged suite joins this collection: only in a cutover (a config was found), unless turned off.

    A venv where the plugin is installed for other projects must not grow a cutover suite in their runs.
    """
    choice = choice or os.environ.get("CUTOVER_SUITE") or "packaged"
    if choice not in SUITE_CHOICES:
        raise pytest.UsageError(f"--cutover-suite (or $CUTOVER_SUITE) must be one of {', '.join(SUITE_CHOICES)}, "
                                f"not {choice!r}")
    return has_config and choice == "packaged"


def packaged_items(session: pytest.Session) -> list[pytest.Item]:
    """The packaged suite's items, collected like any test module, with node ids that do not depend on the install."""
    items: list[pytest.Item] = []
    for path in suite_modules():
        module = pytest.Module.from_parent(session, path=path, nodeid=f"{SUITE_NODE_PREFIX}/{path.name}")
        items.extend(item for item in session.genitems(module) if isinstance(item, pytest.Item))
    return items


def selection(config: pytest.Config) -> str:
    """The options that deselect tests in this invocation, as the operator typed them."""
    option = config.option
    parts = []
    if getattr(option, "keyword", ""):
        parts.append(f"-k {option.keyword!r}")
    if getattr(option, "markexpr", ""):
        parts.append(f"-m {option.markexpr!r}")
    if getattr(option, "deselect", None):
        parts.append("--deselect " + " ".join(option.deselect))
    if getattr(option, "lf", False):
        parts.append("--lf")
    if getattr(option, "stepwise", False):
        parts.append("--sw")
    return "deselected by " + (", ".join(parts) if parts else "a plugin")


def _typed_args(config: pytest.Config) -> list[str]:
    """What the operator typed: the command line plus ``$PYTEST_ADDOPTS`` (ini ``addopts`` are the project's)."""
    return [*shlex.split(os.environ.get("PYTEST_ADDOPTS", "")), *map(str, config.invocation_params.args)]


def _is_whole_root(arg: str, roots: Iterable[Path]) -> bool:
    if "::" in arg:
        return False
    try:
        path = Path(arg).expanduser()
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    except (OSError, RuntimeError):
        return False
    return path in set(roots)


def narrowing(config: pytest.Config, collection_errors: list[str], initial_args: list[str]) -> str | None:
    """Why this collection may not hold every test of a stage, or ``None`` when it is complete."""
    reasons = []
    if collection_errors:
        reasons.append(f"{len(collection_errors)} collection error(s) (first: {collection_errors[0]}): the tests "
                       "in that module were never collected")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        roots = {Path(config.invocation_params.dir).resolve(), Path(config.rootpath).resolve()}
        narrow = [a for a in initial_args if not _is_whole_root(a, roots)]
        if narrow:
            reasons.append(f"collection narrowed to {' '.join(narrow[:3])}{' ...' if len(narrow) > 3 else ''}")
    typed = _typed_args(config)
    ignores = [a for a in typed if a.split("=", 1)[0] in ("--ignore", "--ignore-glob")]
    if ignores:
        reasons.append(f"collection narrowed by {' '.join(ignores[:3])}")
    lfplugin = config.pluginmanager.get_plugin("lfplugin")
    if getattr(config.option, "lf", False) and getattr(lfplugin, "lastfailed", None):
        reasons.append("--lf collects only the files of the last failures")
    if not reasons:
        return None
    return "; ".join(reasons) + ": a stage counts only from a complete collection"


def build_scopes(collected: Mapping[str, str], selected: Iterable[str], why: str,
                 narrowed: str | None) -> dict[str, StageScope]:
    """One scope per stage from ``collected`` (node id -> stage, before selection) and the ids still ``selected``."""
    kept = set(selected)
    expected: dict[str, set[str]] = {}
    deselected: dict[str, dict[str, str]] = {}
    for nodeid, stage in collected.items():
        expected.setdefault(stage, set()).add(nodeid)
        if nodeid not in kept:
            deselected.setdefault(stage, {})[nodeid] = why
    return {stage: StageScope(frozenset(ids), deselected.get(stage, {}), narrowed) for stage, ids in expected.items()}
