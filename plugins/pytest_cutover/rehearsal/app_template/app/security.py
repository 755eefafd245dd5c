"""Request authentication and the per-transaction RLS context.

The tenant is carried with ``set_config(name, value, true)``: the third argument ``true`` makes it
local to the current transaction (``SET LOCAL`` semantics), so it disappears at COMMIT/ROLLBACK and
can never reach the next client of a transaction pooler.  A session-level ``SET`` (or
``set_config(..., false)``) would stay on the pooled server connection and be seen by whoever gets it
next.  Values are bound parameters, never formatted into the SQL text.
"""

from __future__ import annotations

import hmac

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["bearer_matches", "set_rls_context"]

_SET_RLS_CONTEXT = text(
    "SELECT set_config('app.current_org_id', :org_id, true), "
    "set_config('app.current_user_id', :user_id, true)"
)


async def set_rls_context(db: AsyncSession, org_id: str, user_id: str | None = None) -> None:
    """Set the tenant (and user) for the rest of the current transaction of ``db``."""
    await db.execute(_SET_RLS_CONTEXT, {"org_id": org_id, "user_id": user_id or ""})


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """True when ``authorization`` is ``Bearer <expected>`` (constant-time; an unset token never matches)."""
    if not expected or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())
