"""How a rehearsal starts the acceptance suite: the way an operator does, from a directory of their own.

The suite ships inside the package (:mod:`pytest_cutover.suite`); the plugin adds it to the collection
when a cutover config is given.  A rehearsal therefore runs pytest in an operator directory (empty by
default, or ``--suite DIR`` holding the team's own staged tests) with ``--cutover-config``, exactly
like ``pytest -m precutover`` on the night.  One place for both callers: ``cutover rehearse`` runs the
suite in its own process, the fault matrix runs it in a subprocess against a stack it keeps up.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from pytest_cutover.errors import ConfigError
from pytest_cutover.stages import STAGES

__all__ = ["operator_dir", "stages_until", "suite_args"]


def operator_dir(explicit: Path | None, fallback: Path) -> Path:
    """Where pytest runs: ``--suite DIR`` (the team's own staged tests join the packaged suite), else ``fallback``."""
    if explicit is None:
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback.resolve()
    if not explicit.is_dir():
        raise ConfigError(f"--suite {explicit} is not a directory",
                          hint="pass the folder holding your own staged tests, or leave --suite out")
    return explicit.resolve()


def stages_until(until: str | None) -> list[str]:
    """The stages up to and including ``until`` (all of them when None)."""
    return list(STAGES[: STAGES.index(until) + 1] if until else STAGES)


def suite_args(workdir: Path, config_path: Path, *, run: str, reports_dir: Path, stages: Sequence[str],
               auto_rollback: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """pytest arguments for one run of ``stages`` from ``workdir`` (its own rootdir) against ``config_path``."""
    run_dir = reports_dir / run
    return [str(workdir), f"--rootdir={workdir}", "--cutover-suite=packaged", "-p", "no:cacheprovider", "-q",
            "-rfEs", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            f"--cutover-config={config_path}", f"--cutover-run={run}", f"--cutover-reports-dir={reports_dir}",
            "-m", " or ".join(stages), f"--junitxml={run_dir / 'junit.xml'}",
            f"--alluredir={run_dir / 'allure-results'}", *(["--cutover-auto-rollback"] if auto_rollback else []),
            *_quiet_asyncio(), *extra]


def _quiet_asyncio() -> list[str]:
    """pytest-asyncio (where installed: the test extra) warns in an operator folder without an ini; say the default."""
    if importlib.util.find_spec("pytest_asyncio") is None:
        return []
    return ["-o", "asyncio_default_fixture_loop_scope=function"]
