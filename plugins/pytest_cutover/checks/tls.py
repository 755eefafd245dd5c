"""Runbook "SSL certificates valid": chain, host name and days to expiry of every endpoint the app uses.

Database endpoints speak TLS *inside* the PostgreSQL protocol: the client sends an ``SSLRequest``
(length 8, code 80877103), the server answers ``S`` (go ahead) or ``N`` (no TLS), then the TLS handshake
runs on the same socket.  We do exactly that with a verifying context (the configured CA, else the
system's; host name checked), so no credentials are needed.  When verification fails the certificate is
fetched once more without verification, only to report its dates.  The API is plain HTTPS.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pytest_cutover.actions.pg import endpoint
from pytest_cutover.checks.base import CheckResult, result
from pytest_cutover.checks.db import ssl_context
from pytest_cutover.redact import Secret, redact
from pytest_cutover.util.certs import cert_not_after, days_left

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["TlsPeer", "check_api_tls", "check_database_tls", "database_endpoints", "https_peer", "postgres_peer"]

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


@dataclass(frozen=True)
class TlsPeer:
    """What the TLS handshake with one endpoint showed."""

    host: str
    port: int
    offered: bool                 # False: the server refused TLS
    verified: bool
    verify_error: str | None
    not_after: dt.datetime | None
    protocol: str | None

    def days_left(self, now: dt.datetime | None = None) -> float | None:
        if self.not_after is None:
            return None
        return days_left(self.not_after, now)


def _not_after(der: bytes | None) -> dt.datetime | None:
    if not der:
        return None
    return cert_not_after(der)


def _handshake(host: str, port: int, ca_file: str | None, timeout: float, *, postgres: bool) -> TlsPeer:
    def open_socket() -> tuple[socket.socket, bool]:
        sock = socket.create_connection((host, port), timeout=timeout)
        if not postgres:
            return sock, True
        sock.sendall(_SSL_REQUEST)
        answer = sock.recv(1)
        return sock, answer == b"S"

    sock, offered = open_socket()
    if not offered:
        sock.close()
        return TlsPeer(host, port, False, False, "the server answered the SSLRequest with 'N'", None, None)
    try:
        with ssl_context(ca_file).wrap_socket(sock, server_hostname=host) as tls_sock:
            return TlsPeer(host, port, True, True, None, _not_after(tls_sock.getpeercert(binary_form=True)),
                           tls_sock.version())
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or str(exc)
    sock, _ = open_socket()
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    with unverified.wrap_socket(sock, server_hostname=host) as tls_sock:
        return TlsPeer(host, port, True, False, error, _not_after(tls_sock.getpeercert(binary_form=True)),
                       tls_sock.version())


def postgres_peer(host: str, port: int, *, ca_file: str | None, timeout: float = 10.0) -> TlsPeer:
    """TLS of a PostgreSQL endpoint (server or pooler) through the in-protocol ``SSLRequest``."""
    return _handshake(host, port, ca_file, timeout, postgres=True)


def https_peer(host: str, port: int, *, ca_file: str | None, timeout: float = 10.0) -> TlsPeer:
    """TLS of an HTTPS endpoint."""
    return _handshake(host, port, ca_file, timeout, postgres=False)


def database_endpoints(config: CutoverConfig) -> list[str]:
    """Config keys of the database endpoints the app uses or may fall back to, that are set."""
    keys = ["target.app_database_url", "target.session_pooler_url"]
    return [k for k in keys if getattr(config.target, k.split(".", 1)[1]) is not None]


def _verdict(name: str, label: str, peer: TlsPeer, min_days: int, ca_hint: str) -> CheckResult:
    problems: list[str] = []
    where = f"{label} ({peer.host}:{peer.port})"
    if not peer.offered:
        problems.append(f"{where} does not offer TLS: {peer.verify_error}; the app's traffic and credentials would "
                        f"travel in clear text: connect through the TLS endpoint")
        return result(name, problems, f"{where}: no TLS", {"tls": False})
    if not peer.verified:
        problems.append(f"the TLS certificate of {where} does not verify: {peer.verify_error}; {ca_hint}")
    days = peer.days_left()
    if days is not None and days < min_days:
        when = peer.not_after.strftime("%Y-%m-%d %H:%M UTC") if peer.not_after else "?"
        problems.append(f"the TLS certificate of {where} expires in {days:.1f} days ({when}), under "
                        f"thresholds.tls_min_days = {min_days}: renew it before the cutover")
    evidence = (f"{where}: {peer.protocol}, verified={peer.verified}, expires "
                f"{peer.not_after.isoformat() if peer.not_after else '?'} ({days:.1f} days left)"
                if days is not None else f"{where}: {peer.protocol}, verified={peer.verified}")
    figures = {"tls": True, "verified": peer.verified, "days_left": round(days, 2) if days is not None else None,
               "not_after": peer.not_after.isoformat() if peer.not_after else None, "protocol": peer.protocol}
    return result(name, problems, evidence, figures)


def check_database_tls(config: CutoverConfig, key: str) -> CheckResult:
    """TLS of the database endpoint at config ``key`` (e.g. ``target.app_database_url``)."""
    from pytest_cutover.config import lookup

    dsn: Secret = lookup(config, key)
    where = endpoint(dsn)
    if where.host.startswith("/") or not where.host:
        return result(f"tls[{key}]", [f"{key} ({where}) is a unix socket, not a network endpoint: nothing to "
                                      f"verify; the app must reach the target over TLS"], redact(str(where)))
    try:
        peer = postgres_peer(where.host, where.port, ca_file=config.target.ca_file,
                             timeout=config.thresholds.connect_timeout_s)
    except OSError as exc:
        return result(f"tls[{key}]", [f"{key} ({where}) cannot be reached for the TLS check: "
                                      f"{type(exc).__name__}: {exc}; check host and port"], redact(str(where)))
    return _verdict(f"tls[{key}]", key, peer, config.thresholds.tls_min_days,
                    "set target.ca_file to the CA that issued it, or use the host name the certificate names")


def check_api_tls(config: CutoverConfig) -> CheckResult:
    """TLS of the API (``app.api_base``, else ``app.health_url``)."""
    url = config.app.api_base or config.app.health_url or ""
    parts = urlsplit(url)
    label = "app.api_base" if config.app.api_base else "app.health_url"
    if parts.scheme != "https":
        return result("tls[api]", [f"{label} {redact(url)} is not https: the API serves tokens in clear text; "
                                   f"serve it over TLS"], redact(url), {"tls": False})
    try:
        peer = https_peer(parts.hostname or "", parts.port or 443, ca_file=config.app.ca_file,
                          timeout=config.thresholds.connect_timeout_s)
    except OSError as exc:
        return result("tls[api]", [f"{label} {redact(url)} cannot be reached for the TLS check: "
                                   f"{type(exc).__name__}: {exc}; check that the API is up"], redact(url))
    return _verdict("tls[api]", label, peer, config.thresholds.tls_min_days,
                    "set app.ca_file to the CA that issued it, or use the host name the certificate names")
