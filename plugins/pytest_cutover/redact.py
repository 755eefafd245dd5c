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
from dataclasses import dataclass
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
_TRUNCATION = re.compile(r"(\.\.\.|\u2026)")
#: saferepr keeps about 120 characters on each side of its ``...``: no longer head or tail is looked for.
_CUT_WINDOW = 128


@dataclass(frozen=True)
class _Index:
    """What :func:`redact` searches with, rebuilt when a secret is registered: the literals longest first
    (one C-speed ``in`` each, far faster than one alternation of thousands), and every whole form by its
    first and by its last ``_MIN_FRAGMENT`` characters (for heads and tails cut off by ``...``)."""

    literals: tuple[str, ...]
    by_head: dict[str, tuple[str, ...]]
    by_tail: dict[str, tuple[str, ...]]
    longest: int


_index: _Index | None = None


def _escapes() -> tuple[tuple[Callable[[str], str], ...], tuple[Callable[[str], str], ...]]:
    """(percent-encodings, text escapes): how a value is written into a URL, and into JSON, repr, HTML, XML."""
    import html
    import json
    from urllib.parse import quote, quote_plus, unquote, unquote_plus

    def lower_hex(text: str) -> str:
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)

    percent = (lambda v: quote(v, safe=""), quote, quote_plus, lambda v: lower_hex(quote(v, safe="")), unquote,
               unquote_plus)
    text = (lambda v: json.dumps(v)[1:-1], lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
            lambda v: repr(v)[1:-1], lambda v: ascii(v)[1:-1], html.escape, lambda v: html.escape(v, quote=False),
            lambda v: v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&apos;"))
    return percent, text


def secret_forms(value: str, *, fragments: bool = True) -> set[str]:
    """Every form ``value`` can take in text: raw, percent-encoded (either hex case) and decoded, then JSON-,
    repr-, HTML- and XML-escaped (twice over, as a repr of a JSON string is), plus the pieces a parser splits
    off the raw or percent-encoded value at a reserved character (prefixes, suffixes and middles of at least
    ``_MIN_FRAGMENT`` characters): a parser that chokes on a raw ``/`` quotes what follows it.
    ``fragments=False`` for a value whose pieces are not secret (a webhook URL's host and path names)."""
    percent, text = _escapes()
    written = {value} | {encode(value) for encode in percent}
    forms = set(written)
    for _ in range(2):
        forms |= {escape(form) for form in forms for escape in text}
    pieces: set[str] = set()
    for form in written if fragments else ():
        cuts = [m.start() for m in _SPLIT.finditer(form)]
        pieces.update(form[:cut] for cut in cuts)
        pieces.update(form[cut + 1:] for cut in cuts)
        pieces.update(form[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(form)], strict=True))
    pieces = {p for p in pieces if len(p) >= _MIN_FRAGMENT}
    pieces |= {escape(p) for p in pieces for escape in text}
    return {f for f in forms | pieces if len(f) >= _MIN_LITERAL}


def register_secret(value: str | None, *, fragments: bool = True) -> None:
    """Remember a literal secret, in every form it can take (:func:`secret_forms`), so that :func:`redact`
    masks it wherever it appears."""
    global _index
    if not value or len(value) < _MIN_LITERAL:
        return
    forms = secret_forms(value, fragments=fragments)
    whole = secret_forms(value, fragments=False)
    with _lock:
        if not (forms <= _literals and whole <= _whole):
            _literals.update(forms)
            _whole.update(whole)
            _index = None


def _current_index() -> _Index | None:
    global _index
    with _lock:
        if _index is None and _literals:
            by_head: dict[str, list[str]] = {}
            by_tail: dict[str, list[str]] = {}
            for form in _whole:
                if len(form) > _MIN_FRAGMENT:
                    by_head.setdefault(form[:_MIN_FRAGMENT], []).append(form)
                    by_tail.setdefault(form[-_MIN_FRAGMENT:], []).append(form)
            _index = _Index(tuple(sorted(_literals, key=len, reverse=True)),
                            {k: tuple(v) for k, v in by_head.items()}, {k: tuple(v) for k, v in by_tail.items()},
                            max(map(len, _whole), default=0))
        return _index


def _mask_truncated(text: str, index: _Index) -> str:
    """Mask the start and end of a secret cut off by a ``...`` (pytest's ``saferepr`` shortens long values
    to ``head...tail`` at any character, not where a parser would split them)."""
    parts = _TRUNCATION.split(text)
    for i in range(0, len(parts) - 2, 2):
        before = parts[i]
        window = before[-min(index.longest, _CUT_WINDOW):]
        for p in range(len(window) - _MIN_FRAGMENT + 1):  # earliest start first: the longest head
            if any(f.startswith(window[p:]) for f in index.by_head.get(window[p:p + _MIN_FRAGMENT], ())):
                parts[i] = before[:len(before) - len(window) + p] + MASK
                break
        after = parts[i + 2]
        window = after[:min(index.longest, _CUT_WINDOW)]
        for q in range(len(window), _MIN_FRAGMENT - 1, -1):  # latest end first: the longest tail
            if any(f.endswith(window[:q]) for f in index.by_tail.get(window[q - _MIN_FRAGMENT:q], ())):
                parts[i + 2] = MASK + after[q:]
                break
    return "".join(parts)


def redact(text: Any) -> str:
    """Return ``text`` as a string with every known kind of secret masked."""
    if text is None:
        return ""
    out = str(text)
    index = _current_index()
    if index is not None:
        if _TRUNCATION.search(out):
            out = _mask_truncated(out, index)
        for literal in index.literals:
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
    """The literal secrets known so far, every form, longest first (for self-tests that grep for leaks, and
    for masking binary files byte for byte)."""
    index = _current_index()
    return index.literals if index is not None else ()
