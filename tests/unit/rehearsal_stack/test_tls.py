"""The rehearsal CA: SANs for 127.0.0.1/localhost, expiry, the expiring variant, a real handshake."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from pytest_cutover.rehearsal import tls
from pytest_cutover.util import certs


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tls.CertificateAuthority:
    return tls.make_ca(tmp_path_factory.mktemp("ca"))


def test_server_cert_has_ip_and_dns_sans_and_private_key(ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert = tls.issue_server_cert(ca, tmp_path, name="api")
    parsed = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert parsed.issuer == x509.load_pem_x509_certificate(ca.cert_path.read_bytes()).subject
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert 29.9 < cert.days_left() <= 30


def test_expiring_variant_is_valid_now_but_inside_the_warning_window(ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert = tls.issue_server_cert(ca, tmp_path, name="soon", days=5)
    assert 4.9 < certs.days_left(certs.cert_not_after(cert.cert_path)) <= 5
    with pytest.raises(ValueError, match="must be positive"):
        tls.issue_server_cert(ca, tmp_path, name="bad", days=0)


def test_handshake_verifies_hostname_against_sans(ca, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert = tls.issue_server_cert(ca, tmp_path, name="srv")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert.cert_path, cert.key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.recv(1)
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert_path))
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        der = conn.getpeercert(True)
        conn.sendall(b"x")
    assert certs.cert_not_after(der) == cert.not_after.replace(microsecond=0)
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLCertVerificationError):
        client_ctx.wrap_socket(raw, server_hostname="db.example.com")
    thread.join(5)
    listener.close()
