"""The ledger's schema: every kind of record a cutover writes, declared once.

Each kind is a pydantic model of the fields its readers rely on (the gate, ``cutover status``, the
report, Week 1).  :class:`~pytest_cutover.ledger.Ledger` validates every record against its kind when it
is appended *and* when it is read back, so a writer that drops a field fails where it writes, and a
hand-edited or foreign line fails naming the file and line instead of turning into a wrong verdict.
Fields a kind does not declare are kept (``extra="allow"``): records carry evidence beyond the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pytest_cutover.stages import STAGES, VERDICTS

__all__ = ["KINDS", "RecordError", "declared_kinds", "validate_record"]

Stage = Literal[STAGES]  # type: ignore[valid-type]
Verdict = Literal[VERDICTS]  # type: ignore[valid-type]


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    kind: str


class StageRecord(_Record):
    """One stage's verdict in one invocation (written by the plugin; read by the gate)."""

    stage: Stage
    verdict: Verdict
    invocation: str | None = None
    reason: str | None = None
    first_failure: str | None = None
    forced: str | None = None
    counts: dict[str, int] = {}
    tests: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    not_run: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}


class NotificationRecord(_Record):
    """One delivery of one event to one channel."""

    event: str
    channel: str
    ok: bool


class ActionRecord(_Record):
    """One action that changed the world (maintenance, env switch, restart...)."""

    action: str
    ok: bool
    detail: str = ""


class RollbackRecord(_Record):
    """One step of the runbook's rollback."""

    step: str
    ok: bool
    detail: str = ""


class TriggerRecord(_Record):
    """A rollback trigger that fired, with its evidence."""

    name: str
    evidence: str


class MigrationRecord(_Record):
    """One ``cutover migrate`` step run on its own.

    ``mode`` says which kind of pass it was: ``full`` (everything, inside the window), ``presync`` (Day 7,
    app live: everything, index built, checkpoint digests kept) or ``delta`` (the final sync after a
    pre-sync: only what changed).  The precutover freshness check and ``cutover plan`` read it.

    ``figures`` keys that ``cutover plan`` may rely on (stable; seconds are wall-clock on the machine that ran):

    - ``at``: ISO UTC time the step finished; ``items``: points (vectors) or rows (blobs) read this run;
      ``sent``: those sent to the target (a delta: only the changed ones);
    - ``read_s`` (vectors: the reader's scroll + screening time; blobs: ``null``, not separable),
      ``write_s`` (vectors: the writer's COPY/UPDATE/commit time; blobs: upload + read-back),
      ``migrate_s`` (vectors: the engine's wall time, read and write overlapping), ``index_s`` (HNSW build;
      ``0.0`` when kept), ``verify_s`` (bit-exact / read-back verification), ``parity_s`` (search parity, when
      run), ``total_s`` (the whole step), ``items_per_s`` (``items / migrate_s``; blobs: sent per second);
    - a ``delta`` also has ``added``, ``changed`` (vector, checked payload, or refused before and sent again),
      ``deleted`` (gone from the source since the pre-sync), ``unchanged`` and ``presync_at``; vectors add the
      breakdown ``delta`` (``added``, ``changed_vector``, ``changed_payload``, ``retried``, ``unchanged``,
      ``deleted``, ``cleared``: rows whose embedding this invocation removed);
    - vectors also: ``round_trips`` (exchanges with the target), ``points``, ``migrated``, ``rejected``,
      ``missing``, ``bit_exact``, ``hnsw_build_s``; a delta adds ``pinned`` and ``pin_s`` (rows hashed with
      their tuple version while the reader opened the source) and ``verified_by_pin`` (of ``bit_exact``, the
      rows whose tuple had not changed since, so not hashed again).
    """

    step: str
    ok: bool
    mode: Literal["full", "presync", "delta"] = "full"
    figures: dict[str, Any] = {}
    options: dict[str, Any] = {}  # the step's own settings (mode asked, resume, who ran it); ``args`` is argv


class PlanRecord(_Record):
    """The night's plan as ``cutover plan`` made it (pytest_cutover.plan): the report and ``cutover status``
    compare the night against the latest one made before it began."""

    steps: list[dict[str, Any]]
    total_s: float | None = None
    fits: bool | None = None


class MonitorRecord(_Record):
    """The monitor window's summary (figures, criteria, triggers)."""

    window: int | str
    figures: dict[str, Any] = {}


class MonitorWindowRecord(_Record):
    """One monitor pass, for the rolling Week-1 window."""

    window: int | str
    ok: bool
    samples: int


class AckRecord(_Record):
    """Someone acknowledged the report."""

    who: str
    at: str


class NoteRecord(_Record):
    """A note for the report."""

    text: str


class FiguresRecord(_Record):
    """Figures measured outside a stage (a section of the report)."""

    figures: dict[str, Any]
    section: str | None = None


class DecommissionRecord(_Record):
    """Who decided to decommission the old side, and whether it was ready or forced."""

    decided_by: str


class ReachabilityRecord(_Record):
    """The live check that the old database and Qdrant are still reachable and unchanged."""

    ok: bool


class ConfigRecord(_Record):
    """The effective config of a run, redacted (pytest_cutover.report.effective): the report rebuilds from it."""

    config_hash: str | None
    settings: dict[str, Any]
    hosts: dict[str, str] = {}
    path: str | None = None


KINDS: Mapping[str, type[_Record]] = {
    "stage": StageRecord,
    "notification": NotificationRecord,
    "action": ActionRecord,
    "rollback": RollbackRecord,
    "trigger": TriggerRecord,
    "migration": MigrationRecord,
    "plan": PlanRecord,
    "monitor": MonitorRecord,
    "monitor-window": MonitorWindowRecord,
    "ack": AckRecord,
    "note": NoteRecord,
    "figures": FiguresRecord,
    "decommission": DecommissionRecord,
    "week1-reachability": ReachabilityRecord,
    "config": ConfigRecord,
}


class RecordError(ValueError):
    """A record that does not match its declared kind (the message names the kind and the fields, not values)."""


def declared_kinds() -> list[str]:
    """Every kind a ledger may hold."""
    return sorted(KINDS)


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise :class:`RecordError` unless ``record`` is a declared kind with the fields its readers need."""
    kind = record.get("kind")
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise RecordError(f"undeclared record kind {kind!r} (declared: {', '.join(declared_kinds())})")
    try:
        model.model_validate(dict(record))
    except ValidationError as exc:
        # Field names and error types only: the values may be secrets.
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(record)'}: {e['msg']}" for e in exc.errors())
        raise RecordError(f"a {kind!r} record does not match its schema: {fields}") from None
