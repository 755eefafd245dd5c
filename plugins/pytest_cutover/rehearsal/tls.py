"""A throwaway certificate authority for the rehearsal stack.

Why: the runbook's "SSL certificates valid" check must run for real.  The embedded PostgreSQL is
built without OpenSSL, so PgBouncer terminates client TLS in front of it and uvicorn serves the app
over HTTPS; both present a server certificate issued here for ``127.0.0.1``/``localhost`` (as SANs:
clients match names against the SAN, never the CN).  The ``tls-expiring`` fault issues a certificate
that expires inside the warning window (``thresholds.tls_min_days``) but is still valid, so TLS
keeps working and only the expiry check catches it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_cutover.util.certs import days_left

__all__ = [
    "DEFAULT_HOSTS",
    "CertificateAuthority",
    "ServerCertificate",
    "issue_server_cert",
    "make_ca",
]

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate (``cert_path``, give it to clients) and its private key (``key_path``, 0600)."""

    cert_path: Path
    key_path: Path
    not_after: dt.datetime


@dataclass(frozen=True)
class ServerCertificate:
    """A server certificate issued by the rehearsal CA, with its key (0600)."""

    cert_path: Path
    key_path: Path
    hosts: tuple[str, ...]
    not_after: dt.datetime

    def days_left(self, now: dt.datetime | None = None) -> float:
        return days_left(self.not_after, now)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _new_key():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(directory: Path, *, common_name: str = "pytest-cutover rehearsal CA",
            days: int = 30) -> CertificateAuthority:
    """Create a self-signed CA in ``directory`` (``ca.pem`` and ``ca.key``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = _now() - dt.timedelta(minutes=5)
    end = _now() + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "ca.pem"
    key_path = directory / "ca.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    return CertificateAuthority(cert_path=cert_path, key_path=key_path, not_after=cert.not_valid_after_utc)


def issue_server_cert(ca: CertificateAuthority, directory: Path, *, name: str = "server",
                      hosts: Sequence[str] = DEFAULT_HOSTS, days: float = 30) -> ServerCertificate:
    """Issue ``<name>.pem``/``<name>.key`` in ``directory`` for ``hosts`` (IPs and DNS names as SANs).

    ``days`` may be small (e.g. 5) to plant ``tls-expiring``: the certificate is valid now but
    expires inside the warning window.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days <= 0:
        raise ValueError(f"certificate lifetime must be positive, got {days} days")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key_path.read_bytes(), password=None)
    key = _new_key()
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    start = _now() - dt.timedelta(minutes=5)
    end = _now() + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),  # type: ignore[arg-type]
                       critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(key_path, _key_pem(key))
    return ServerCertificate(cert_path=cert_path, key_path=key_path, hosts=tuple(hosts),
                             not_after=cert.not_valid_after_utc)
