"""PostgreSQL URLs: checked once when the config loads, cleaned for our own connections.

Why this module: a password pasted from a password manager often holds a raw ``/``, ``#``, ``?`` or ``@``.
The URL parsers (urllib, asyncpg, libpq) then split it somewhere inside and quote the fragment they choke
on, and that fragment used to end up in the terminal, the ledger and every report.  So every URL key is
parsed here once, at load; a broken one is a configuration error that names the key and what is wrong
("the password contains `/`: percent-encode it as `%2F`"), never any part of the value.

Supabase's docs tell people to add ``?pgbouncer=true`` (a Prisma flag) and Prisma's pool parameters to
their URLs; asyncpg sends unknown parameters to the server as startup parameters and PgBouncer refuses
them (``unsupported startup parameter: pgbouncer``), libpq refuses them outright.  Our connections drop
them (:func:`driver_dsn`); the app's own URL, which goes into its ``.env``, is kept byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["DRIVER_IGNORED_PARAMS", "DsnProblem", "check_url", "driver_dsn", "dropped_params", "split_password",
           "split_userinfo"]

#: Query parameters people copy from Supabase's and Prisma's docs that no PostgreSQL driver accepts.
DRIVER_IGNORED_PARAMS = frozenset({
    "pgbouncer", "connection_limit", "pool_timeout", "socket_timeout", "schema", "statement_cache_size",
    "sslaccept", "sslidentity",
})
_PG_SCHEMES = ("postgres", "postgresql")
_HTTP_SCHEMES = ("http", "https")
#: Characters that end the user:password part of a URL early, and how to write them inside it.
_RESERVED = {"/": "%2F", "#": "%23", "?": "%3F", "@": "%40"}
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class DsnProblem(ValueError):
    """What is wrong with a URL, worded without any part of its value."""


@dataclass(frozen=True)
class _Userinfo:
    """The user and password of a URL as written."""

    user: str | None
    password: str | None


def split_userinfo(url: str) -> tuple[str | None, str | None]:
    """``(user, password)`` of ``url`` as written (still percent-encoded), tolerant of raw reserved
    characters in the password: the userinfo runs up to the *last* ``@`` before the host.

    Used to find a password even in a URL that does not parse (so that it can be masked).
    """
    _, sep, rest = url.partition("://")
    if not sep:
        return None, None
    info = _userinfo(rest)
    return info.user, info.password


def _userinfo(rest: str) -> _Userinfo:
    at = rest.rfind("@")
    if at < 0:
        return _Userinfo(None, None)
    userinfo = rest[:at]
    user, colon, password = userinfo.partition(":")
    return _Userinfo(user, password if colon else None)


def _scheme(raw: str) -> tuple[str, str]:
    scheme, sep, rest = raw.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        raise DsnProblem("is not a URL (expected scheme://host...)")
    return scheme.lower(), rest


def _check_userinfo(rest: str) -> None:
    """Raise when the user or password holds a character that makes a parser split it."""
    authority_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:authority_end]
    last_at = rest.rfind("@")
    if last_at < 0:
        return
    if last_at > authority_end and "@" not in authority:
        user, colon, after = authority.partition(":")
        if colon and not after.isdigit():
            # user:pa/ss@host: the password runs past the first / ? #, where every parser ends the host.
            cut = rest[authority_end]
            raise DsnProblem(f"the password contains `{cut}`: percent-encode it as `{_RESERVED[cut]}`")
        path = rest[authority_end:].partition("?")[0]
        if "@" in path:
            raise DsnProblem("the database name contains `@`; if the password contains `/`, `?` or `#`, "
                             "percent-encode them (`%2F`, `%3F`, `%23`)")
        return
    info = _userinfo(authority)
    user, password = info.user or "", info.password
    if "@" in user:
        raise DsnProblem("the user name contains `@`: percent-encode it as `%40`")
    if password is not None and "@" in password:
        raise DsnProblem("the password contains `@`: percent-encode it as `%40`")
    for name, value in (("user name", user), ("password", password)):
        if value and _BAD_PERCENT.search(value):
            raise DsnProblem(f"the {name} contains a `%` that does not start a percent-encoding (two hex digits): "
                             "write it as `%25`")
        if value and any(ch.isspace() for ch in value):
            raise DsnProblem(f"the {name} contains whitespace: percent-encode it (a space is `%20`)")


def _check_hosts(netloc: str, *, multi: bool) -> None:
    hostspec = netloc.rpartition("@")[2]
    specs = hostspec.split(",") if multi else [hostspec]
    for spec in specs:
        try:
            parts = urlsplit(f"//{spec}")
            port = parts.port
        except ValueError:
            raise DsnProblem("the port is not a number between 0 and 65535 (or a [IPv6] host is not closed)") \
                from None
        if port == 0:
            raise DsnProblem("the port is 0")


def check_url(raw: str, *, postgres: bool) -> list[str]:
    """Check ``raw`` (a PostgreSQL URL when ``postgres``, else an http(s) URL); return the driver-ignored
    query parameters it carries.  Raise :class:`DsnProblem` naming what is wrong, never quoting the value."""
    scheme, rest = _scheme(raw)
    base = scheme.split("+", 1)[0]
    if postgres and base not in _PG_SCHEMES:
        raise DsnProblem("does not start with postgresql:// (or postgres://, postgresql+asyncpg://)")
    if not postgres and scheme not in _HTTP_SCHEMES:
        raise DsnProblem("does not start with http:// or https://")
    _check_userinfo(rest)
    try:
        parts = urlsplit(raw)
    except ValueError:
        raise DsnProblem("cannot be parsed (a [IPv6] host is not closed?)") from None
    _check_hosts(parts.netloc, multi=postgres)
    if not postgres:
        if not parts.hostname:
            raise DsnProblem("has no host")
        return []
    if "#" in raw:
        raise DsnProblem("contains `#`: nothing may follow it in a database URL; if it belongs to the password, "
                         "percent-encode it as `%23`")
    if not parts.query:
        return []
    try:
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise DsnProblem("the query string after `?` is not name=value pairs joined by `&`") from None
    return sorted({name for name, _ in params if name in DRIVER_IGNORED_PARAMS})


def dropped_params(raw: str) -> list[str]:
    """The driver-ignored query parameters of ``raw`` (empty when it has none or does not parse)."""
    try:
        return check_url(raw, postgres=True)
    except DsnProblem:
        return []


def driver_dsn(raw: str) -> str:
    """``raw`` as our own connections use it: ``postgresql://`` (no ``+driver``), without the query parameters
    no driver accepts (``pgbouncer=true``, Prisma's pool settings).  Everything else is kept as written."""
    scheme, sep, rest = raw.partition("://")
    out = f"{scheme.split('+', 1)[0]}{sep}{rest}"
    head, q, query = out.partition("?")
    if not q:
        return out
    query, hash_, fragment = query.partition("#")
    kept = [p for p in query.split("&") if unquote(p.partition("=")[0]) not in DRIVER_IGNORED_PARAMS]
    return head + (("?" + "&".join(kept)) if kept else "") + hash_ + fragment


def split_password(url: str) -> tuple[str, str | None]:
    """``(url without its password, the decoded password)``: a libpq client (psql, pg_dump) gets the
    password in ``PGPASSWORD``, never on its command line, where ``ps`` shows it to every user.
    The URL is :func:`driver_dsn`'s (libpq refuses ``pgbouncer=true`` and friends)."""
    clean = driver_dsn(url)
    parts = urlsplit(clean)
    if parts.password is None:
        return clean, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)
