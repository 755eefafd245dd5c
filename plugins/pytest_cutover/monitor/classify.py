"""Parse one application log line and classify it into the runbook's categories: pure.

Step 6 of the runbook greps ``ERROR|WARNING|CRITICAL`` and looks for database
connection errors, RLS context errors, vector search timeouts and storage access
errors.  :func:`parse_line` reads JSON lines (``{"level", "msg", "category"?,
"status"?, "path"?}``, also after a ``docker compose``/``journalctl`` prefix) or
plain text with a level word; :func:`classify_message` matches the message
against patterns written from real asyncpg, SQLAlchemy, PgBouncer, httpx and
storage3 messages.  The order matters: storage first (its errors may mention
row-level security or a refused connection, but on a storage URL), then database
connection, RLS context, vector search timeout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pytest_cutover.monitor.samples import DB_CONNECTION, RLS_CONTEXT, STORAGE_ACCESS, VECTOR_SEARCH_TIMEOUT

__all__ = ["CATEGORY_ALIASES", "LogEvent", "classify_message", "normalise_level", "parse_line"]

_LEVEL_WORD = re.compile(r"\b(DEBUG|INFO|NOTICE|WARNING|WARN|ERROR|ERR|CRITICAL|FATAL|PANIC|LOG)\b")
_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "NOTICE": "INFO", "LOG": "INFO", "WARNING": "WARNING",
           "WARN": "WARNING", "ERROR": "ERROR", "ERR": "ERROR", "CRITICAL": "CRITICAL", "FATAL": "CRITICAL",
           "PANIC": "CRITICAL"}
_ACCESS = re.compile(r'"(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})\b')

CATEGORY_ALIASES = {
    DB_CONNECTION: DB_CONNECTION, "db": DB_CONNECTION, "database": DB_CONNECTION, "db_connection": DB_CONNECTION,
    "db-connection": DB_CONNECTION, "database_connection": DB_CONNECTION,
    RLS_CONTEXT: RLS_CONTEXT, "rls": RLS_CONTEXT, "rls_context": RLS_CONTEXT,
    VECTOR_SEARCH_TIMEOUT: VECTOR_SEARCH_TIMEOUT, "vector_search_timeout": VECTOR_SEARCH_TIMEOUT,
    "search_timeout": VECTOR_SEARCH_TIMEOUT, "search-timeout": VECTOR_SEARCH_TIMEOUT,
    STORAGE_ACCESS: STORAGE_ACCESS, "storage": STORAGE_ACCESS, "storage_access": STORAGE_ACCESS,
}

_STORAGE_WHERE = re.compile(
    r"/storage/v1/|\bstorage3\b|StorageApiError|StorageException|bucket not found|object not found"
    r"|\bstorage\b|\bbucket\b", re.I)
_STORAGE_WHAT = re.compile(
    r"error|fail|denied|forbidden|unauthori[sz]ed|\b40[134]\b|\b5\d\d\b|not found|refused|timed? ?out|exception"
    r"|row-level security", re.I)
_DB_CONNECTION = re.compile(
    r"ConnectionDoesNotExistError|connection was closed in the middle of operation|CannotConnectNowError"
    r"|TooManyConnectionsError|too many (?:clients|connections)|ConnectionFailureError|AdminShutdownError"
    r"|terminating connection due to administrator command|the database system is (?:starting up|shutting down"
    r"|in recovery mode)|could not connect to (?:the )?server|connection to server at .* failed"
    r"|Connect call failed|connection refused|no more connections allowed|server login has been failing"
    r"|query_wait_timeout|server conn crashed|pooler error|QueuePool limit of size .* reached"
    r"|server closed the connection unexpectedly|connection is closed|SSL connection has been closed"
    r"|password authentication failed|database connection (?:error|failed|lost|refused)", re.I)
_RLS_CONTEXT = re.compile(
    r"row-level security|row level security|\bRLS\b|unrecognized configuration parameter \"?app\."
    r"|current_org_id|current_user_id|invalid input syntax for type uuid: \"\""
    r"|permission denied for (?:table|relation|schema)|tenant context", re.I)
_TIMEOUT = re.compile(r"timed? ?out|timeout|QueryCanceledError|canceling statement", re.I)
_VECTOR = re.compile(r"vector|search|qdrant|embedding|<=>|\bhnsw\b|memory_fragments|similarity|nearest", re.I)


@dataclass(frozen=True)
class LogEvent:
    """One parsed log line: its level (normalised), message, category and HTTP status if any."""

    level: str | None
    message: str
    category: str | None = None
    status: int | None = None
    path: str | None = None

    @property
    def is_error(self) -> bool:
        return self.level in ("ERROR", "CRITICAL")


def normalise_level(word: str | None) -> str | None:
    """``WARN`` -> ``WARNING``, ``FATAL`` -> ``CRITICAL``; ``None`` for anything unknown."""
    return _LEVELS.get(str(word).upper()) if word else None


def classify_message(message: str) -> str | None:
    """The runbook category of an error message, or ``None``."""
    if _STORAGE_WHERE.search(message) and _STORAGE_WHAT.search(message):
        return STORAGE_ACCESS
    if _DB_CONNECTION.search(message):
        return DB_CONNECTION
    if _RLS_CONTEXT.search(message):
        return RLS_CONTEXT
    if _TIMEOUT.search(message) and _VECTOR.search(message):
        return VECTOR_SEARCH_TIMEOUT
    return None


def _from_json(text: str) -> LogEvent | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        data = json.loads(text[start:])
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    level = normalise_level(data.get("level") or data.get("levelname") or data.get("severity"))
    message = " ".join(str(data[k]) for k in ("msg", "message", "error", "exc_info", "exception")
                       if data.get(k)) or text[start:]
    status = data.get("status", data.get("status_code"))
    status = int(status) if isinstance(status, int | str) and str(status).isdigit() else None
    category = CATEGORY_ALIASES.get(str(data.get("category") or "").lower())
    return LogEvent(level, message, category, status, data.get("path"))


def parse_line(line: str) -> LogEvent:
    """Parse one line (JSON or plain text) and classify it.

    Only lines at WARNING or above, or without a level (a traceback's last line),
    get a category from the message; an explicit ``category`` field wins.
    """
    text = line.rstrip("\r\n")
    event = _from_json(text)
    if event is None:
        found = _LEVEL_WORD.search(text)
        access = _ACCESS.search(text)
        event = LogEvent(normalise_level(found.group(1)) if found else None, text, None,
                         int(access["status"]) if access else None, access["path"] if access else None)
    if event.category is None and event.level not in ("DEBUG", "INFO"):
        category = classify_message(event.message)
        if category:
            event = LogEvent(event.level, event.message, category, event.status, event.path)
    return event
