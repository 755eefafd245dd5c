"""``tls-expiring``: a stack whose pooler and API certificates expire in 5 days fails the TLS checks.

The fault sets the certificates' lifetime when the stack is built, so it needs its own stack.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.checks import tls
from pytest_cutover.config import CutoverConfig, load_config, parse_config

from .conftest import TINY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def expiring_config() -> Iterator[CutoverConfig]:
    from pytest_cutover.rehearsal.seed import SeedSize
    from pytest_cutover.rehearsal.stack import EmbeddedStack, read_env_file

    # Database and poolers only: the poolers' certificates carry the fault; the API is served below.
    with EmbeddedStack(None, size=SeedSize(**TINY), faults=["tls-expiring"], services=False) as stack:
        yield load_config(stack.config_path, env=read_env_file(stack.stack_env_path))


@pytest.mark.parametrize("key", ["target.app_database_url", "target.session_pooler_url"])
def test_expiring_pooler_certificate_fails_with_days_left(expiring_config: CutoverConfig, key: str) -> None:
    check = tls.check_database_tls(expiring_config, key)
    assert not check.ok
    assert check.figures["verified"] is True  # still valid: only the expiry check catches it
    assert 4.9 < check.figures["days_left"] <= 5.0
    assert len(check.problems) == 1
    assert check.problems[0].startswith(f"the TLS certificate of {key} (127.0.0.1:")
    assert "under thresholds.tls_min_days = 14: renew it before the cutover" in check.problems[0]


@pytest.fixture
def expiring_https(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An HTTPS server on loopback whose certificate (from a throwaway CA) expires in 5 days."""
    from pytest_cutover.rehearsal import faults
    from pytest_cutover.rehearsal import tls as rehearsal_tls

    ca = rehearsal_tls.make_ca(tmp_path / "ca")
    cert = rehearsal_tls.issue_server_cert(ca, tmp_path / "api", name="api", days=faults.TLS_EXPIRING_DAYS)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", str(ca.cert_path)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_expiring_api_certificate_fails(expiring_https: tuple[str, str]) -> None:
    url, ca_file = expiring_https
    cfg = parse_config({"app": {"api_base": url, "ca_file": ca_file}})
    check = tls.check_api_tls(cfg)
    assert check.figures["verified"] is True
    assert check.problems[0].startswith("the TLS certificate of app.api_base (127.0.0.1:")
    assert "expires in 5.0 days" in check.problems[0] or "expires in 4.9 days" in check.problems[0]
    untrusted = tls.check_api_tls(parse_config({"app": {"api_base": url}}))
    assert "does not verify: unable to get local issuer certificate" in untrusted.message


def test_a_lower_threshold_accepts_the_same_certificate(expiring_config: CutoverConfig) -> None:
    lenient: Any = expiring_config.model_copy(
        update={"thresholds": expiring_config.thresholds.model_copy(update={"tls_min_days": 3})})
    check = tls.check_database_tls(lenient, "target.app_database_url")
    assert check.ok, check.message
