"""One way to open an asyncpg connection for a check, with TLS and errors an operator can act on.

Why a shared connector: the rehearsal's poolers (and Supabase's) require TLS, the direct embedded
server has none, and a failed connection must say *which* of host, port, credentials or time is
wrong.  With a ``ca_file`` and no ``sslmode`` in the DSN, TLS is tried first and verified against that
CA (host name included); a server that refuses TLS gets a plain connection unless ``require_tls``
(libpq's ``sslmode=prefer`` vs ``verify-full``).  An ``sslmode`` in the DSN always decides on its own.
The statement cache is off: the connection may go through a transaction pooler (field notes).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pytest_cutover.actions.pg import asyncpg_dsn, endpoint
from pytest_cutover.errors import CutoverError
from pytest_cutover.redact import Secret, redact

if TYPE_CHECKING:
    import asyncpg

    from pytest_cutover.config import CutoverConfig

__all__ = [
    "ConnectTimeoutError",
    "CredentialsError",
    "DatabaseError",
    "TlsError",
    "UnreachableError",
    "config_connection",
    "connect",
    "connection",
    "describe",
    "ssl_context",
    "uses_tls",
]


class DatabaseError(CutoverError, ConnectionError):
    """A check could not connect to (or query) a database."""


class UnreachableError(DatabaseError):
    """The host does not resolve or nothing listens on the port."""


class CredentialsError(DatabaseError):
    """The server (or pooler) refused the user or the password."""


class ConnectTimeoutError(DatabaseError, TimeoutError):
    """No connection within the timeout."""


class TlsError(DatabaseError):
    """TLS was required but refused, or the server's certificate is not trusted."""


def describe(dsn: Secret | str) -> str:
    """``user@host:port/db`` of a DSN (never the password)."""
    try:
        return str(endpoint(dsn))
    except CutoverError:
        return redact(str(dsn))


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: the given CA (or the system's), host name checked."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def uses_tls(conn: asyncpg.Connection) -> bool:
    """Whether ``conn`` runs over TLS."""
    transport = getattr(conn, "_transport", None)
    return bool(transport is not None and transport.get_extra_info("ssl_object") is not None)


async def connect(dsn: Secret | str, *, ca_file: str | None = None, timeout: float = 10.0,
                  require_tls: bool = False, what: str | None = None,
                  server_settings: dict[str, str] | None = None) -> asyncpg.Connection:
    """An asyncpg connection to ``dsn`` (any ``postgresql+driver://`` form); driver errors become ours.

    ``what`` names the config key in messages (``target.app_database_url``).
    """

    plain = asyncpg_dsn(dsn)
    where = describe(dsn)
    label = f"{what} ({where})" if what else where
    kwargs: dict[str, Any] = {"timeout": timeout, "statement_cache_size": 0}
    if server_settings:
        kwargs["server_settings"] = server_settings
    try:
        return await _open(plain, kwargs, ca_file=ca_file, require_tls=require_tls, label=label)
    except CutoverError:
        raise
    except Exception as exc:
        mapped = _login_error(exc, label, what, timeout)
        if mapped is None:
            raise
        raise mapped from None


async def _open(plain: str, kwargs: dict[str, Any], *, ca_file: str | None, require_tls: bool,
                label: str) -> asyncpg.Connection:
    """Connect as the DSN's ``sslmode`` says, else with TLS when a CA is given or TLS is required (falling
    back to plain text only when TLS is not required and the server refuses the upgrade)."""
    import asyncpg

    if "sslmode=" in plain:
        return await asyncpg.connect(plain, **kwargs)
    if ca_file or require_tls:
        try:
            return await asyncpg.connect(plain, ssl=ssl_context(ca_file), **kwargs)
        except ConnectionError as exc:
            if "rejected SSL upgrade" not in str(exc):
                raise
            if require_tls:
                raise TlsError(f"{label} refused TLS (the server answered the SSLRequest with 'N')",
                               hint="connect through the TLS endpoint (the pooler); never send the "
                                    "credentials in clear text") from None
    return await asyncpg.connect(plain, **kwargs)


def _login_error(exc: BaseException, label: str, what: str | None, timeout: float) -> CutoverError | None:
    """The driver's or the network's error as ours, with what to check; ``None``: not a login error."""
    import asyncpg

    if isinstance(exc, asyncpg.InvalidPasswordError):
        return CredentialsError(f"{label}: the password was refused ({redact(exc)})",
                                hint=_key_hint(what, "check the password; percent-encode special characters "
                                                     "(an @ in a password is %40)"))
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return CredentialsError(f"{label}: the user was refused ({redact(exc)})",
                                hint=_key_hint(what, "check the user name (Supabase's pooler wants "
                                                     "postgres.<project-ref>)"))
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseError(f"{label}: the database does not exist",
                             hint=_key_hint(what, "check the database name at the end of the URL"))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TlsError(f"{label}: the server certificate is not trusted: {exc.verify_message or exc}",
                        hint="set target.ca_file to the CA that issued the certificate, or fix the host name "
                             "so that it matches the certificate")
    if isinstance(exc, socket.gaierror):
        return UnreachableError(f"{label}: host name cannot be resolved ({exc.strerror})",
                                hint=_key_hint(what, "check the host name for typos and DNS"))
    if isinstance(exc, ConnectionRefusedError):
        return UnreachableError(f"{label}: connection refused, nothing listens on that port",
                                hint=_key_hint(what, "check the port: Supabase's transaction pooler is 6543, the "
                                                     "session pooler and the direct connection 5432"))
    if isinstance(exc, TimeoutError):
        return ConnectTimeoutError(f"{label}: no connection within {timeout:g}s",
                                   hint="check the network path and firewall; raise "
                                        "thresholds.connect_timeout_s if the link is slow")
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return DatabaseError(f"{label}: the server closed the connection during login ({redact(exc)})",
                             hint="check that the server accepts this client (TLS, pg_hba, pooler limits)")
    if isinstance(exc, OSError):
        return UnreachableError(f"{label}: {type(exc).__name__}: {redact(exc)}",
                                hint=_key_hint(what, "check host, port and network"))
    if isinstance(exc, asyncpg.PostgresError):
        if "authentication failed" in str(exc).lower():
            return CredentialsError(f"{label}: the credentials were refused ({redact(exc)})",
                                    hint=_key_hint(what, "check the user and password; percent-encode special "
                                                         "characters (an @ in a password is %40)"))
        return DatabaseError(f"{label}: login failed with SQLSTATE {exc.sqlstate}: {redact(exc)}",
                             hint="read the server's message; it names what it refused")
    return None


def _key_hint(what: str | None, text: str) -> str:
    return f"{text} ({what} in the config)" if what else text


@contextlib.asynccontextmanager
async def connection(dsn: Secret | str, **kwargs: Any) -> AsyncIterator[asyncpg.Connection]:
    """``async with connection(dsn, ca_file=..., timeout=...) as conn``: closed on exit."""
    conn = await connect(dsn, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)


def config_connection(config: CutoverConfig, key: str, **kwargs: Any) -> contextlib.AbstractAsyncContextManager[Any]:
    """A connection for the DSN at config ``key`` with the configured CA and connect timeout."""
    from pytest_cutover.config import lookup
    from pytest_cutover.errors import ConfigError

    dsn = lookup(config, key)
    if not dsn:
        raise ConfigError(f"missing config key {key}", hint=f"set {key} in cutover.toml")
    kwargs.setdefault("ca_file", config.target.ca_file)
    kwargs.setdefault("timeout", config.thresholds.connect_timeout_s)
    kwargs.setdefault("what", key)
    return connection(dsn, **kwargs)
