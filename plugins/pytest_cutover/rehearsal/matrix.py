"""The fault matrix: every fault planted for real, the suite run up to the stage that guards it, one row each.

Where a fault can be taken back out exactly (a policy dropped again, the checkout reset to the
commit the stack started from, the FAULTS_FILE cleared), one kept-up stack serves many faults:
plant, run the suite in a subprocess, read the verdict, undo, then prove the stack is back to its
baseline (:func:`stack_state`) before the next fault.  The ``precutover`` faults run that way on
the freshly built stack; the ``during-monitor`` faults then share one clean run through ``rls`` and
each get their own monitor pass of it (repeated monitor passes are how the Week-1 watch runs too).
Faults whose damage the sync stage migrates, or that are fixed at build time, get a fresh stack
each (``cutover rehearse --fault NAME --until STAGE`` in its own process): a stack builds in about
3 s, far less than a trustworthy undo of a whole migration would cost.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal import faults as catalog
from pytest_cutover.rehearsal.attached import attached_environ
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.suite import operator_dir, stages_until, suite_args
from pytest_cutover.stages import STAGES

__all__ = ["MatrixRow", "SharedStack", "fresh_row", "in_matrix_order", "matrix_kind", "matrix_row", "matrix_stack",
           "read_report", "run_matrix", "stack_state"]

Kind = Literal["shared-precutover", "shared-monitor", "fresh"]
#: Deadline of one suite run in the matrix (a hung stage must not hang the matrix).
SUITE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class MatrixRow:
    """What one fault's rehearsal showed."""

    fault: str
    guard: str
    failed: str | None
    message: str
    kind: str = "fresh"
    seconds: float = 0.0
    #: The first line of every failure in the failed stage (the first one is ``message``).
    messages: tuple[str, ...] = ()
    #: Every stage's verdict in the report (stage -> passed | failed | blocked | not-run).
    verdicts: tuple[tuple[str, str], ...] = ()
    #: The fault's ``expect``: ``caught`` (its stage must fail) or ``carried`` (its stage must pass).
    expect: str = "caught"

    @property
    def caught(self) -> bool:
        """The guarding stage is the first that failed (a ``carried`` change: nothing failed and it passed)."""
        if self.expect == "carried":
            return self.failed is None and dict(self.verdicts).get(self.guard) == "passed"
        return self.failed == self.guard


def matrix_row(fault: str, guard: str, report: dict, *, kind: str = "fresh", seconds: float = 0.0) -> MatrixRow:
    """The first failed stage of ``report`` and the first failure message in it."""
    verdicts = tuple((s.get("name", "?"), s.get("verdict", "?")) for s in report.get("stages", []))
    for stage in report.get("stages", []):
        if stage.get("verdict") == "failed":
            tests = [t for t in stage.get("tests", []) if t.get("outcome") in ("failed", "error")]
            lines = tuple(redact(((t.get("message") or "").strip().splitlines() or [""])[0]) for t in tests)
            return MatrixRow(fault, guard, stage["name"], lines[0][:160] if lines else "", kind, seconds, lines,
                             verdicts)
    return MatrixRow(fault, guard, None, f"no stage failed (status {report.get('status')})", kind, seconds, (),
                     verdicts)


def matrix_kind(fault: catalog.Fault) -> Kind:
    """How the matrix rehearses ``fault``: on the shared stack (and at which point), or on a fresh one."""
    if fault.reversible and not fault.at_build:
        if fault.when == catalog.BEFORE and fault.stage == STAGES[0]:
            return "shared-precutover"
        if fault.when == catalog.DURING_MONITOR:
            return "shared-monitor"
    return "fresh"


def read_report(reports_dir: Path, run: str) -> dict:
    """``<run>/report.json``, or a stand-in saying none was written (the row then says so)."""
    path = reports_dir / run / "report.json"
    return json.loads(path.read_text()) if path.exists() else {"status": "no report written"}


