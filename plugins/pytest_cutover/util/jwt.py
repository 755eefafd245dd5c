"""HS256 JSON Web Tokens shaped like Supabase's, signed with the standard library only.

Why no PyJWT: production only *mints* tokens (the rls stage's Storage probe acts as a signed-in user
of each org), and HS256 signing is base64url(header).base64url(claims) plus an HMAC-SHA256 of both:
a dozen lines, so a plain install needs no extra dependency.  Verification stays with PyJWT, in the
rehearsal's Storage service and in the tests, which decode these tokens to prove they are standard.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

__all__ = ["encode_hs256", "mint_jwt"]

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(obj: Mapping[str, object]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


def encode_hs256(claims: Mapping[str, object], secret: str) -> str:
    """``claims`` as a compact HS256 JWT signed with ``secret`` (RFC 7519/7515)."""
    if not secret:
        raise ValueError("an HS256 JWT needs a non-empty secret")
    signing_input = f"{_b64url(_json(_HEADER))}.{_b64url(_json(claims))}".encode("ascii")
    signature = hmac.new(secret.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode('ascii')}.{_b64url(signature)}"


def mint_jwt(secret: str, *, role: str, org_id: str | None = None, sub: str | None = None,
             ttl_s: int = 3600, now: int | None = None) -> str:
    """An HS256 JWT shaped like Supabase's (``role``, ``iss``, ``iat``, ``exp``; ``aud`` for signed-in users)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, object] = {"role": role, "iss": "supabase", "iat": issued, "exp": issued + ttl_s}
    if role == "authenticated":
        claims["aud"] = "authenticated"
    if sub is not None:
        claims["sub"] = sub
    if org_id is not None:
        claims["org_id"] = org_id
    return encode_hs256(claims, secret)
