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
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MASK", "Secret", "redact", "redact_obj", "register_secret", "registered_secrets", "reveal", "secret_forms"]

MASK = "***"

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s\"']*:)(?P<pw>[^@\s\"']+)(?P<at>@)")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)(?P<tok>[A-Za-z0-9\-._~+/=]{4,})")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
_KEY_VALUE = re.compile(
    r"(?i)(?P<head>\b[\w.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|service[_\-]?key"
    r"|access[_\-]?key|private[_\-]?key|storage[_\-]?key|anon[_\-]?key|authorization)[\w.\-]*[\"']?\s*[=:](?!:)\s*[\"']?)"
    # not a placeholder, nor the line number of a file:line: location (test_tokens.py:12: ...)
    r"(?P<val>(?!\*\*\*|\.\.\.|<[^>\s]*>|\$\{|(?:bearer|basic)\b|\d+:)[^\s\"'&,;})\]]+)"
)
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
_MIN_LITERAL = 4
#: A piece of a secret that a parser split off is masked when it is at least this long.
_MIN_FRAGMENT = 6
#: A webhook URL's path (or a segment of it) this long is taken for its token; shorter ones are names.
_MIN_URL_TOKEN = 16
#: Where parsers, shells and tokenizers split a secret apart.
_SPLIT = re.compile(r"[/#?@&=:;,%\\\s'\"`<>()\[\]{}|!$*+^~]")

_lock = threading.Lock()
_literals: set[str] = set()
_whole: set[str] = set()  # the secrets' forms without their fragments, for cut-off (truncated) text
_cuts: tuple[frozenset[str], frozenset[str], int] | None = None
_TRUNCATION = re.compile(r"(\.\.\.|\u2026)")
_pattern: re.Pattern[str] | None = None


def _escapes() -> tuple[Callable[[str], str], ...]:
    import html
    import json
    from urllib.parse import quote, quote_plus, unquote, unquote_plus

    def lower_hex(text: str) -> str:
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)

    return (
        lambda v: quote(v, safe=""), quote, quote_plus, lambda v: lower_hex(quote(v, safe="")), unquote,
        unquote_plus, lambda v: json.dumps(v)[1:-1], lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
        lambda v: repr(v)[1:-1], lambda v: ascii(v)[1:-1], html.escape, lambda v: html.escape(v, quote=False),
        lambda v: v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        .replace("'", "&apos;"),
    )


def secret_forms(value: str, *, fragments: bool = True) -> set[str]:
    """Every form ``value`` can take in text: raw, percent-encoded (either hex case) and decoded, JSON-,
    repr-, HTML- and XML-escaped (and those escapes nested twice, as a repr of a JSON string is), plus the
    pieces a parser splits off at a reserved character (prefixes, suffixes and middles of at least
    ``_MIN_FRAGMENT`` characters): a parser that chokes on a raw ``/`` quotes what follows it.
    ``fragments=False`` for a value whose pieces are not secret (a webhook URL's host and path names)."""
    escapes = _escapes()
    forms = {value}
    for _ in range(2):
        forms |= {escape(form) for form in forms for escape in escapes}
    pieces: set[str] = set()
    for form in (value, *{escape(value) for escape in escapes}) if fragments else ():
        cuts = [m.start() for m in _SPLIT.finditer(form)]
        pieces.update(form[:cut] for cut in cuts)
        pieces.update(form[cut + 1:] for cut in cuts)
        pieces.update(form[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(form)], strict=True))
    pieces = {p for p in pieces if len(p) >= _MIN_FRAGMENT}
    return {f for f in forms | pieces if len(f) >= _MIN_LITERAL}


def register_secret(value: str | None, *, fragments: bool = True) -> None:
    """Remember a literal secret, in every form it can take (:func:`secret_forms`), so that :func:`redact`
    masks it wherever it appears."""
    global _pattern, _cuts
    if not value or len(value) < _MIN_LITERAL:
        return
    forms = secret_forms(value, fragments=fragments)
    with _lock:
        whole = secret_forms(value, fragments=False)
        if not whole <= _whole:
            _whole.update(whole)
            _cuts = None
        if not forms <= _literals:
            _literals.update(forms)
            _pattern = None


def _literal_pattern() -> re.Pattern[str] | None:
    global _pattern
    with _lock:
        if _pattern is None and _literals:
            _pattern = re.compile("|".join(re.escape(f) for f in sorted(_literals, key=len, reverse=True)))
        return _pattern


def _cut_pieces() -> tuple[frozenset[str], frozenset[str], int]:
    """Every head and tail (at least ``_MIN_FRAGMENT`` long) of every whole form, and the longest form."""
    global _cuts
    with _lock:
        if _cuts is None:
            heads = frozenset(f[:k] for f in _whole for k in range(_MIN_FRAGMENT, len(f)))
            tails = frozenset(f[-k:] for f in _whole for k in range(_MIN_FRAGMENT, len(f)))
            _cuts = (heads, tails, max(map(len, _whole), default=0))
        return _cuts


def _mask_truncated(text: str) -> str:
    """Mask the start and end of a secret cut off by a ``...`` (pytest's ``saferepr`` shortens long values
    to ``head...tail`` at any character, not where a parser would split them)."""
    heads, tails, longest = _cut_pieces()
    parts = _TRUNCATION.split(text)
    for i in range(0, len(parts) - 2, 2):
        before, after = parts[i], parts[i + 2]
        k = next((k for k in range(min(longest, len(before)), _MIN_FRAGMENT - 1, -1) if before[-k:] in heads), 0)
        if k:
            parts[i] = before[:-k] + MASK
        k = next((k for k in range(min(longest, len(after)), _MIN_FRAGMENT - 1, -1) if after[:k] in tails), 0)
        if k:
            parts[i + 2] = MASK + after[k:]
    return "".join(parts)


def redact(text: Any) -> str:
    """Return ``text`` as a string with every known kind of secret masked."""
    if text is None:
        return ""
    out = str(text)
    pattern = _literal_pattern()
    if pattern is not None:
        if _TRUNCATION.search(out):
            out = _mask_truncated(out)
        out = pattern.sub(MASK, out)
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


def _secret_parts(value: str) -> list[tuple[str, bool]]:
    """What of ``value`` is secret, and whether its fragments are: a URL's password (found even when the URL
    does not parse) and, for a URL that is not a database's (a webhook), the long path segments where such
    services keep their token (``hooks.slack.com/services/T../B../<token>``)."""
    if "://" not in value:
        return [(value, True)]
    from urllib.parse import urlsplit

    from pytest_cutover.dsn import split_userinfo

    parts: list[tuple[str, bool]] = []
    _, password = split_userinfo(value)
    if password:
        parts.append((password, True))
    if value.partition("://")[0].lower().startswith(("http", "ws")):
        try:
            split = urlsplit(value)
        except ValueError:
            return [(value, False)]
        tokens = [seg for seg in (*split.path.split("/"), split.query) if len(seg) >= _MIN_URL_TOKEN]
        if tokens:
            parts.extend((p, False) for p in (*tokens, split.path.strip("/")))
    return parts


class Secret:
    """A secret value (DSN, token, key) whose ``str``/``repr`` never reveal it.

    DSNs keep their scheme, user, host and port visible, so an operator can still
    tell *which* database a message is about: ``postgresql://app:***@db:6543/postgres``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        for part, fragments in _secret_parts(value):
            register_secret(part, fragments=fragments)

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
