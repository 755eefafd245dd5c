"""The precutover pre-sync check: missing, failed, stale and fresh pre-syncs, required or only noted."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_cutover.checks.presync import check_presync
from pytest_cutover.config import parse_config
from pytest_cutover.ledger import iso_utc

NOW = 1_800_000_000.0


def _config(required: bool, storage: bool = False, max_age: float = 36.0) -> Any:
    target = {"storage_url": "https://ref.supabase.co/storage/v1"} if storage else {}
    return parse_config({"run": {"id": "night"}, "target": target,
                         "migrate": {"presync_required": required, "presync_max_age_h": max_age}}, env={})


def _presync(step: str, hours_ago: float, ok: bool = True) -> dict[str, Any]:
    return {"kind": "migration", "step": step, "ok": ok, "mode": "presync",
            "figures": {"items": 1000, "at": iso_utc(NOW - hours_ago * 3600)}}


@pytest.mark.parametrize("required", [True, False])
def test_a_missing_presync_fails_only_when_the_night_depends_on_it(required: bool) -> None:
    full = {"kind": "migration", "step": "vectors", "ok": True, "mode": "full", "figures": {"at": iso_utc(NOW)}}
    state = check_presync(_config(required), [full], "night", now=NOW)
    assert state.check.ok is not required
    text = state.check.message if required else state.note
    assert "no passing pre-sync of the vectors in run night (none recorded)" in text
    assert "cutover migrate vectors --presync" in text
    assert (state.note is None) is required


def test_a_failed_or_stale_presync_fails_when_required_and_a_fresh_one_passes() -> None:
    config = _config(True, max_age=24)
    failed = check_presync(config, [_presync("vectors", 1, ok=False)], "night", now=NOW)
    assert not failed.check.ok and "its last attempt failed" in failed.check.message
    stale = check_presync(config, [_presync("vectors", 30)], "night", now=NOW)
    assert not stale.check.ok and "30.0 h old, over migrate.presync_max_age_h = 24" in stale.check.message
    fresh = check_presync(config, [_presync("vectors", 30), _presync("vectors", 2)], "night", now=NOW)
    assert fresh.check.ok and fresh.note is None, fresh.check.message
    assert fresh.check.figures["presync_vectors_age_h"] == 2.0


def test_blobs_need_their_own_presync_when_storage_is_configured() -> None:
    state = check_presync(_config(True, storage=True), [_presync("vectors", 1)], "night", now=NOW)
    assert not state.check.ok and "pre-sync of the blobs" in state.check.message
    both = check_presync(_config(True, storage=True), [_presync("vectors", 1), _presync("blobs", 1)], "night",
                         now=NOW)
    assert both.check.ok, both.check.message
