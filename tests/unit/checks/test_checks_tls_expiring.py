"""``tls-expiring``: a stack whose pooler and API certificates expire in 5 days fails the TLS checks.

The fault sets the certificates' lifetime when the stack is built, so it needs its own stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_cutover.checks import tls
from pytest_cutover.config import CutoverConfig, load_config

from .conftest import TINY

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def expiring_config() -> Iterator[CutoverConfig]:
    from pytest_cutover.rehearsal.seed import SeedSize
    from pytest_cutover.rehearsal.stack import EmbeddedStack, read_env_file, services_available

    with EmbeddedStack(None, size=SeedSize(**TINY), faults=["tls-expiring"],
                       services=services_available() is None) as stack:
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


def test_expiring_api_certificate_fails(expiring_config: CutoverConfig) -> None:
    if not expiring_config.app.api_base:
        pytest.skip("the stack was built without the app (services unavailable)")
    check = tls.check_api_tls(expiring_config)
    assert not check.ok and "the TLS certificate of app.api_base (127.0.0.1:" in check.message


def test_a_lower_threshold_accepts_the_same_certificate(expiring_config: CutoverConfig) -> None:
    lenient: Any = expiring_config.model_copy(
        update={"thresholds": expiring_config.thresholds.model_copy(update={"tls_min_days": 3})})
    check = tls.check_database_tls(lenient, "target.app_database_url")
    assert check.ok, check.message
