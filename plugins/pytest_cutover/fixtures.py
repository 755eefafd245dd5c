"""Fixtures every stage module uses: the config, the run context, figures, required keys, SQL, events.

A ``pytest11`` plugin, so the packaged suite and a user's own staged tests (in any directory) see the
same fixtures.  Everything here reads the cutover config; nothing knows whether it is production or a
rehearsal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, lookup
from pytest_cutover.context import RunContext
from pytest_cutover.session_keys import PROP_FIGURE, announce, get_session

__all__ = ["RUNBOOK_MARKER", "announce_event", "ctx", "cutover_config", "cutover_context", "cutover_require",
           "missing_keys", "needs", "record_figure", "runbook_line", "skip_reason", "sql", "tenant_sql"]

RUNBOOK_MARKER = "runbook"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{RUNBOOK_MARKER}(line): the runbook line a staged test covers, quoted "
                                       "(the report's checklist ticks the line from the test's outcome)")


def runbook_line(item: pytest.Item) -> str | None:
    """The runbook line ``item`` covers: its ``runbook`` marker (a parametrised case's own marker first).

    Fallback: the first line of the test's docstring, because users' own staged checks written before the
    marker existed quote their line there; every test of the packaged suite carries the marker (a unit test
    keeps it so).
    """
    marker = item.get_closest_marker(RUNBOOK_MARKER)
    if marker is not None and marker.args:
        return str(marker.args[0])
    doc = (getattr(getattr(item, "obj", None), "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else None


@pytest.fixture(scope="session")
def cutover_context(pytestconfig: pytest.Config) -> RunContext:
    """The run this invocation belongs to: run id, reports folder, host, user, suite revision."""
    return get_session(pytestconfig).context


@pytest.fixture(scope="session")
def cutover_config(pytestconfig: pytest.Config) -> CutoverConfig:
    """The validated ``cutover.toml``; tests that need it are skipped when there is none."""
    config = get_session(pytestconfig).cutover_config
    if config is None:
        pytest.skip("no cutover config found: pass --cutover-config PATH or create ./cutover.toml")
    return config


def missing_keys(config: CutoverConfig, keys: tuple[str, ...]) -> list[str]:
    """The keys of ``keys`` that are absent or empty, each as its reason names it; ``"a|b"``: either will do."""
    missing = []
    for key in keys:
        choices = key.split("|")
        if all(lookup(config, k) in (None, "") for k in choices):
            missing.append(choices[0] + "".join(f" (or {k})" for k in choices[1:]))
    return missing


def skip_reason(config: CutoverConfig, missing: list[str]) -> str:
    """``missing config key app.health_url in /ops/cutover.toml``: the keys and the file to add them to."""
    where = config.path or "the cutover config"
    return f"missing config key{'s' if len(missing) > 1 else ''} {', '.join(missing)} in {where}"


@pytest.fixture(scope="session")
def needs(cutover_config: CutoverConfig) -> Callable[..., Any]:
    """``needs("app.health_url", "source.qdrant_path|source.qdrant_url")``: the values (one key: its value), or a
    skip of the caller naming every missing key and the config file (``a|b``: either key will do).

    The one helper for "this check needs these config keys", in tests and in fixtures of any scope. A check
    whose inputs are absent is skipped, never passed; the report lists it and the sign-off cannot say SUCCESS
    unless ``[waivers]`` gives a reason for that key.
    """

    def check(*keys: str) -> Any:
        missing = missing_keys(cutover_config, keys)
        if missing:
            pytest.skip(skip_reason(cutover_config, missing))
        values = [next(v for v in (lookup(cutover_config, k) for k in key.split("|")) if v not in (None, ""))
                  for key in keys]
        return values[0] if len(values) == 1 else tuple(values)

    return check


@pytest.fixture(scope="session")
def cutover_require(needs: Callable[..., Any]) -> Callable[..., Any]:
    """The earlier name of :func:`needs` (users' own checks may still ask for it)."""
    return needs


@pytest.fixture(scope="session")
def ctx(cutover_context: RunContext, cutover_config: CutoverConfig) -> RunContext:
    """The run this invocation belongs to, with its (validated) config."""
    return cutover_context


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


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """``record_figure(name, value)`` stores a measured figure in the ledger and the report."""

    def record(name: str, value: Any) -> None:
        try:
            json.dumps(value)
        except TypeError as exc:
            raise TypeError(f"figure {name!r} is not JSON-serialisable: {exc}") from None
        request.node.user_properties.append((PROP_FIGURE, {name: value}))

    return record
