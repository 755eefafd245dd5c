"""Shared fixtures of the acceptance suite: the run context and SQL against the configured databases.

Everything here reads the cutover config; nothing knows whether it is production or a rehearsal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, lookup
from pytest_cutover.context import RunContext
from pytest_cutover.plugin import announce


@pytest.fixture(scope="session")
def ctx(cutover_context: RunContext, cutover_config: CutoverConfig) -> RunContext:
    """The run this invocation belongs to, with its (validated) config."""
    return cutover_context


@pytest.fixture(scope="session")
def needs(cutover_config: CutoverConfig) -> Callable[..., None]:
    """``needs("app.health_url", ...)`` skips the caller naming the first config key that is absent."""

    def check(*keys: str) -> None:
        for key in keys:
            if lookup(cutover_config, key) in (None, ""):
                pytest.skip(f"missing config key {key}")

    return check


@pytest.fixture(scope="session")
def sql(cutover_config: CutoverConfig) -> Callable[..., list[Any]]:
    """``sql("target.database_url", "SELECT ...", *args)`` -> rows, over the configured DSN with its CA and timeout."""
    from pytest_cutover.checks.base import run_sync
    from pytest_cutover.checks.db import config_connection

    def fetch(key: str, query: str, *args: Any) -> list[Any]:
        async def go() -> list[Any]:
            async with config_connection(cutover_config, key) as conn:
                return list(await conn.fetch(query, *args))

        return run_sync(go(), timeout=cutover_config.thresholds.connect_timeout_s * 6)

    return fetch


@pytest.fixture(scope="session")
def tenant_sql(cutover_config: CutoverConfig) -> Callable[..., list[Any]]:
    """``tenant_sql(key, org, "SELECT ...")`` -> rows, inside one transaction whose tenant is set the app's way
    (``set_config(<rls_org_setting>, org, true)``: transaction-scoped, safe through a transaction pooler)."""
    from pytest_cutover.checks.base import run_sync
    from pytest_cutover.checks.db import config_connection

    setting = cutover_config.schema_.rls_org_setting

    def fetch(key: str, org: str, query: str, *args: Any) -> list[Any]:
        async def go() -> list[Any]:
            async with config_connection(cutover_config, key) as conn, conn.transaction():
                await conn.execute("SELECT set_config($1, $2, true)", setting, org)
                return list(await conn.fetch(query, *args))

        return run_sync(go(), timeout=cutover_config.thresholds.connect_timeout_s * 6)

    return fetch


@pytest.fixture(scope="session")
def announce_event(pytestconfig: pytest.Config) -> Callable[..., None]:
    """``announce_event("maintenance-enabled", **details)``: tell notifiers (and a rehearsal) what just happened."""

    def fire(event: str, **details: Any) -> None:
        announce(pytestconfig, event, **details)

    return fire
