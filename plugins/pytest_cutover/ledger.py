"""The run ledger: ``reports/<run>/ledger.jsonl``, append-only, one JSON record a line.

Every record is redacted, then appended with :mod:`pytest_cutover.jsonl`'s discipline
(one ``os.write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``), so
concurrent writers (xdist workers, a second terminal, the monitor) never tear a line.  Reading validates every line:
a corrupt or truncated line is a :class:`LedgerError` naming the file and the
line, never skipped.

Gating reads :meth:`Ledger.stage_verdicts`: the latest record of each stage,
where a record of an earlier stage invalidates the verdicts of every later one
(re-running ``sync`` means ``switch`` must run again).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_cutover.errors import ConfigError, LedgerError
from pytest_cutover.jsonl import append_record, parse_lines
from pytest_cutover.records import RecordError, validate_record
from pytest_cutover.redact import redact_obj
from pytest_cutover.stages import NOT_RUN, STAGES, PriorVerdict, stage_index

__all__ = ["LEDGER_NAME", "SCHEMA_VERSION", "Ledger", "check_run_id", "effective_stage_records", "iso_utc", "run_dir"]

LEDGER_NAME = "ledger.jsonl"
SCHEMA_VERSION = 1
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def iso_utc(ts: float | None = None) -> str:
    """An ISO-8601 UTC timestamp with a ``Z`` suffix."""
    moment = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_run_id(run: str) -> str:
    """A run id is a folder name: letters, digits, ``.``, ``_`` and ``-``."""
    if not _RUN_ID.match(run or ""):
        raise ConfigError(
            f"run id {run!r} is not usable as a folder name",
            hint="use letters, digits, '.', '_' and '-', for example prod-2026-11-26",
        )
    return run


def effective_stage_records(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The effective record per stage among ``records`` (see :meth:`Ledger.stage_records`); pure, for readers
    that already hold the records (``cutover plan`` reads other runs' ledgers)."""
    effective: dict[str, dict[str, Any]] = {}
    for record in records:
        if record["kind"] != "stage" or record.get("verdict") == NOT_RUN:
            continue
        stage = record["stage"]
        effective[stage] = record
        for later in STAGES[stage_index(stage) + 1 :]:
            effective.pop(later, None)
    return effective


def run_dir(reports_dir: str | os.PathLike[str], run: str) -> Path:
    """``<reports_dir>/<run>``: where every artefact of one cutover lives."""
    return Path(reports_dir) / check_run_id(run)


class Ledger:
    """Append-only JSON-lines record of one cutover run."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @classmethod
    def for_run(cls, reports_dir: str | os.PathLike[str], run: str) -> Ledger:
        return cls(run_dir(reports_dir, run) / LEDGER_NAME)

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Redact ``record``, stamp it, and append it as one line, atomically."""
        stamped = {"v": SCHEMA_VERSION, "ts": iso_utc(), **redact_obj(dict(record))}
        if "kind" not in stamped:
            raise LedgerError("a ledger record needs a 'kind'")
        try:
            validate_record(stamped)
        except RecordError as exc:
            raise LedgerError(f"refusing to write to {self.path}: {exc}") from None
        append_record(self.path, stamped, error=LedgerError)
        return stamped

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order; raises :class:`LedgerError` on the first bad line."""
        out = []
        for number, record in parse_lines(self.path, error=LedgerError, what="the ledger"):
            if not isinstance(record, dict) or "kind" not in record or "v" not in record:
                raise LedgerError(f"{self.path} line {number} is not a ledger record (no 'kind' or 'v')")
            if record["v"] > SCHEMA_VERSION:
                raise LedgerError(f"{self.path} line {number} has schema version {record['v']}, newer than this tool")
            if record["kind"] == "stage" and record.get("stage") not in STAGES:
                raise LedgerError(f"{self.path} line {number}: unknown stage {record.get('stage')!r}")
            try:
                validate_record(record)
            except RecordError as exc:
                raise LedgerError(f"{self.path} line {number}: {exc}") from None
            out.append(record)
        return out

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every record of one declared kind, in order."""
        return [r for r in self.records() if r["kind"] == kind]

    def stage_records(self) -> dict[str, dict[str, Any]]:
        """The effective record per stage: the latest one, invalidated by a later record of an earlier stage."""
        return effective_stage_records(self.records())

    def stage_verdicts(self) -> dict[str, PriorVerdict]:
        """What gating needs: verdict, first failure and reason of each effective stage record."""
        return {
            stage: PriorVerdict(rec["verdict"], rec.get("first_failure"), rec.get("reason"))
            for stage, rec in self.stage_records().items()
        }