def _clean_environ() -> dict[str, str]:
    """This process's environment without CUTOVER_* settings, which would override the stack's config."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}


# ------------------------------------------------------------------------------------------------ the shared stack
_STATE_SQL = """
select coalesce(string_agg(line, E'\\n' order by line), '') from (
  select 'table ' || c.relname || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
         || ' owner=' || pg_get_userbyid(c.relowner) || ' acl='
         || coalesce((select string_agg(a::text, ',' order by a::text) from unnest(c.relacl) a), '-') as line
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm')
  union all
  select 'function ' || p.oid::regprocedure::text || ' definer=' || p.prosecdef || ' acl='
         || coalesce((select string_agg(a::text, ',' order by a::text) from unnest(p.proacl) a), '-')
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'
  union all
  select 'policy ' || schemaname || '.' || tablename || '.' || policyname || ' ' || permissive || ' ' || cmd
         || ' using=' || coalesce(qual, '-') || ' check=' || coalesce(with_check, '-')
    from pg_policies where schemaname in ('public', 'storage')
  union all
  select 'bucket ' || id || ' public=' || public from storage.buckets
) s;
"""


#: What the app checkout's state is read from: key -> git arguments.
_GIT_STATE = {"head": ("rev-parse", "HEAD"), "status": ("status", "--porcelain"),
              "branches": ("branch", "--format=%(refname:short)"), "origin": ("ls-remote", "origin", "main")}


def _git_state(checkout: Path) -> dict[str, str]:
    return {key: catalog.run_git(checkout, *args, check=False).stdout.strip() for key, args in _GIT_STATE.items()}


def stack_state(stack: Any) -> dict[str, Any]:
    """What the reversible faults change, read from the real stack: the target's RLS flags, owners, grants,
    views, functions, policies and buckets, the app checkout and its origin, whether the backup is fresh,
    which role and pooler the configured app URL names, and the app's runtime faults."""
    try:
        runtime = json.loads(stack.faults_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        runtime = {}
    return {
        "catalog": stack.target_sql(_STATE_SQL).strip(),
        "checkout": _git_state(stack.app_dir),
        "backup_fresh": stack.backup_path.exists() and time.time() - stack.backup_path.stat().st_mtime < 3600,
        "app_database": stack.app_database_choice,
        "people_faults": getattr(stack, "people_choice", ()),
        "runtime_faults": runtime or {},
    }


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    """What changed, line by line for multi-line values (the catalog listing is long)."""
    parts = []
    for key in [k for k in before if before[k] != after.get(k)]:
        old, new = str(before[key]).splitlines(), str(after.get(key)).splitlines()
        gone, added = [x for x in old if x not in new], [x for x in new if x not in old]
        parts.append(f"{key}: " + (f"was {gone[:3]}, now {added[:3]}" if gone or added else
                                   f"{str(before[key])[:120]!r} -> {str(after.get(key))[:120]!r}"))
    return "; ".join(parts)


class SharedStack:
    """One running stack for every reversible fault: plant, run the suite, read the row, undo, check.

    The ``precutover`` faults must all come before the first ``during-monitor`` one: that one runs the
    clean stages through ``rls`` on the stack, after which the stack is no longer pre-cutover.
    """

    def __init__(self, stack: Any, reports_dir: Path, *, monitor_window_s: float, stamp: str | None = None,
                 suite_dir: Path | None = None) -> None:
        self.stack = stack
        self.reports_dir = Path(reports_dir).resolve()
        self.monitor_window_s = monitor_window_s
        self.stamp = stamp or dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        self.suite_dir = operator_dir(suite_dir, Path(stack.workdir) / "operator")
        self.baseline = stack_state(stack)
        self.monitor_run: str | None = None

    def run_suite(self, run: str, stages: Sequence[str], *, runtime_faults: Sequence[str] = ()
                  ) -> subprocess.CompletedProcess[str]:
        """The suite's ``stages`` against this stack, in a subprocess, as ``run``."""
        extra = ["-p", "pytest_cutover.rehearsal.attached"] if runtime_faults else []
        args = suite_args(self.suite_dir, self.stack.config_path, run=run, reports_dir=self.reports_dir,
                          stages=stages, extra=extra)
        env = {**_clean_environ(), **self.stack.environ()}
        if runtime_faults:
            env.update(attached_environ(self.stack.faults_file, list(runtime_faults), self.monitor_window_s))
        try:
            return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=self.suite_dir, env=env,
                                  capture_output=True, text=True, timeout=SUITE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"the suite ({' or '.join(stages)}) did not finish within {SUITE_TIMEOUT_S:.0f}s "
                                 f"for run {run}", hint=f"see {self.reports_dir / run}") from None

    def row(self, name: str) -> MatrixRow:
        """Rehearse one reversible fault on this stack and leave the stack as it found it."""
        fault = catalog.get_fault(name)
        kind = matrix_kind(fault)
        started = time.monotonic()
        if kind == "shared-precutover":
            if self.monitor_run is not None:
                raise RehearsalError(f"fault {name} needs the stack before the cutover, but the clean stages have "
                                     "already run on it", hint="rehearse every precutover fault first")
            run = f"matrix-{self.stamp}-{name}"
            try:
                self.stack.plant(name)
                self.run_suite(run, [fault.stage])
            finally:
                self._undo(name)
        elif kind == "shared-monitor":
            run = self._monitor_run()
            try:
                self.run_suite(run, [fault.stage], runtime_faults=[name])
            finally:
                self._undo(name)
        else:
            raise RehearsalError(f"fault {name} cannot share a stack (it is not reversible before its stage)",
                                 hint="rehearse it with fresh_row()")
        return matrix_row(name, fault.stage, read_report(self.reports_dir, run), kind=kind,
                          seconds=round(time.monotonic() - started, 1))

    def monitor_pass(self) -> dict:
        """One more clean monitor pass of the shared run (as the Week-1 watch repeats it); its report."""
        run = self._monitor_run()
        self.run_suite(run, [STAGES[-1]])
        return read_report(self.reports_dir, run)

    def _monitor_run(self) -> str:
        """The run whose clean precutover..rls every monitor fault's pass follows (made on first use)."""
        if self.monitor_run is None:
            run = f"matrix-{self.stamp}-monitor"
            done = self.run_suite(run, stages_until(STAGES[-2]))
            report = read_report(self.reports_dir, run)
            first = matrix_row("none", "none", report)
            if done.returncode != 0 or first.failed is not None:
                raise RehearsalError(f"the clean stages through rls failed on the shared stack: {first.failed}: "
                                     f"{first.message}", hint=f"see {self.reports_dir / run}")
            self.monitor_run = run
            self.baseline = stack_state(self.stack)  # the migration added its own tables: the new normal
        return self.monitor_run

    def _undo(self, name: str) -> None:
        self.stack.undo(name)
        now = stack_state(self.stack)
        if now != self.baseline:
            raise RehearsalError(f"undoing fault {name} did not restore the shared stack: {_diff(self.baseline, now)}",
                                 hint="fix that fault's undoer in rehearsal/faults.py")


