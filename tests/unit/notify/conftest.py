"""A real webhook receiver on a free loopback port, and the lead's pytester wrapper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_cutover.notify.receiver import WebhookReceiver

from ..core.conftest import CutoverPytester, cutover_pytester

__all__ = ["CutoverPytester", "Receiver", "cutover_pytester", "receiver"]

Receiver = WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as rx:
        yield rx


@pytest.fixture
def notify_args(pytestconfig: pytest.Config) -> list[str]:
    """``-p pytest_cutover.notify.plugin`` until the cutover plugin registers the notify plugin itself
    (then ``-p`` would re-import an already imported module: a rewrite warning, an error here)."""
    wired = pytestconfig.pluginmanager.get_plugin("cutover-notify") is not None
    return [] if wired else ["-p", "pytest_cutover.notify.plugin"]
