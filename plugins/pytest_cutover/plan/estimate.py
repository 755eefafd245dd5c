"""The plan of the night: counts and measured figures in, each runbook step with its estimated time out.

Pure functions.  The estimating rules, in the order they are tried:

* **Where figures come from.**  ``pools`` are the measured figures of runs (:class:`RunFigures`), the
  plan's own run first, then the other runs in the reports folder, newest first.  A run is on the *same
  systems* when it is the plan's run or its recorded config named the same target database; a rehearsal
  elsewhere is *another environment*, used only when nothing closer exists, and the plan says so.
* **Steps with a fixed cost** (maintenance on/off, env switch, restart, smoke, rls): the latest time
  measured on the same systems; else the runbook's stated duration (Step 1: 5 min, Step 3: 5 min,
  Step 4: 10 min, Step 5: 10 min); else the latest time from another environment; else the figures of the
  step it is like (maintenance off like on, the closing notification like the opening one); else the step
  cannot be estimated and the plan names the missing figure and how to get it.
* **Notifications**: nothing when no ``[notify]`` channel is told about the event; else the latest measured
  delivery time; else the worst case, each channel's ``timeout_s`` x ``retries``.
* **Monitor**: exactly ``[thresholds] monitor_window_s`` (the stage watches that long), with no margin.
* **Final sync** = vectors + BLOBs + the sync stage's checks:
  - without a pre-sync in this run, a full sync and index build: ``points x (load + index + verify
    seconds) / items`` of the latest full or pre-sync pass (both load everything and build the index),
    plus that pass's unscaled rest (search parity);
  - with a pre-sync of this run, a delta: every point is read and verified again, only the changed ones
    are written, the index is kept: ``points x (read + verify) / items + changed x write / items`` with the
    rates of the latest delta pass (else the pre-sync's; without separate read and write times the whole
    load time stands for each, an upper bound) and ``changed = max(|points - pre-sync items|,
    fraction x points)``, where the fraction is the latest delta's ``changed / items``, else
    ``[run] window_change_fraction``;
  - BLOBs alike, by bytes when both sides know them, else by rows;
  - the checks (consistency queries, relational parity): the latest measured, scaled by points.
* **Margin**: every estimate except the configured monitor window is multiplied by ``1 + [run]
  window_margin`` (default 0.25): gaps between commands, a slower night.
* **Fit**: the steps run back to back from ``[run] window_start``; the plan fits when their sum is at most
  ``[run] window_minutes``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pytest_cutover.plan.figures import Pass, RunFigures, Timing
from pytest_cutover.plan.steps import STEP_BY_KEY, STEPS, Step

__all__ = ["DEFAULT_CHANGE_FRACTION", "DEFAULT_MARGIN", "Budget", "Counts", "NightPlan", "Part", "StepPlan",
           "duration_text", "make_plan"]

DEFAULT_MARGIN = 0.25
DEFAULT_CHANGE_FRACTION = 0.02

_HOW = {
    "vectors": "run the pre-sync (`cutover migrate vectors --presync`) or a rehearsal (`cutover rehearse`): "
               "either records a vector pass with its points and seconds in the ledger",
    "blobs": "run the BLOB pre-sync (`cutover migrate blobs --presync`) or a rehearsal (`cutover rehearse`)",
    "sync-checks": "run a rehearsal (`cutover rehearse`): its sync stage measures the consistency and parity "
                   "checks",
}


@dataclass(frozen=True)
class Counts:
    """What the night will move; ``None`` where it could not be counted."""

    points: int | None = None
    blob_rows: int | None = None
    blob_bytes: int | None = None
    fragments: int | None = None
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"points": self.points, "blob_rows": self.blob_rows, "blob_bytes": self.blob_bytes,
                "fragments": self.fragments, "source": self.source}


@dataclass(frozen=True)
class Budget:
    """The window and the settings the rules read (``[run]``, ``[thresholds]``, ``[notify]``)."""

    window_start: datetime | None = None
    window_minutes: float | None = None
    margin: float = DEFAULT_MARGIN
    change_fraction: float = DEFAULT_CHANGE_FRACTION
    monitor_window_s: float = 1800.0
    # event -> the worst case of telling every channel subscribed to it (0: no channel)
    notify_worst_s: Mapping[str, float] = field(default_factory=dict)
    environment: str | None = None  # the target database endpoint of the config


@dataclass(frozen=True)
class Part:
    """One term of a step's estimate (final sync: vectors, BLOBs, checks)."""

    name: str
    seconds: float | None
    basis: str
    missing: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": _round(self.seconds), "basis": self.basis, "missing": self.missing}


