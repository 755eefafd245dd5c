"""The run ledger: ``reports/<run>/ledger.jsonl``, append-only, one JSON record a line.

Every record is redacted, then written with one ``os.write`` on an ``O_APPEND``
descriptor under an exclusive ``flock``, so concurrent writers (xdist workers, a
second terminal, the monitor) never tear a line.  Reading validates every line:
a corrupt or truncated line is a :class:`LedgerError` naming the file and the
line, never skipped.

Gating reads :meth:`Ledger.stage_verdicts`: the latest record of each stage,
where a record of an earlier stage invalidates the verdicts of every later one
(re-running ``sync`` means ``switch`` must run again).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_cutover.errors import ConfigError, LedgerError
from pytest_cutover.redact import redact_obj
from pytest_cutover.stages import NOT_RUN, STAGES, PriorVerdict, stage_index

__all__ = ["LEDGER_NAME", "SCHEMA_VERSION", "Ledger", "check_run_id", "iso_utc", "run_dir"]

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
        line = (json.dumps(stamped, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                written = os.write(fd, line)
                if written != len(line):  # pragma: no cover - a full disk
                    raise LedgerError(f"{self.path}: short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return stamped

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            try:
                data = fh.read()
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        lines = data.split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if number == len(lines):
                if raw.strip():
                    raise LedgerError(
                        f"{self.path} line {number} is truncated (no newline at the end): a write was cut off",
                        hint="inspect that line, move it aside, and re-run the stage it belonged to",
                    )
                return
            yield number, raw

    def records(self) -> list[dict[str, Any]]:
        """Every record, in order; raises :class:`LedgerError` on the first bad line."""
        out = []
        for number, raw in self._lines():
            if not raw.strip():
                raise LedgerError(f"{self.path} line {number} is empty", hint="the ledger is append-only JSON lines")
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise LedgerError(
                    f"{self.path} line {number} is not valid JSON ({exc.__class__.__name__}: {exc})",
                    hint="inspect that line; the ledger is never repaired silently",
                ) from None
            if not isinstance(record, dict) or "kind" not in record or "v" not in record:
                raise LedgerError(f"{self.path} line {number} is not a ledger record (no 'kind' or 'v')")
            if record["v"] > SCHEMA_VERSION:
                raise LedgerError(f"{self.path} line {number} has schema version {record['v']}, newer than this tool")
            if record["kind"] == "stage" and record.get("stage") not in STAGES:
                raise LedgerError(f"{self.path} line {number}: unknown stage {record.get('stage')!r}")
            out.append(record)
        return out

    def stage_records(self) -> dict[str, dict[str, Any]]:
        """The effective record per stage: the latest one, invalidated by a later record of an earlier stage."""
        effective: dict[str, dict[str, Any]] = {}
        for record in self.records():
            if record["kind"] != "stage" or record.get("verdict") == NOT_RUN:
                continue
            stage = record["stage"]
            effective[stage] = record
            for later in STAGES[stage_index(stage) + 1 :]:
                effective.pop(later, None)
        return effective

    def stage_verdicts(self) -> dict[str, PriorVerdict]:
        """What gating needs: verdict, first failure and reason of each effective stage record."""
        return {
            stage: PriorVerdict(rec["verdict"], rec.get("first_failure"), rec.get("reason"))
            for stage, rec in self.stage_records().items()
        }