# ------------------------------------------------------------------------------------------------ fresh stacks
def fresh_row(name: str, reports_dir: Path, *, monitor_window_s: float, stamp: str | None = None,
              stack_args: Sequence[str] = ()) -> MatrixRow:
    """``cutover rehearse --fault NAME --until STAGE`` in its own process and stack; its row.
    ``stack_args`` chooses another stack (``--stack containers --images local``)."""
    fault = catalog.get_fault(name)
    reports_dir = Path(reports_dir).resolve()
    run = f"matrix-{stamp or dt.datetime.now(dt.UTC).strftime('%Y%m%d-%H%M%S')}-{name}"
    cmd = [sys.executable, "-m", "pytest_cutover", "rehearse", "--run", run, "--fault", name, "--until", fault.stage,
           "--reports-dir", str(reports_dir), "--monitor-window", str(monitor_window_s), *stack_args]
    started = time.monotonic()
    try:
        subprocess.run(cmd, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S, check=False, env=_clean_environ())
    except subprocess.TimeoutExpired:
        return MatrixRow(name, fault.stage, None, f"rehearsal did not finish within {SUITE_TIMEOUT_S:.0f}s")
    row = matrix_row(name, fault.stage, read_report(reports_dir, run), seconds=round(time.monotonic() - started, 1))
    return dataclasses.replace(row, expect=fault.expect)


