"""A session fixture around :class:`~pytest_cutover.rehearsal.stack.EmbeddedStack` (opt-in plugin).

Enable it with ``-p pytest_cutover.rehearsal.fixtures`` (or ``pytest_plugins`` in a root conftest):
tests then ask for ``embedded_stack`` and get one running stack for the whole session, stopped at
the end (also on Ctrl-C).  Not registered by default, because building a stack takes seconds and
most pytest runs (the cutover itself) must never start one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_cutover.rehearsal.stack import EmbeddedStack

__all__ = ["embedded_stack", "pytest_addoption"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover")
    group.addoption("--cutover-rehearsal-fault", dest="cutover_rehearsal_faults", action="append", default=[],
                    metavar="NAME", help="plant this fault in the embedded_stack fixture (repeatable)")
    group.addoption("--cutover-rehearsal-size", dest="cutover_rehearsal_size", default="small", metavar="SIZE",
                    help="seed size of the embedded_stack fixture: small (default) or large")
    group.addoption("--cutover-rehearsal-keep", dest="cutover_rehearsal_keep", action="store_true",
                    help="keep the embedded_stack fixture's folder after the session")
    group.addoption("--cutover-rehearsal-no-services", dest="cutover_rehearsal_services", action="store_false",
                    help="embedded_stack without the app and storage (database, Qdrant and poolers only)")


@pytest.fixture(scope="session")
def embedded_stack(pytestconfig: pytest.Config) -> Iterator[EmbeddedStack]:
    """One running embedded rehearsal stack for the session: ``.urls``, ``.config_path``, ``.plant(name)``.

    Its folder is a fresh temp folder (not under pytest's basetemp: the database and PgBouncer run as
    another system user that must traverse it).  ``--cutover-rehearsal-fault NAME`` plants faults.
    """
    from pytest_cutover.rehearsal.stack import EmbeddedStack

    stack = EmbeddedStack(None, size=pytestconfig.getoption("cutover_rehearsal_size"),
                          faults=pytestconfig.getoption("cutover_rehearsal_faults"),
                          keep=pytestconfig.getoption("cutover_rehearsal_keep"),
                          services=pytestconfig.getoption("cutover_rehearsal_services"))
    with stack:
        yield stack