@dataclass
class StepPlan:
    """One step: what it will do, its estimate, and when it is planned in the window."""

    key: str
    title: str
    stage: str
    what: str
    estimate_s: float | None  # before the margin
    fixed_s: float = 0.0  # configured, exact (the monitor window): no margin
    basis: str = ""
    missing: str | None = None
    parts: list[Part] = field(default_factory=list)
    planned_s: float | None = None
    start: datetime | None = None
    end: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.key, "title": self.title, "stage": self.stage, "what": self.what,
                "estimate_s": _round(self.estimate_s), "fixed_s": _round(self.fixed_s),
                "planned_s": _round(self.planned_s), "basis": self.basis, "missing": self.missing,
                "parts": [p.as_dict() for p in self.parts], "start": _iso(self.start), "end": _iso(self.end)}


@dataclass
class NightPlan:
    """Every step of the night, their sum against the window, and what keeps the plan from fitting."""

    run: str
    budget: Budget
    counts: Counts
    steps: list[StepPlan]
    total_s: float | None
    fits: bool | None
    over_s: float | None  # > 0: by how much the plan overruns the window; <= 0: the slack
    problems: list[str]

    def step(self, key: str) -> StepPlan:
        return next(s for s in self.steps if s.key == key)

    def as_dict(self) -> dict[str, Any]:
        b = self.budget
        return {"run": self.run, "window_start": _iso(b.window_start), "window_minutes": b.window_minutes,
                "margin": b.margin, "change_fraction": b.change_fraction, "counts": self.counts.as_dict(),
                "steps": [s.as_dict() for s in self.steps], "total_s": _round(self.total_s), "fits": self.fits,
                "over_s": _round(self.over_s), "problems": list(self.problems)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def duration_text(seconds: float | None) -> str:
    """``1 h 05 min``, ``12 min 30 s``, ``4.2 s`` (``?`` when unknown)."""
    if seconds is None:
        return "?"
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class _Sources:
    """The pools in the order the rules read them."""

    def __init__(self, run: str, pools: Sequence[RunFigures], environment: str | None) -> None:
        self.run = run
        self.same = [p for p in pools if p.run == run or (environment and p.environment == environment)]
        self.same.sort(key=lambda p: p.run != run)  # this run first, the others keep their order (newest first)
        self.other = [p for p in pools if p not in self.same]
        self.this = next((p for p in pools if p.run == run), None)

    @staticmethod
    def _latest(pools: Sequence[RunFigures], pick: Callable[[RunFigures], list[Any]]) -> Any:
        for pool in pools:
            found = pick(pool)
            if found:
                return found[-1]
        return None

    def timing(self, step: str, *, same: bool) -> Timing | None:
        return self._latest(self.same if same else self.other, lambda p: [t for t in p.timings if t.step == step])

    def measured(self, step: str) -> tuple[Timing | None, str]:
        found = self.timing(step, same=True)
        if found is not None:
            return found, ""
        found = self.timing(step, same=False)
        return found, " (measured on another environment)" if found else ""

    def passes(self, step: str, modes: tuple[str, ...]) -> tuple[Pass | None, str]:
        for pools, note in ((self.same, ""), (self.other, " (measured on another environment)")):
            found = self._latest(pools, lambda p: [x for x in p.passes if x.step == step and x.mode in modes])
            if found is not None:
                return found, note
        return None, ""

    def presync(self, step: str) -> Pass | None:
        if self.this is None:
            return None
        found = [p for p in self.this.passes if p.step == step and p.mode == "presync"]
        return found[-1] if found else None


def _fixed(step: Step, sources: _Sources, seen: tuple[str, ...] = ()) -> tuple[float | None, str, str | None]:
    """(seconds, basis, missing) of a step with a fixed cost (see the module docstring)."""
    same = sources.timing(step.key, same=True)
    if same is not None:
        return same.seconds, f"measured: {same.describe()}", None
    if step.runbook_s is not None:
        return step.runbook_s, f"the runbook's stated duration ({duration_text(step.runbook_s)})", None
    other = sources.timing(step.key, same=False)
    if other is not None:
        return other.seconds, f"measured on another environment: {other.describe()}", None
    if step.like and step.like not in seen:
        seconds, basis, _ = _fixed(STEP_BY_KEY[step.like], sources, (*seen, step.key))
        if seconds is not None:
            return seconds, f"as {step.like}: {basis}", None
    return None, "", (f"no measured time of the {step.key} step and the runbook states none: run a rehearsal "
                      f"(`cutover rehearse`) on these systems or a previous attempt of the night")


def _notify(step: Step, event: str, budget: Budget, sources: _Sources) -> tuple[float | None, str, str | None]:
    worst = budget.notify_worst_s.get(event, 0.0)
    if not worst:
        return 0.0, f"no [notify] channel is told about {event}", None
    found, note = sources.measured(step.key)
    if found is not None:
        return found.seconds, f"measured{note}: {found.describe()}", None
    return worst, f"worst case: each channel's timeout_s x retries ({duration_text(worst)})", None


def _per(value: float | None, items: int) -> float:
    return (value or 0.0) / items


def _uncounted(name: str, count: int | None, missing: str, empty: str) -> Part | None:
    """The part when its count is unknown (``missing`` says where it comes from) or zero; ``None`` otherwise."""
    if count is None:
        return Part(name, None, "", missing)
    if count == 0:
        return Part(name, 0.0, empty)
    return None


def _vectors(counts: Counts, budget: Budget, sources: _Sources) -> Part:
    early = _uncounted("vectors", counts.points, "the number of points in the Qdrant collection: `cutover plan` "
                       "counts it live; `pytest -m precutover` records it (qdrant_points)",
                       "the collection is empty: nothing to move")
    if early is not None:
        return early
    n = int(counts.points or 0)  # known and non-zero here
    presync = sources.presync("vectors")
    if presync is None:
        found, note = sources.passes("vectors", ("full", "presync"))
        if found is None:
            return Part("vectors", None, "", "no measured vector pass (points/s): " + _HOW["vectors"])
        per = (found.load_s + (found.index_s or 0.0) + (found.verify_s or 0.0)) / found.items
        seconds = n * per + found.other_s
        return Part("vectors", seconds, f"full sync + index build: {n} points x {per * 1000:.3f} ms/point "
                                        f"(load + index + verify of {found.items} points{note}, {found.describe()})"
                                        + (f" + {found.other_s:.1f} s search parity" if found.other_s else ""))
    delta, note = sources.passes("vectors", ("delta",))
    rates = delta or presync
    read = _per(rates.read_s if rates.read_s is not None else rates.load_s, rates.items)
    write = _per(rates.write_s if rates.write_s is not None else rates.load_s, rates.items)
    verify = _per(rates.verify_s, rates.items)
    fraction = (delta.changed / delta.items) if delta is not None and delta.changed is not None else \
        budget.change_fraction
    changed = max(abs(n - presync.items), math.ceil(fraction * n))
    seconds = n * (read + verify) + changed * write + rates.other_s
    return Part("vectors", seconds,
                f"delta after the pre-sync ({presync.describe()}): {n} points read and verified at "
                f"{(read + verify) * 1000:.3f} ms/point, {changed} changed ({fraction:.1%}) written at "
                f"{write * 1000:.3f} ms/point, index kept (rates: {rates.describe()}{note})")


def _blobs(counts: Counts, budget: Budget, sources: _Sources) -> Part:
    early = _uncounted("blobs", counts.blob_rows, "the number of attachment BLOBs: `cutover plan` counts them "
                       "live; `pytest -m precutover` records them (attachment_blobs)",
                       "no attachment holds a BLOB: nothing to move")
    if early is not None:
        return early
    presync = sources.presync("blobs")
    found, note = sources.passes("blobs", ("delta",) if presync else ("full", "presync"))
    found = found or presync
    if found is None:
        return Part("blobs", None, "", "no measured BLOB pass (rows/s): " + _HOW["blobs"])
    by_bytes = bool(found.bytes and counts.blob_bytes is not None)
    unit, now, then = ("bytes", counts.blob_bytes or 0, found.bytes or 0) if by_bytes else \
        ("rows", counts.blob_rows, found.items)
    load, verify = found.load_s / then, (found.verify_s or 0.0) / then
    if presync is None:
        seconds = now * (load + verify)
        return Part("blobs", seconds, f"every BLOB: {now} {unit} at {(load + verify) * 1e3:.4f} ms per "
                                      f"{unit[:-1]} (upload + verify, {found.describe()}{note})")
    fraction = (found.changed / found.items) if found.mode == "delta" and found.changed is not None else \
        budget.change_fraction
    changed = max(abs(counts.blob_rows - presync.items), math.ceil(fraction * counts.blob_rows))
    share = changed / counts.blob_rows
    seconds = now * verify + now * share * load
    return Part("blobs", seconds, f"delta after the BLOB pre-sync: {changed} of {counts.blob_rows} rows uploaded "
                                  f"({fraction:.1%}), every object verified ({found.describe()}{note})")


def _checks(counts: Counts, sources: _Sources) -> Part:
    found, note = sources.measured("sync-checks")
    if found is None:
        return Part("checks", None, "", "no measured sync stage checks: " + _HOW["sync-checks"])
    scale = (counts.points / found.items) if counts.points and found.items else 1.0
    return Part("checks", found.seconds * scale,
                f"consistency and parity queries: {found.seconds:.1f} s measured{note} ({found.describe()})"
                + (f" x {scale:.2f} (points now / then)" if scale != 1.0 else ""))


def _what(step: Step, counts: Counts, budget: Budget, sources: _Sources) -> str:
    if step.key == "final-sync":
        mode = "delta after the pre-sync" if sources.presync("vectors") else "full sync + HNSW index build"
        return (f"{mode}: {counts.points if counts.points is not None else '?'} points, "
                f"{counts.blob_rows if counts.blob_rows is not None else '?'} BLOBs"
                + (f" ({_size(counts.blob_bytes)})" if counts.blob_bytes is not None else "")
                + "; verified bit for bit; consistency and parity")
    return {
        "maintenance-on": "maintenance on by the configured method, verified by /health",
        "notify-start": "deliver maintenance-enabled to the [notify] channels",
        "env-switch": "edit only DATABASE_URL in the app's .env (backup kept)",
        "restart": "stop, drain connections, start, wait until /health is healthy",
        "smoke": "health, database through the app and the pooler, RLS counts, vector search, storage, API",
        "rls": "cross-org read/insert/update/delete denied on every tenant table; the exposed surface read",
        "monitor": f"watch errors, latency and triggers for {duration_text(budget.monitor_window_s)}",
        "maintenance-off": "maintenance off, /health healthy again",
        "notify-end": "deliver maintenance-disabled to the [notify] channels",
    }[step.key]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def make_plan(run: str, counts: Counts, budget: Budget, pools: Sequence[RunFigures]) -> NightPlan:
    """Estimate every step of :data:`~pytest_cutover.plan.steps.STEPS` and lay them out in the window."""
    sources = _Sources(run, pools, budget.environment)
    steps: list[StepPlan] = []
    for step in STEPS:
        plan = StepPlan(step.key, step.title, step.stage, _what(step, counts, budget, sources), None)
        if step.key == "final-sync":
            plan.parts = [_vectors(counts, budget, sources), _blobs(counts, budget, sources),
                          _checks(counts, sources)]
            missing = [f"{p.name}: {p.missing}" for p in plan.parts if p.missing]
            plan.missing = "; ".join(missing) or None
            plan.estimate_s = None if missing else sum(p.seconds or 0.0 for p in plan.parts)
            plan.basis = "vectors + BLOBs + checks"
        elif step.key == "monitor":
            plan.estimate_s, plan.fixed_s = 0.0, budget.monitor_window_s
            plan.basis = "[thresholds] monitor_window_s: the stage watches exactly this long"
        elif step.key in ("notify-start", "notify-end"):
            event = "maintenance-enabled" if step.key == "notify-start" else "maintenance-disabled"
            plan.estimate_s, plan.basis, plan.missing = _notify(step, event, budget, sources)
        else:
            plan.estimate_s, plan.basis, plan.missing = _fixed(step, sources)
        if plan.estimate_s is not None:
            plan.planned_s = plan.fixed_s + plan.estimate_s * (1 + budget.margin)
        steps.append(plan)
    cursor = budget.window_start
    for plan in steps:
        if cursor is None or plan.planned_s is None:
            cursor = None
            continue
        plan.start, plan.end = cursor, cursor + timedelta(seconds=plan.planned_s)
        cursor = plan.end
    problems = [f"cannot estimate {s.key}: {s.missing}" for s in steps if s.missing]
    total = None if problems else sum(s.planned_s or 0.0 for s in steps)
    fits = over = None
    if budget.window_minutes is None:
        problems.append("no window to budget against: set [run] window_start and window_minutes in the config")
    elif total is not None:
        over = total - budget.window_minutes * 60
        fits = over <= 0
        if not fits:
            problems.append(f"the plan does not fit: it needs {duration_text(total)} (margin "
                            f"{budget.margin:.0%} included) in a {budget.window_minutes:g}-minute window, "
                            f"{duration_text(over)} over")
    return NightPlan(run, budget, counts, steps, total, fits, over, problems)
