"""Log lines from asyncpg, SQLAlchemy, PgBouncer, httpx, storage3 and the app, parsed and classified."""

from __future__ import annotations

import json

import pytest

from pytest_cutover.monitor.classify import classify_message, parse_line
from pytest_cutover.monitor.samples import DB_CONNECTION, RLS_CONTEXT, STORAGE_ACCESS, VECTOR_SEARCH_TIMEOUT

LINES = [
    # database connection errors
    ("asyncpg.exceptions.ConnectionDoesNotExistError: connection was closed in the middle of operation", DB_CONNECTION),
    ("asyncpg.exceptions.TooManyConnectionsError: sorry, too many clients already", DB_CONNECTION),
    ("asyncpg.exceptions.CannotConnectNowError: the database system is starting up", DB_CONNECTION),
    ("ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 6543)", DB_CONNECTION),
    ("sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server at \"db.abc.supabase.co\" "
     "(10.0.0.2), port 5432 failed: Connection refused", DB_CONNECTION),
    ("sqlalchemy.exc.TimeoutError: QueuePool limit of size 5 overflow 10 reached, connection timed out, "
     "timeout 30.00 (Background on this error at: https://sqlalche.me/e/20/3o7r)", DB_CONNECTION),
    ("sqlalchemy.exc.DBAPIError: (sqlalchemy.dialects.postgresql.asyncpg.Error) <class "
     "'asyncpg.exceptions.ConnectionDoesNotExistError'>: connection was closed in the middle of operation",
     DB_CONNECTION),
    ("asyncpg.exceptions.ProtocolViolationError: no more connections allowed (max_client_conn)", DB_CONNECTION),
    ("2026-11-26 09:47:01.123 UTC [1234] WARNING C-0x55d0c8: postgres/app_user@10.0.0.5:50412 pooler error: "
     "query_wait_timeout", DB_CONNECTION),
    ("2026-11-26 09:47:02.001 UTC [1234] LOG S-0x55d0c9: postgres/app_user@unix:5432 closing because: "
     "server conn crashed? (age=0s)", DB_CONNECTION),
    ("asyncpg.exceptions.AdminShutdownError: terminating connection due to administrator command", DB_CONNECTION),
    # RLS context errors
    ("asyncpg.exceptions.InsufficientPrivilegeError: new row violates row-level security policy for table "
     "\"threads\"", RLS_CONTEXT),
    ("asyncpg.exceptions.UndefinedObjectError: unrecognized configuration parameter \"app.current_org_id\"",
     RLS_CONTEXT),
    ("asyncpg.exceptions.InvalidTextRepresentationError: invalid input syntax for type uuid: \"\"", RLS_CONTEXT),
    ("sqlalchemy.exc.ProgrammingError: (sqlalchemy.dialects.postgresql.asyncpg.ProgrammingError) <class "
     "'asyncpg.exceptions.InsufficientPrivilegeError'>: permission denied for table memory_fragments", RLS_CONTEXT),
    # vector search timeouts
    ("asyncpg.exceptions.QueryCanceledError: canceling statement due to statement timeout [SQL: SELECT id, org_id, "
     "embedding <=> $1 AS distance FROM memory_fragments ORDER BY distance LIMIT $2]", VECTOR_SEARCH_TIMEOUT),
    ("httpx.ReadTimeout: timed out (POST http://qdrant:6333/collections/dac_memory/points/search)",
     VECTOR_SEARCH_TIMEOUT),
    ("vector search timed out after 5.0 s for org_0001", VECTOR_SEARCH_TIMEOUT),
    # storage access errors
    ("httpx.HTTPStatusError: Client error '403 Forbidden' for url 'https://abc.supabase.co/storage/v1/object/"
     "attachments/org_0001/3f2a/17/report.pdf'", STORAGE_ACCESS),
    ("storage3.exceptions.StorageApiError: {'statusCode': 404, 'error': 'not_found', 'message': 'Object not found'}",
     STORAGE_ACCESS),
    ("StorageException: {'statusCode': '403', 'error': 'Unauthorized', 'message': 'new row violates row-level "
     "security policy'}", STORAGE_ACCESS),
    ("httpx.ConnectError: [Errno 111] Connection refused (GET https://127.0.0.1:8443/storage/v1/object/attachments/x)",
     STORAGE_ACCESS),
    # not in a category
    ("ValueError: invalid literal for int() with base 10: 'abc'", None),
    ("canceling statement due to statement timeout", None),
    ("GET /api/threads 200 12.5 ms", None),
]


@pytest.mark.parametrize(("message", "category"), LINES, ids=[f"{c}-{i}" for i, (_, c) in enumerate(LINES)])
def test_classify_realistic_messages(message: str, category: str | None) -> None:
    assert classify_message(message) == category


def test_tracebacks_frames_are_not_counted() -> None:
    frame = '  File "/usr/lib/python3/site-packages/asyncpg/connect_utils.py", line 1049, in _connect_addr'
    assert classify_message(frame) is None


def test_json_line_with_category_field_and_status() -> None:
    line = json.dumps({"ts": "2026-11-26T09:47:01Z", "level": "error", "logger": "app.db",
                       "msg": "database unavailable", "category": "db", "path": "/api/threads", "status": 500})
    event = parse_line(line)
    assert (event.level, event.category, event.status, event.path) == ("ERROR", DB_CONNECTION, 500, "/api/threads")
    assert event.is_error


def test_json_line_without_category_is_classified_from_msg() -> None:
    line = json.dumps({"level": "WARNING", "msg": "search failed: canceling statement due to statement timeout "
                                                  "on memory_fragments"})
    assert parse_line(line).category == VECTOR_SEARCH_TIMEOUT


def test_json_after_a_compose_prefix() -> None:
    line = ('backend-1  | {"level": "ERROR", "msg": "new row violates row-level security policy '
            'for table \\"threads\\""}')
    event = parse_line(line)
    assert (event.level, event.category) == ("ERROR", RLS_CONTEXT)


@pytest.mark.parametrize(("line", "level", "status"), [
    ('INFO:     127.0.0.1:50412 - "GET /api/threads HTTP/1.1" 500 Internal Server Error', "INFO", 500),
    ('Nov 26 09:47:01 api1 backend[812]: INFO:     10.0.0.9:40022 - "POST /api/search HTTP/1.1" 200 OK', "INFO", 200),
    ("2026-11-26 09:47:01,123 WARN app.storage: slow download", "WARNING", None),
    ("CRITICAL:app.main:startup failed", "CRITICAL", None),
    ("FATAL:  the database system is shutting down", "CRITICAL", None),
    ("just some text", None, None),
])
def test_plain_levels_and_access_lines(line: str, level: str | None, status: int | None) -> None:
    event = parse_line(line)
    assert (event.level, event.status) == (level, status)


def test_info_lines_are_not_categorised() -> None:
    assert parse_line("INFO app.db: connection to server at db re-established after it failed").category is None
    assert parse_line("ERROR app.db: connection to server at db failed").category == DB_CONNECTION
