"""The plan's rules as pure functions: recorded figures in, estimates out (plan/estimate.py's docstring)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pytest_cutover.plan.actual import DONE, PENDING, RUNNING, SKIPPED, step_actuals
from pytest_cutover.plan.estimate import Budget, Counts, make_plan
from pytest_cutover.plan.figures import RunFigures, migration_pass, run_figures
from pytest_cutover.plan.steps import STEPS

from .factory import BLOBS, T0, VECTORS, at, night

ENV = "postgresql://127.0.0.1:5432/postgres"
COUNTS = Counts(points=2000, blob_rows=40, blob_bytes=8_000_000, source="test")


def budget(**changes: object) -> Budget:
    values = {"window_start": T0, "window_minutes": 120.0, "margin": 0.25, "monitor_window_s": 1800.0,
              "notify_worst_s": {"maintenance-enabled": 30.0, "maintenance-disabled": 30.0}, "environment": ENV}
    values.update(changes)
    return Budget(**values)  # type: ignore[arg-type]


def test_the_actual_steps_of_a_finished_night_come_from_the_records_times() -> None:
    actual = step_actuals(night())
    assert [actual[s.key].state for s in STEPS] == [DONE] * len(STEPS)
    seconds = {k: round(a.seconds or 0, 3) for k, a in actual.items()}
    assert seconds == {"maintenance-on": 0.1, "notify-start": 0.3, "final-sync": 9.5, "env-switch": 0.05,
                       "restart": 1.8, "smoke": 1.0, "rls": 2.5, "monitor": 8.5, "maintenance-off": 0.1,
                       "notify-end": 0.2}


def test_a_sync_under_way_is_running_from_the_last_maintenance_delivery_and_later_steps_pend() -> None:
    records = night()[:4]  # config, precutover, maintenance-on, the delivery: no sync stage record yet
    actual = step_actuals(records)
    assert actual["maintenance-on"].state == DONE
    assert actual["final-sync"].state == RUNNING and actual["final-sync"].start == T0 + timedelta(seconds=0.5)
    assert actual["restart"].state == PENDING and actual["monitor"].state == PENDING


def test_no_delivery_recorded_means_the_notification_step_was_skipped() -> None:
    records = [r for r in night() if r["kind"] != "notification"]
    actual = step_actuals(records)
    assert actual["notify-start"].state == SKIPPED and "no maintenance-enabled delivery" in actual["notify-start"].note


def test_migration_figures_are_read_under_the_engine_names_and_the_generic_ones() -> None:
    engine = migration_pass("vectors", VECTORS)
    assert engine is not None and (engine.items, engine.load_s, engine.index_s, engine.verify_s, engine.other_s) == (
        1000, 2.0, 1.0, 0.5, 1.0)
    generic = migration_pass("vectors", {"items": 500, "seconds": {"read": 1.0, "write": 0.5, "index": 0.0,
                                                                   "verify": 0.25}, "changed": 5, "added": 2,
                                         "deleted": 1, "mode": "delta", "at": "2026-11-26T07:00:00Z"})
    assert generic is not None
    assert (generic.mode, generic.items, generic.read_s, generic.write_s, generic.load_s, generic.changed) == (
        "delta", 500, 1.0, 0.5, 1.5, 8)
    assert migration_pass("vectors", {**VECTORS, "dry_run": True}) is None
    assert migration_pass("vectors", {"points": 0, "duration_s": 1.0}) is None


def test_the_run_figures_hold_both_passes_every_step_and_the_sync_checks() -> None:
    figures = run_figures("r1", night())
    assert {p.step for p in figures.passes} == {"vectors", "blobs"}
    checks = next(t for t in figures.timings if t.step == "sync-checks")
    assert round(checks.seconds, 3) == 4.2 and checks.items == 1000  # 9.5 - (3.5 + 1.0) - (0.6 + 0.2)
    assert figures.environment == ENV


def test_a_full_sync_is_estimated_from_the_latest_pass_scaled_by_points_and_bytes() -> None:
    plan = make_plan("night", COUNTS, budget(), [run_figures("rehearsal", night())])
    vectors, blobs, checks = plan.step("final-sync").parts
    assert vectors.seconds == pytest.approx(2000 * 3.5 / 1000 + 1.0)  # load + index + verify per point, + parity
    assert blobs.seconds == pytest.approx(8_000_000 * 0.8 / 4_000_000)  # by bytes
    assert checks.seconds == pytest.approx(4.2 * 2)  # scaled by points now / then
    final = plan.step("final-sync")
    assert final.estimate_s == pytest.approx(18.0) and final.planned_s == pytest.approx(18.0 * 1.25)
    assert "full sync + index build" in vectors.basis and "run rehearsal" in vectors.basis


def test_with_a_presync_the_final_sync_is_a_delta_that_keeps_the_index() -> None:
    presync = {"kind": "migration", "step": "vectors", "ok": True, "mode": "presync", "ts": at(-3600),
               "figures": {"items": 1990, "seconds": {"read": 2.0, "write": 1.0, "index": 30.0, "verify": 1.0}}}
    plan = make_plan("night", COUNTS, budget(), [run_figures("night", [*night()[:2], presync]),
                                                 run_figures("rehearsal", night())])
    vectors = plan.step("final-sync").parts[0]
    # read + verify every point, write max(|2000 - 1990|, 2% x 2000 = 40) changed points; no index
    expected = 2000 * (2.0 + 1.0) / 1990 + 40 * 1.0 / 1990
    assert vectors.seconds == pytest.approx(expected)
    assert "delta after the pre-sync" in vectors.basis and "40 changed" in vectors.basis
    assert "delta after the pre-sync" in plan.step("final-sync").what


def test_a_measured_delta_sets_the_change_fraction() -> None:
    presync = {"kind": "migration", "step": "vectors", "ok": True, "mode": "presync", "ts": at(-7200),
               "figures": {"items": 2000, "read_s": 2.0, "write_s": 1.0, "verify_s": 1.0}}
    delta = {"kind": "migration", "step": "vectors", "ok": True, "mode": "delta", "ts": at(-3600),
             "figures": {"items": 2000, "read_s": 4.0, "write_s": 2.0, "verify_s": 2.0, "changed": 100}}
    plan = make_plan("night", COUNTS, budget(), [run_figures("night", [presync, delta])])
    vectors = plan.step("final-sync").parts[0]
    assert vectors.seconds == pytest.approx(2000 * 6.0 / 2000 + 100 * 2.0 / 2000)  # 5% changed, delta's rates
    assert "100 changed (5.0%)" in vectors.basis


def test_fixed_steps_prefer_the_same_systems_then_the_runbook_then_another_environment() -> None:
    elsewhere = run_figures("rehearsal", night("postgresql://10.0.0.9:5432/postgres"))
    plan = make_plan("night", COUNTS, budget(), [elsewhere])
    restart = plan.step("restart")
    assert restart.estimate_s == 600 and "runbook" in restart.basis  # the runbook's 10 minutes beat a rehearsal
    rls = plan.step("rls")  # the runbook states no time for rls: the rehearsal's, flagged
    assert rls.estimate_s == pytest.approx(2.5) and "another environment" in rls.basis
    same = make_plan("night", COUNTS, budget(), [run_figures("rehearsal", night(ENV))])
    assert same.step("restart").estimate_s == pytest.approx(1.8) and "measured" in same.step("restart").basis


def test_maintenance_off_stands_in_for_itself_by_maintenance_on_when_never_measured() -> None:
    plan = make_plan("night", COUNTS, budget(), [run_figures("r", night(ENV, monitor=False))])
    off = plan.step("maintenance-off")
    assert off.estimate_s == pytest.approx(0.1) and off.basis.startswith("as maintenance-on")


def test_notifications_cost_nothing_without_a_channel_and_the_worst_case_without_a_measure() -> None:
    plan = make_plan("night", COUNTS, budget(notify_worst_s={"maintenance-enabled": 30.0}), [])
    assert plan.step("notify-end").estimate_s == 0.0 and "no [notify] channel" in plan.step("notify-end").basis
    assert plan.step("notify-start").estimate_s == 30.0 and "worst case" in plan.step("notify-start").basis


def test_the_margin_applies_to_estimates_and_not_to_the_configured_monitor_window() -> None:
    plan = make_plan("night", COUNTS, budget(margin=0.5), [run_figures("r", night(ENV))])
    monitor = plan.step("monitor")
    assert monitor.planned_s == 1800.0 and monitor.fixed_s == 1800.0
    assert plan.step("restart").planned_s == pytest.approx(1.8 * 1.5)
    assert plan.total_s == pytest.approx(sum(s.planned_s for s in plan.steps))  # type: ignore[misc]


def test_steps_are_laid_out_back_to_back_from_the_window_start() -> None:
    plan = make_plan("night", COUNTS, budget(), [run_figures("r", night(ENV))])
    assert plan.steps[0].start == T0
    for before, after in zip(plan.steps, plan.steps[1:], strict=False):
        assert after.start == before.end
    assert plan.fits is True and plan.over_s is not None and plan.over_s < 0


def test_a_window_too_short_does_not_fit_and_says_by_how_much() -> None:
    plan = make_plan("night", COUNTS, budget(window_minutes=20.0), [run_figures("r", night(ENV))])
    assert plan.fits is False
    assert plan.over_s == pytest.approx(plan.total_s - 1200)  # type: ignore[operator]
    assert any("does not fit" in p and "20-minute window" in p and "over" in p for p in plan.problems)


def test_a_missing_figure_is_named_with_how_to_get_it_and_nothing_fits() -> None:
    plan = make_plan("night", COUNTS, budget(), [])
    assert plan.fits is None and plan.total_s is None
    joined = "\n".join(plan.problems)
    assert "cannot estimate final-sync: vectors: no measured vector pass" in joined
    assert "`cutover migrate vectors --presync`" in joined and "`cutover rehearse`" in joined
    assert "cannot estimate rls" in joined


def test_unknown_counts_are_a_missing_figure_too() -> None:
    plan = make_plan("night", Counts(), budget(), [run_figures("r", night(ENV))])
    assert "the number of points in the Qdrant collection" in (plan.step("final-sync").missing or "")


def test_without_a_window_the_plan_is_printed_but_cannot_be_judged() -> None:
    plan = make_plan("night", COUNTS, budget(window_start=None, window_minutes=None), [run_figures("r", night(ENV))])
    assert plan.fits is None and plan.steps[0].start is None
    assert any("set [run] window_start and window_minutes" in p for p in plan.problems)


def test_this_runs_figures_win_over_a_newer_rehearsal() -> None:
    mine = run_figures("night", night(ENV))
    faster = {**VECTORS, "duration_s": 0.2}
    rehearsal = night(ENV)
    rehearsal[4] = {**rehearsal[4], "figures": {"vectors": faster, "blobs": BLOBS}}
    plan = make_plan("night", COUNTS, budget(), [run_figures("rehearsal", rehearsal), mine])
    assert "run night" in plan.step("final-sync").parts[0].basis


def test_as_dict_is_json_ready() -> None:
    import json

    plan = make_plan("night", COUNTS, budget(), [RunFigures("r", ENV)])
    data = json.loads(json.dumps(plan.as_dict()))
    assert [s["step"] for s in data["steps"]] == [s.key for s in STEPS]
    assert data["window_start"] == "2026-11-26T08:00:00Z"


@pytest.mark.parametrize("module", ["plan.actual", "plan.cli", "plan.estimate", "plan.figures", "plan.inputs",
                                    "plan.progress", "plan.steps", "report.plan"])
def test_public_names_are_sorted_and_exist(module: str) -> None:
    import importlib

    mod = importlib.import_module(f"pytest_cutover.{module}")

    def isort_key(name: str) -> tuple[int, str]:  # constants, then classes, then functions (ruff RUF022)
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert list(mod.__all__) == sorted(mod.__all__, key=isort_key)
    assert all(hasattr(mod, name) for name in mod.__all__)


def test_a_rehearsal_with_a_presync_and_a_delta_sync_stage_plans_a_delta_from_the_delta() -> None:
    """Figures shaped as the engine writes them for a pre-sync record and a delta sync stage (flat names)."""
    presync = {"kind": "migration", "step": "vectors", "ok": True, "mode": "presync", "ts": at(-600),
               "figures": {"mode": "presync", "items": 1000, "points": 1000, "duration_s": 2.0, "read_s": 1.5,
                           "write_s": 1.2, "index_s": 30.0, "verify_s": 0.5, "total_s": 33.0, "at": at(-600)}}
    delta = {**VECTORS, "mode": "delta", "items": 1000, "duration_s": 1.2, "read_s": 1.0, "write_s": 0.1,
             "index_s": 0.0, "verify_s": 0.5, "total_s": 2.0, "changed": 10, "added": 5, "deleted": 5}
    records = night(ENV)
    records.insert(2, presync)
    records[5] = {**records[5], "figures": {"vectors": delta, "blobs": BLOBS}}
    passes = run_figures("rehearsal", records).passes
    assert [(p.origin, p.mode) for p in passes if p.step == "vectors"] == [
        ("cutover migrate vectors (presync)", "presync"), ("the sync stage", "delta")]
    assert next(p for p in passes if p.mode == "presync").load_s == 2.0  # the wall clock, not read + write
    plan = make_plan("rehearsal", COUNTS, budget(), [run_figures("rehearsal", records)])
    vectors = plan.step("final-sync").parts[0]
    # 2000 points read (1.0/1000) and verified (0.5/1000); changed max(|2000 - 1000|, 2% of 2000) = 1000 at 0.1/1000
    assert vectors.seconds == pytest.approx(2000 * 1.5 / 1000 + 1000 * 0.1 / 1000 + 0.3)  # + the delta's parity rest
    assert "1000 changed" in vectors.basis
