"""Who is asking: the request's JWT, verified with the stack's HS256 secret (as the real server's jwt plugin).

``Authorization: Bearer <jwt>`` is what the Storage server reads; ``apikey`` is accepted as a fallback
because supabase-py sends both and the API gateway in front of the real server would forward the key.
No token at all means the ``anon`` role, unauthenticated (only public buckets answer then).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pytest_cutover.rehearsal.storage.errors import access_denied

__all__ = ["ANON_PRINCIPAL", "SERVICE_PRINCIPAL", "Principal", "principal_from_headers"]


@dataclass(frozen=True)
class Principal:
    """The database role a request runs as, and the claims that go into ``request.jwt.claims``."""

    role: str
    claims: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    authenticated: bool = False

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub") or "")

    @property
    def claims_json(self) -> str:
        return json.dumps(self.claims, separators=(",", ":"), sort_keys=True)


#: The server's own "superuser" view (``storage.asSuperUser()``): the service_role, which bypasses RLS.
SERVICE_PRINCIPAL = Principal(role="service_role", claims={"role": "service_role"}, authenticated=True)
ANON_PRINCIPAL = Principal(role="anon", claims={"role": "anon"})


def _token(headers: Any) -> str:
    auth = headers.get("authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return (headers.get("apikey") or "").strip()


def principal_from_headers(headers: Any, secret: str, *, allow_invalid: bool) -> Principal:
    """Verify the request's JWT; with ``allow_invalid`` a missing or bad token yields anon instead of an error."""
    import jwt

    token = _token(headers)
    if not token:
        if allow_invalid:
            return ANON_PRINCIPAL
        raise access_denied("No authorization header or apikey was provided")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        if allow_invalid:
            return ANON_PRINCIPAL
        raise access_denied(str(exc) or "invalid JWT") from None
    return Principal(role=str(claims.get("role") or "anon"), claims=claims, token=token, authenticated=True)
