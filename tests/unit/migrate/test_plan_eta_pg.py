"""``cutover status``'s ETA of the running migration, read from a real checkpoint (plan/progress.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pytest_cutover.plan.progress import migration_eta


@pytest.mark.integration
def test_the_eta_comes_from_the_checkpoint_of_the_run(make_world) -> None:
    from pytest_cutover.migrate.api import vectors

    world = make_world(60)
    config = world.config()
    now = datetime.now(UTC)
    assert "no migration has started" in (migration_eta(config, "eta-run", now, 120, now).reason or "") or \
        "no checkpoint of run eta-run" in (migration_eta(config, "eta-run", now, 120, now).reason or "")
    outcome = vectors(config, "eta-run", index=False, parity=False)
    assert outcome.ok, outcome.messages
    eta = migration_eta(config, "eta-run", now - timedelta(seconds=10), 120, now)
    # 60 of 120 points in 10 s: 6 points/s, 60 left, 10 s
    assert (eta.done, eta.total, eta.points_per_s, eta.remaining_s, eta.reason) == (60, 120, 6.0, 10.0, None)
    other = migration_eta(config, "another-run", now, 120, now)
    assert other.reason == "no checkpoint of run another-run yet: the migration has not committed a batch"
