"""Every fault of the catalog, planted for real, fails the stage that guards it and no earlier one, with a
message naming what it broke.

The reversible faults share one stack (``SharedStack``: plant, run the suite, undo, prove the undo
restored the stack); the others each get a fresh ``cutover rehearse --fault NAME --until STAGE``.
Under xdist (``--dist loadgroup``) the shared-stack tests form two groups, each with its own stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cutover.rehearsal.faults import list_faults
from pytest_cutover.rehearsal.matrix import MatrixRow, SharedStack, fresh_row, in_matrix_order, matrix_kind
from pytest_cutover.stages import STAGES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MONITOR_WINDOW_S = 6.0

#: What the guarding stage's failures must name (lower case): the object each fault broke.
NAMES: dict[str, str] = {
    "rls-disabled": "disabled on threads",
    "rls-not-forced": "not forced on threads",
    "policy-using-true": "threads_read_all",
    "app-role-bypassrls": "bypassrls",
    "session-set": "session-scoped",
    "session-pooler-url": "not a transaction pooler",
    "statement-cache-on": "statement_cache_size",
    "missing-point": "missing a point",
    "nan-vector": "nan-or-inf",
    "wrong-dim-vector": "wrong-dimension",
    "payload-org-mismatch": "org-mismatch",
    "vector-altered": "differ from qdrant",
    "blob-corrupt": "readback-mismatch",
    "bucket-public": "bucket attachments is public",
    "maintenance-ignored": "still says healthy",
    "app-fails-start": "restart",
    "env-overridden": "did not take effect",
    "syntax-error": "app/search.py",
    "merge-conflict": "conflict marker",
    "stale-backup": "72.0 h old",
    "dirty-git": "uncommitted change",
    "error-spike": "error-rate",
    "slow-search": "p95",
    "db-conn-failures": "database",
    "cross-org-leak": "rls-leak",
    "tls-expiring": "expires in",
    "private-tier-leak": "private fragments",
    "missing-attestation": "team.stakeholders_notified",
    "on-call-gap": "no on-call contact is on duty",
    "definer-view": "public.thread_titles",
    "view-no-invoker": "public.recent_messages",
    "definer-function": "public.org_threads(p_org text)",
    "anon-grant": "anon-grant public.threads",
    "secrets-table": "public.integration_credentials (api_key)",
    "tenant-column-renamed": "public.projects",
    "policy-user-metadata": "policy-user-metadata public.threads policy threads_by_metadata",
    "policy-unbound": "policy-unbound public.threads policy threads_signed_in",
    # ``carried`` (the sync stage must pass, every change verified): no failure names it
    "qdrant-changed-after-presync": "",
}

SHARED = [f.name for f in in_matrix_order(list_faults()) if matrix_kind(f) != "fresh"]
FRESH = [f.name for f in list_faults() if matrix_kind(f) == "fresh"]
# Two shared stacks, one per xdist worker, halve the matrix's critical path: the precutover faults alternate
# between them; the monitor faults (which need the clean stages first) and the clean monitor passes stay on B.
# On one worker both groups share one stack, in collection order (every precutover fault before the monitor ones).
GROUP_A, GROUP_B = "fault-matrix-shared-stack-a", "fault-matrix-shared-stack-b"
_PRECUTOVER_SHARED = [f.name for f in in_matrix_order(list_faults()) if matrix_kind(f) == "shared-precutover"]


def _group(fault: str) -> str:
    return GROUP_A if fault in _PRECUTOVER_SHARED[::2] else GROUP_B


def assert_guarded(row: MatrixRow) -> None:
    """The guarding stage failed first, every earlier one passed, and a failure names the fault's object; a
    ``carried`` change: every stage up to the guard passed (its checks verified the change was carried)."""
    verdicts = dict(row.verdicts)
    guard = STAGES.index(row.guard)
    if row.expect == "carried":
        assert row.caught and all(verdicts.get(s) == "passed" for s in STAGES[:guard + 1]), (row.message, verdicts)
        return
    assert row.failed == row.guard, f"{row.fault}: first failed stage {row.failed}, expected {row.guard}: {row.message}"
    assert all(verdicts.get(s) == "passed" for s in STAGES[:guard]), verdicts
    word = NAMES[row.fault]
    assert any(word in m.lower() for m in row.messages), f"{row.fault}: no failure names {word!r}: {row.messages}"


def test_every_fault_in_the_catalog_is_in_the_matrix_with_the_object_it_breaks() -> None:
    assert set(NAMES) == {f.name for f in list_faults()}
    assert sorted(SHARED + FRESH) == sorted(NAMES)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    from pytest_cutover.rehearsal.stack import EmbeddedStack, services_available

    reason = services_available()
    if reason:
        pytest.skip(f"rehearsal services not available: {reason}")
    with EmbeddedStack(None, monitor_window_s=MONITOR_WINDOW_S, monitor_interval_s=MONITOR_WINDOW_S / 8) as stack:
        yield SharedStack(stack, tmp_path_factory.mktemp("matrix-shared"), monitor_window_s=MONITOR_WINDOW_S)


@pytest.mark.xdist_group(GROUP_A)
def test_every_reversible_fault_changes_the_stack_state_and_its_undo_restores_it(shared: SharedStack) -> None:
    """The shared stack's reset is proven, not assumed: planting each reversible fault shows in
    ``stack_state`` (so a missing undo would be caught before the next fault), and its undo restores it."""
    from pytest_cutover.rehearsal.matrix import stack_state

    stack = shared.stack
    baseline = stack_state(stack)
    for name in SHARED:
        stack.plant(name)
        assert stack_state(stack) != baseline, f"planting {name} changed nothing the matrix checks"
        stack.undo(name)
        assert stack_state(stack) == baseline, f"undoing {name} left the stack changed"


@pytest.mark.parametrize("fault", [pytest.param(f, marks=pytest.mark.xdist_group(_group(f))) for f in SHARED])
def test_a_reversible_fault_fails_its_stage_on_the_shared_stack(shared: SharedStack, fault: str) -> None:
    assert_guarded(shared.row(fault))


@pytest.mark.xdist_group(GROUP_B)
def test_repeated_clean_monitor_passes_close_the_window_once(shared: SharedStack) -> None:
    """After the monitor faults, the shared run watches on like Week 1: each clean pass passes and lands in the
    ledger, and only the first turns maintenance off and tells users (no "maintenance complete" every pass)."""
    import json

    for _ in range(2):
        report = shared.monitor_pass()
        assert dict((s["name"], s["verdict"]) for s in report["stages"])["monitor"] == "passed", report["issues"]
    ledger = shared.reports_dir / str(shared.monitor_run) / "ledger.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    offs = [r for r in records if r["kind"] == "action" and r.get("action") == "maintenance-off"]
    assert len(offs) == 1, offs
    assert sum(r["kind"] == "monitor-window" for r in records) >= 2


@pytest.mark.parametrize("fault", FRESH)
def test_a_fault_fails_its_stage_on_a_fresh_stack(tmp_path: Path, fault: str) -> None:
    assert_guarded(fresh_row(fault, tmp_path, monitor_window_s=MONITOR_WINDOW_S))

