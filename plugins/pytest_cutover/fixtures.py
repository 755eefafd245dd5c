"""Fixtures every stage module uses: the config, the run context, figures, required keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, lookup
from pytest_cutover.context import RunContext
from pytest_cutover.plugin import _PROP_FIGURE, get_session

__all__ = ["cutover_config", "cutover_context", "cutover_require", "record_figure"]


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


@pytest.fixture
def cutover_require(cutover_config: CutoverConfig) -> Callable[..., Any]:
    """``require("target.database_url", ...)`` returns the values, or skips naming the first missing key.

    A check whose inputs are absent is skipped, never passed; the report lists it and the
    sign-off cannot say SUCCESS unless ``[waivers]`` gives a reason for that key.
    """

    def require(*keys: str) -> Any:
        values = []
        for key in keys:
            value = lookup(cutover_config, key)
            if value is None or value == "":
                pytest.skip(f"missing config key {key}")
            values.append(value)
        return values[0] if len(values) == 1 else tuple(values)

    return require


@pytest.fixture
def record_figure(request: pytest.FixtureRequest) -> Callable[[str, Any], None]:
    """``record_figure(name, value)`` stores a measured figure in the ledger and the report."""

    def record(name: str, value: Any) -> None:
        try:
            json.dumps(value)
        except TypeError as exc:
            raise TypeError(f"figure {name!r} is not JSON-serialisable: {exc}") from None
        request.node.user_properties.append((_PROP_FIGURE, {name: value}))

    return record
