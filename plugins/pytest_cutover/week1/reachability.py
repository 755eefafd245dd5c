"""Live check: the old database and Qdrant are still reachable, and unchanged, for a rollback.

Until the old infrastructure is decommissioned the runbook's quick rollback ("switch back to
old database URL") must stay possible: the old database answers and still holds the fragments
it held at precutover, and the Qdrant collection still holds its points.  The counts are
compared with the precutover stage's figures (``memory_fragments``, ``qdrant_points``) when the
ledger has them.  The result is appended to the ledger as a ``week1-reachability`` record, which
:func:`pytest_cutover.week1.checks.decommission_ready` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.ledger import iso_utc
from pytest_cutover.redact import redact
from pytest_cutover.week1.checks import REACHABILITY

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig
    from pytest_cutover.ledger import Ledger

__all__ = ["Probe", "Reachability", "baseline_counts", "check_reachability", "missing_source_key",
           "record_reachability"]


@dataclass(frozen=True)
class Probe:
    """One side of the old infrastructure: reachable and unchanged (``ok``), with evidence."""

    ok: bool
    evidence: str
    count: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "evidence": redact(self.evidence), "count": self.count}


@dataclass(frozen=True)
class Reachability:
    at: str
    old_database: Probe
    qdrant: Probe

    @property
    def ok(self) -> bool:
        return self.old_database.ok and self.qdrant.ok

    def record(self) -> dict[str, Any]:
        return {"kind": REACHABILITY, "at": self.at, "ok": self.ok, "old_database": self.old_database.as_dict(),
                "qdrant": self.qdrant.as_dict()}


def baseline_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """``memory_fragments`` and ``qdrant_points`` from the latest precutover stage record that has them."""
    out: dict[str, int] = {}
    for rec in records:
        if rec.get("kind") == "stage" and rec.get("stage") == "precutover":
            figures = rec.get("figures") or {}
            for key in ("memory_fragments", "qdrant_points"):
                if isinstance(figures.get(key), int):
                    out[key] = figures[key]
    return out


def _compare(what: str, count: int, baseline: int | None, where: str) -> Probe:
    if baseline is None:
        return Probe(True, f"{where}: reachable, {count} {what} (no precutover count to compare)", count)
    if count != baseline:
        return Probe(False, f"{where}: reachable but changed: {count} {what}, {baseline} at precutover", count)
    return Probe(True, f"{where}: reachable, {count} {what}, as at precutover", count)


def _old_database(config: CutoverConfig, baseline: int | None) -> Probe:
    from pytest_cutover.checks.base import run_sync
    from pytest_cutover.checks.db import config_connection
    from pytest_cutover.util.sql import quote_ident

    table = config.schema_.fragments_table

    async def count() -> int:
        async with config_connection(config, "source.database_url") as conn:
            return int(await conn.fetchval(f"select count(*) from {quote_ident(table)}"))

    try:
        found = run_sync(count(), timeout=config.thresholds.connect_timeout_s * 3)
    except (CutoverError, OSError, TimeoutError) as exc:
        return Probe(False, f"old database (source.database_url) not reachable: {redact(exc)}")
    except Exception as exc:  # asyncpg.PostgresError: the table is gone
        return Probe(False, f"old database (source.database_url) answered but counting {table} failed: "
                            f"{exc.__class__.__name__}: {redact(exc)}")
    return _compare(f"rows in {table}", found, baseline, "old database")


def _qdrant(config: CutoverConfig, baseline: int | None) -> Probe:
    from pytest_cutover.checks.counts import qdrant_info

    try:
        info = qdrant_info(config)
    except Exception as exc:  # CutoverError, SourceError, a client error: every failure means "not reachable"
        return Probe(False, f"qdrant collection {config.source.collection} not reachable: "
                            f"{exc.__class__.__name__}: {redact(exc)}")
    return _compare(f"points in {config.source.collection}", info.points, baseline, "qdrant")


def missing_source_key(config: CutoverConfig | None) -> str | None:
    """The first config key the live check needs that is not set, or ``None``."""
    if config is None or not config.source.database_url:
        return "source.database_url"
    if not (config.source.qdrant_url or config.source.qdrant_path):
        return "source.qdrant_url"
    return None


def check_reachability(config: CutoverConfig, records: Sequence[Mapping[str, Any]] = ()) -> Reachability:
    """Reach the old database and Qdrant now; compare their counts with the precutover figures in ``records``.

    Raises :class:`~pytest_cutover.errors.ConfigError` naming the missing key when the config does not
    say where the old side is (nothing is checked, nothing recorded).
    """
    missing = missing_source_key(config)
    if missing:
        raise ConfigError(f"missing config key {missing}: the old infrastructure cannot be checked",
                          hint="set [source] database_url and qdrant_url (or qdrant_path) in cutover.toml")
    baseline = baseline_counts(records)
    return Reachability(iso_utc(), _old_database(config, baseline.get("memory_fragments")),
                        _qdrant(config, baseline.get("qdrant_points")))


def record_reachability(ledger: Ledger, result: Reachability, stamp: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Append the live check to the run's ledger (the decommission check reads it)."""
    return ledger.append({**dict(stamp or {}), **result.record()})
