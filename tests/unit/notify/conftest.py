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
