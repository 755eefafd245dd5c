"""The acceptance suite: one module per stage, every runbook item a test.

It ships inside the package so that ``pip install pytest-cutover`` and ``pytest -m precutover`` in a
directory holding a ``cutover.toml`` run it: the plugin adds these modules to the collection (see
:mod:`pytest_cutover.scope`), next to the user's own tests carrying a stage marker, which join the
same gate.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SUITE_DIR", "SUITE_NODE_PREFIX", "suite_modules"]

SUITE_DIR = Path(__file__).resolve().parent
# Node ids of the packaged tests, stable wherever the package is installed (``-k`` and ``--deselect`` use them).
SUITE_NODE_PREFIX = "pytest_cutover/suite"


def suite_modules() -> list[Path]:
    """The suite's test modules, in stage order (file order within a stage is kept by collection)."""
    return sorted(SUITE_DIR.glob("test_*.py"))
