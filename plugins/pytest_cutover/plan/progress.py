"""The running migration's ETA for ``cutover status``: its checkpoint's progress over the time since it began.

The vector migration commits a checkpoint with its accounting after every batch (migrate/sink.py); the
points it has read so far over the seconds since the final sync began give its rate, and the points left
at that rate its ETA.  Reading the checkpoint needs the target database (``target.database_url``, with
the config's connect timeout); when it cannot be read, the ETA is omitted with the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["Eta", "eta_from", "migration_eta"]


@dataclass(frozen=True)
class Eta:
    """Progress of the running migration, or why there is none (``reason``)."""

    done: int | None = None
    total: int | None = None
    points_per_s: float | None = None
    remaining_s: float | None = None
    finish: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        from pytest_cutover.plan.estimate import duration_text

        if self.reason:
            return f"final sync ETA: omitted: {self.reason}"
        return (f"final sync ETA: {self.done} of {self.total} points read at {self.points_per_s:.1f} points/s: "
                f"{duration_text(self.remaining_s)} left, done about {self.finish}")


def eta_from(done: int, total: int | None, started: datetime, now: datetime) -> Eta:
    """Pure: ``done`` of ``total`` points since ``started``: the rate so far and the time left at that rate."""
    if total is None:
        return Eta(done=done, reason="the number of points is unknown (no precutover count recorded)")
    elapsed = (now - started).total_seconds()
    if done <= 0 or elapsed <= 0:
        return Eta(done=done, total=total, reason="no batch committed yet: no rate to extrapolate")
    rate = done / elapsed
    remaining = max(0, total - done) / rate
    finish = (now + timedelta(seconds=remaining)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Eta(done=done, total=total, points_per_s=round(rate, 3), remaining_s=round(remaining, 3), finish=finish)


async def _checkpoint_points(config: CutoverConfig, run: str) -> int | None:
    import asyncpg

    from pytest_cutover.migrate.api import vector_schema
    from pytest_cutover.migrate.sink import VectorSink, connect_target
    from pytest_cutover.redact import reveal

    conn = await connect_target(reveal(config.target.database_url), timeout=config.thresholds.connect_timeout_s,
                                app_database_url=reveal(config.target.app_database_url))
    try:
        sink = VectorSink(conn, vector_schema(config), run)
        try:
            checkpoint = await sink.load_checkpoint()
        except asyncpg.UndefinedTableError:
            # the engine keeps its state in public when it may not create [migrate] state_schema
            sink.use_state_schema("public")
            checkpoint = await sink.load_checkpoint()
    finally:
        await conn.close()
    if checkpoint is None:
        return None
    return int((checkpoint.state or {}).get("points", 0))


def migration_eta(config: CutoverConfig | None, run: str, started: datetime, total: int | None,
                  now: datetime) -> Eta:
    """The ETA of ``run``'s vector migration from its checkpoint, or an :class:`Eta` with the reason it cannot
    be given."""
    if config is None or config.target.database_url is None:
        return Eta(reason="no target.database_url in the config: the checkpoint lives in the target database")
    import asyncpg

    from pytest_cutover.checks.base import run_sync
    from pytest_cutover.errors import CutoverError
    from pytest_cutover.redact import redact

    try:
        done = run_sync(_checkpoint_points(config, run), timeout=config.thresholds.connect_timeout_s * 2 + 5)
    except asyncpg.UndefinedTableError:
        return Eta(reason="the target holds no migration checkpoint table yet: no migration has started there")
    except CutoverError as exc:
        return Eta(reason=f"the checkpoint cannot be read: {redact(exc)}")
    except Exception as exc:  # asyncpg: the state tables do not exist yet, permissions
        return Eta(reason=f"the checkpoint cannot be read: {type(exc).__name__}: {redact(exc)}")
    if done is None:
        return Eta(reason=f"no checkpoint of run {run} yet: the migration has not committed a batch")
    return eta_from(done, total, started, now)
