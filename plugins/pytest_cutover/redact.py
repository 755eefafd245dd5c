"""Redaction: the one function every piece of output goes through.

Terminal lines, ledger records, logs, reports and exception messages are all
passed through :func:`redact`, which masks passwords in DSNs, bearer tokens,
JWTs, ``key=value`` secrets and every literal secret registered with
:func:`register_secret` (all secret values from the config are registered when
it loads).  :class:`Secret` wraps a secret value so that ``str`` and ``repr``
never show it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "Secret", "redact", "redact_obj", "register_secret", "reveal"]

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s\"']*:)(?P<pw>[^@\s\"']+)(?P<at>@)")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)(?P<tok>[A-Za-z0-9\-._~+/=]{4,})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_KEY_VALUE = re.compile(
    r"(?i)(?P<head>\b[\w.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|service[_\-]?key"
    r"|access[_\-]?key|private[_\-]?key|storage[_\-]?key|anon[_\-]?key|authorization)[\w.\-]*[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<val>(?!\*\*\*|(?:bearer|basic)\b)[^\s\"'&,;})\]]+)"
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_MIN_LITERAL = 4

_lock = threading.Lock()
_literals: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a literal secret so that :func:`redact` masks it wherever it appears."""
    if not value or len(value) < _MIN_LITERAL:
        return
    with _lock:
        _literals.add(value)
        # A password can also appear percent-encoded inside a DSN.
        from urllib.parse import quote

        _literals.add(quote(value, safe=""))


def redact(text: Any) -> str:
    """Return ``text`` as a string with every known kind of secret masked."""
    if text is None:
        return ""
    out = str(text)
    with _lock:
        literals = sorted(_literals, key=len, reverse=True)
    for literal in literals:
        if literal in out:
            out = out.replace(literal, MASK)
    out = _PEM.sub(f"-----PRIVATE KEY {MASK}-----", out)
    out = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", out)
    out = _JWT.sub(f"{MASK}jwt", out)
    out = _BEARER.sub(lambda m: f"{m['head']}{MASK}", out)
    out = _KEY_VALUE.sub(lambda m: f"{m['head']}{MASK}", out)
    return out


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, scalars)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, Secret):
        return str(obj)
    if isinstance(obj, dict):
        return {redact(k) if isinstance(k, str) else k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj


class Secret:
    """A secret value (DSN, token, key) whose ``str``/``repr`` never reveal it.

    DSNs keep their scheme, user, host and port visible, so an operator can still
    tell *which* database a message is about: ``postgresql://app:***@db:6543/postgres``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        if "://" in value:
            from urllib.parse import unquote, urlsplit

            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            if password:
                register_secret(password)
                register_secret(unquote(password))
        else:
            register_secret(value)

    def get(self) -> str:
        """The real value, for the one call that needs it (a driver's connect)."""
        return self._value

    def __str__(self) -> str:
        return redact(self._value) if "://" in self._value else MASK

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(
            lambda v: v if isinstance(v, Secret) else cls(v),
            core_schema.union_schema([core_schema.is_instance_schema(cls), core_schema.str_schema()]),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


def reveal(value: Secret | str | None) -> str | None:
    """The plain value of a :class:`Secret` (or pass a plain string through)."""
    if value is None:
        return None
    return value.get() if isinstance(value, Secret) else value


def registered_secrets() -> Iterable[str]:
    """The literal secrets known so far (for self-tests that grep for leaks)."""
    with _lock:
        return tuple(_literals)