# ------------------------------------------------------------------------------------------------ the command
def in_matrix_order(faults: Sequence[catalog.Fault]) -> list[catalog.Fault]:
    """Shared-stack precutover faults, then shared monitor faults, then the fresh ones (stable within each)."""
    order = {"shared-precutover": 0, "shared-monitor": 1, "fresh": 2}
    return sorted(faults, key=lambda f: order[matrix_kind(f)])


def matrix_stack(stack: str, images: str, echo: Callable[[str], None]) -> tuple[str, dict[str, str]]:
    """The image set the matrix's stacks run (``stack`` containers: resolved once here, so the fresh rows do
    not each try a pull that fails) and the faults that stack refuses (name -> why)."""
    if stack != "containers":
        return images, {}
    from pytest_cutover.rehearsal.containers import require_docker, resolve_images, unsupported_faults

    require_docker()
    resolved = resolve_images(images, echo).name
    return resolved, unsupported_faults(resolved)


def run_matrix(names: Sequence[str], *, reports_dir: Path | None, monitor_window: float,
               echo: Callable[[str], None], stack: str = "embedded", images: str = "official") -> int:
    """Rehearse each fault on ``stack`` (``images``: the containers' image set); print the table; exit 0 only if
    every fault rehearsed failed its guarding stage.  A fault the stack refuses is listed as not run."""
    from pytest_cutover.rehearsal.backends import get_stack_class, rehearse_args, stack_options

    images, refused = matrix_stack(stack, images, echo)
    faults = in_matrix_order(catalog.validate_faults(names) if names else catalog.list_faults())
    not_run = [f for f in faults if f.name in refused]
    faults = [f for f in faults if f.name not in refused]
    base = (reports_dir or Path(os.environ.get("CUTOVER_REPORTS_DIR") or "reports")).resolve()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    rows: list[MatrixRow] = []

    def add(row: MatrixRow) -> None:
        rows.append(row)
        mark = "" if row.caught else ("  <-- NOT CARRIED" if row.expect == "carried" else
                                      "  <-- NOT CAUGHT BY ITS STAGE")
        echo(f"{row.fault:<22} {row.guard:<11} {row.failed or '-':<11} {row.seconds:>6.1f}s {row.message}{mark}")

    echo(f"{'fault':<22} {'guard':<11} {'failed':<11} {'time':>7} message")
    for fault in not_run:
        echo(f"{fault.name:<22} {fault.stage:<11} {'not run':<11} {'':>7} the {stack} stack with the {images} images "
             f"refuses it: {refused[fault.name]}")
    shared = [f for f in faults if matrix_kind(f) != "fresh"]
    if shared:
        with get_stack_class(stack)(None, run_id=f"matrix-{stamp}", monitor_window_s=monitor_window,
                                    monitor_interval_s=max(0.5, monitor_window / 8),
                                    **stack_options(stack, images, echo)) as built:
            matrix = SharedStack(built, base, monitor_window_s=monitor_window, stamp=stamp)
            for fault in shared:
                add(matrix.row(fault.name))
    for fault in faults:
        if matrix_kind(fault) == "fresh":
            add(fresh_row(fault.name, base, monitor_window_s=monitor_window, stamp=stamp,
                          stack_args=rehearse_args(stack, images)))
    missed = [r.fault for r in rows if not r.caught]
    echo(f"{len(rows) - len(missed)} of {len(rows)} faults failed the stage that guards them on the {stack} stack"
         + (f"; not caught: {', '.join(missed)}" if missed else "")
         + (f"; not run (refused by the stack): {', '.join(f.name for f in not_run)}" if not_run else ""))
    (base / f"fault-matrix-{stamp}.json").write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 1 if missed else 0
