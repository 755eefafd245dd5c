"""Plan versus actual, per step of the night: the report's ``plan`` section and ``cutover status``'s table.

The plan compared is the latest one ``cutover plan`` recorded *before the night began* (before the sync
stage's maintenance-on): a plan made afterwards would be estimated from the night's own figures.  Without
one, the plan is estimated here by the same rules from what the run recorded before the night (the
precutover counts, a Day-7 pre-sync), and the section says so; a step those records cannot estimate
shows what is missing.  Pure apart from the config: records in, a typed structure out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_cutover.plan.actual import DONE, step_actuals
from pytest_cutover.plan.steps import STEPS
from pytest_cutover.week1.history import parse_utc

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["PlanRow", "PlanVersusActual", "chosen_plan", "plan_versus_actual"]


@dataclass(frozen=True)
class PlanRow:
    """One step: planned (seconds, clock times, on what basis) and actual (state, times), and the difference."""

    step: str
    title: str
    stage: str
    planned_s: float | None
    planned_start: str | None
    planned_end: str | None
    basis: str
    missing: str | None
    state: str
    actual_start: str | None
    actual_end: str | None
    actual_s: float | None
    delta_s: float | None  # actual - planned, for a step that is done
    note: str = ""


@dataclass(frozen=True)
class PlanVersusActual:
    """The whole table, with where the plan came from and the window it was made against."""

    source: str
    window_start: str | None
    window_minutes: float | None
    margin: float | None
    fits: bool | None
    planned_total_s: float | None
    actual_total_s: float | None
    rows: list[PlanRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def chosen_plan(records: Sequence[Mapping[str, Any]], config: CutoverConfig | None,
                run: str) -> tuple[dict[str, Any], str]:
    """The plan to compare against (as :meth:`NightPlan.as_dict` gives it) and a sentence saying where it
    came from."""
    from pytest_cutover.plan.estimate import make_plan
    from pytest_cutover.plan.figures import run_figures
    from pytest_cutover.plan.inputs import budget_from_config, night_start, recorded_counts

    began = parse_utc(night_start(records))
    before = [r for r in records if began is None or ((t := parse_utc(r.get("ts"))) is not None and t < began)]
    made = [r for r in before if r.get("kind") == "plan"]
    if made:
        return dict(made[-1]), f"plan recorded by `cutover plan` at {made[-1].get('ts')}"
    night = make_plan(run, recorded_counts(before), budget_from_config(config), [run_figures(run, before)])
    return night.as_dict(), ("no plan recorded before the night: estimated from the run's records before it "
                             "(`cutover plan` records one)")


def plan_versus_actual(records: Sequence[Mapping[str, Any]], config: CutoverConfig | None,
                       run: str) -> PlanVersusActual:
    """Each step of the night, planned against actual."""
    plan, source = chosen_plan(records, config, run)
    planned = {s.get("step"): s for s in plan.get("steps") or []}
    actuals = step_actuals(records)
    rows: list[PlanRow] = []
    for step in STEPS:
        p = planned.get(step.key) or {}
        a = actuals[step.key]
        got = a.as_dict()
        planned_s = p.get("planned_s")
        delta = (a.seconds - planned_s) if a.state == DONE and a.seconds is not None and planned_s is not None \
            else None
        rows.append(PlanRow(step.key, step.title, step.stage, planned_s, p.get("start"), p.get("end"),
                            str(p.get("basis") or ""), p.get("missing"), a.state, got["start"], got["end"],
                            got["seconds"], None if delta is None else round(delta, 3), a.note))
    starts = [t for r in rows if r.state == DONE and (t := parse_utc(r.actual_start)) is not None]
    ends = [t for r in rows if r.state == DONE and (t := parse_utc(r.actual_end)) is not None]
    actual_total = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    return PlanVersusActual(source=source, window_start=plan.get("window_start"),
                            window_minutes=plan.get("window_minutes"), margin=plan.get("margin"),
                            fits=plan.get("fits"), planned_total_s=plan.get("total_s"),
                            actual_total_s=None if actual_total is None else round(actual_total, 3), rows=rows,
                            problems=list(plan.get("problems") or []))
