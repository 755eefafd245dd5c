"""The async SQLAlchemy engine (asyncpg) and the session factory, as the runbook's smoke tests import them.

Pooler safety: after the switch DATABASE_URL points at the transaction pooler (Supabase: port 6543;
here PgBouncer 1.18).  A transaction pooler hands each transaction a different server connection, so
asyncpg's prepared-statement caches break under concurrency ("prepared statement ... does not exist").
Both caches are therefore off: asyncpg's own (``statement_cache_size``) and SQLAlchemy's
(``prepared_statement_cache_size``).  They are off for the direct old database too: one engine
configuration for both sides of the switch means nothing has to be remembered at 9 AM.

TLS: the pooler is reached over TLS; DATABASE_SSL_CA names the CA that issued its certificate, and the
certificate and host name are verified against it.
"""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from app.config import Settings, get_settings

__all__ = ["AsyncSessionLocal", "connect_args", "engine"]


def connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg connection arguments for ``settings`` (pooler-safe caches, TLS when a CA is configured)."""
    args: dict[str, Any] = {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "timeout": 10,
        "server_settings": {"application_name": "reference-app"},
    }
    if settings.database_ssl_ca is not None:
        args["ssl"] = ssl.create_default_context(cafile=str(settings.database_ssl_ca))
    return args


def _make_engine(settings: Settings) -> AsyncEngine:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (add it to the .env of the app)")
    return create_async_engine(settings.database_url, connect_args=connect_args(settings), pool_size=5,
                               max_overflow=5, pool_timeout=10, pool_recycle=300)


engine: AsyncEngine = _make_engine(get_settings())
AsyncSessionLocal = async_sessionmaker(engine, expire_on_commit=False)
