"""Fixtures of the monitor tests: the loopback fake app and a probe set pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cutover.monitor.probes import ProbeSet, build_probe_specs

from .fakeapp import TOKEN, ServedApp, serve_fake_app


@pytest.fixture
def fake_app(tmp_path: Path) -> Iterator[ServedApp]:
    """The fake backend on a free loopback port, logging JSON lines to ``tmp_path/app.log``."""
    with serve_fake_app(tmp_path) as served:
        yield served


@pytest.fixture
def probe_set(fake_app: ServedApp) -> ProbeSet:
    """Health + threads/search/attachment for org_0001 and org_0002."""
    specs = build_probe_specs(fake_app.url, orgs=["org_0001", "org_0002"], search_fragments={"org_0001": 101},
                              attachments={"org_0001": 7, "org_0002": 8}, search_dim=8)
    return ProbeSet(specs, token=TOKEN, timeout_s=2.0)
