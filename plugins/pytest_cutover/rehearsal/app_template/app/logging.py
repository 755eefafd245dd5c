"""Structured logs: one JSON object per line in LOG_FILE.

Line shape: ``{"ts", "level", "logger", "msg", "category"?, "path"?, "status"?, "ms"?}``.  ``category``
names the kinds of trouble the runbook's monitoring step looks for (STEP 6, "What to look for"):
database connection errors, RLS context errors, vector search timeouts and storage access errors.
Passwords inside URLs are masked before a line is written.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "DB_CONNECTION",
    "RLS_CONTEXT",
    "STORAGE_ACCESS",
    "VECTOR_SEARCH_TIMEOUT",
    "JsonLineFormatter",
    "configure_logging",
    "log_event",
]

DB_CONNECTION = "database-connection"
RLS_CONTEXT = "rls-context"
VECTOR_SEARCH_TIMEOUT = "vector-search-timeout"
STORAGE_ACCESS = "storage-access"
CATEGORIES = (DB_CONNECTION, RLS_CONTEXT, VECTOR_SEARCH_TIMEOUT, STORAGE_ACCESS)

_FIELDS = ("category", "path", "status", "ms")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


class JsonLineFormatter(logging.Formatter):
    """Format a record as one JSON line (UTC ISO timestamp, level name, logger, message, extra fields)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            msg = f"{msg}: {type(exc).__name__}: {exc}"
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": _URL_PASSWORD.sub(r"\1***@", msg),
        }
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = value
        return json.dumps(line, ensure_ascii=False)


def configure_logging(log_file: Path | None, level: int = logging.INFO) -> None:
    """Send the ``app`` loggers to ``log_file`` as JSON lines (and nowhere else); idempotent."""
    root = logging.getLogger("app")
    root.setLevel(level)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler()
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(JsonLineFormatter())
    root.addHandler(handler)


def log_event(logger: logging.Logger, level: int, msg: str, *, category: str | None = None,
              path: str | None = None, status: int | None = None, ms: float | None = None) -> None:
    """Log one line with the structured fields set (``None`` fields are left out)."""
    logger.log(level, msg, extra={"category": category, "path": path, "status": status,
                                  "ms": None if ms is None else round(ms, 1)})
