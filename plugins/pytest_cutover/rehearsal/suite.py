"""How a rehearsal starts the acceptance suite: where it is and the pytest arguments for one run.

One place for both callers: ``cutover rehearse`` runs the suite in its own process, the fault
matrix runs it in a subprocess against a stack it keeps up between faults.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pytest_cutover.stages import STAGES

__all__ = ["find_suite", "stages_until", "suite_args"]


def find_suite(explicit: Path | None = None) -> Path:
    """The acceptance suite: ``--suite``, else ``./tests/cutover``, else the one beside this package."""
    from pytest_cutover.errors import ConfigError

    candidates = [explicit] if explicit else [Path.cwd() / "tests" / "cutover",
                                               Path(__file__).resolve().parents[3] / "tests" / "cutover"]
    for path in candidates:
        if path is not None and path.is_dir():
            return path.resolve()
    raise ConfigError("cannot find the acceptance suite (tests/cutover)",
                      hint="run from the project root or pass --suite")


def stages_until(until: str | None) -> list[str]:
    """The stages up to and including ``until`` (all of them when None)."""
    return list(STAGES[: STAGES.index(until) + 1] if until else STAGES)


def suite_args(suite_dir: Path, config_path: Path, *, run: str, reports_dir: Path, stages: Sequence[str],
               auto_rollback: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """pytest arguments for one run of ``stages`` of the suite against the stack's ``config_path``."""
    run_dir = reports_dir / run
    return [str(suite_dir), "-p", "no:cacheprovider", "-q", "-rfEs",
            "-W", "ignore::pytest.PytestAssertRewriteWarning",
            f"--cutover-config={config_path}", f"--cutover-run={run}", f"--cutover-reports-dir={reports_dir}",
            "-m", " or ".join(stages), f"--junitxml={run_dir / 'junit.xml'}",
            f"--alluredir={run_dir / 'allure-results'}", *(["--cutover-auto-rollback"] if auto_rollback else []),
            *extra]
