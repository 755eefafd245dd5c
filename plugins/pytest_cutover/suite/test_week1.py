"""Post-Cutover (Week 1): the runbook's five follow-up items, judged from this run's ledger.

Run them any time after the night, as often as you like::

    pytest -m week1 --cutover-config cutover.toml --cutover-run prod-2026-11-26

A check that cannot be decided yet (the 24 hours or the 7 days have not passed, the BLOB
migration has not run) is skipped with ``pending: ...``; one that is false fails with its
evidence.  These tests are not a stage: they gate nothing and no stage waits for them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pytest_cutover.context import RunContext
from pytest_cutover.stages import FAILED, PASSED
from pytest_cutover.week1 import checks

pytestmark = pytest.mark.week1


@pytest.fixture(scope="module")
def judge(ctx: RunContext) -> Any:
    """``judge(check)``: evaluate one Week-1 check on the ledger now; fail on failed, skip on pending."""
    settings = checks.week1_settings(ctx.config)

    def verdict(check: Any) -> checks.CheckVerdict:
        result = check(ctx.ledger.records(), settings, datetime.now(UTC))
        if result.verdict == FAILED:
            pytest.fail(result.evidence, pytrace=False)
        if result.verdict != PASSED:
            pytest.skip(f"{result.verdict}: {result.evidence}")
        return result

    return verdict


@pytest.mark.runbook("Monitoring continued for 24 hours")
def test_monitoring_continued_for_24_hours(judge: Any) -> None:
    judge(checks.monitoring_coverage)


@pytest.mark.runbook("No critical issues found")
def test_no_critical_issues_found(judge: Any) -> None:
    judge(checks.no_critical_issues)


@pytest.mark.runbook("Error rates < 1%")
def test_error_rates_below_one_percent(judge: Any) -> None:
    judge(checks.error_rates_below)


@pytest.mark.runbook("BLOB migration script run (during low traffic)")
def test_blob_migration_run(judge: Any) -> None:
    judge(checks.blob_migration_run)


@pytest.mark.runbook("Old infrastructure decommissioned (after 7 days stable): the suite says when it is safe; a "
                     "person decides")
def test_old_infrastructure_decommission_ready(ctx: RunContext, needs: Any, judge: Any) -> None:
    from pytest_cutover.week1.reachability import check_reachability, record_reachability

    needs("source.database_url", "source.qdrant_url|source.qdrant_path")
    live = check_reachability(ctx.config, ctx.ledger.records())  # live: the old side must still answer
    record_reachability(ctx.ledger, live, ctx.stamp())
    assert live.ok, f"{live.old_database.evidence}; {live.qdrant.evidence}: a rollback would not be possible"
    judge(checks.decommission_ready)
