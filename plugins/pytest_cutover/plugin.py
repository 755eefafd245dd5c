"""The pytest hooks: stage markers, ordering, gating and the ledger.

Each hook turns pytest objects into plain values and makes one call into the
pure core (``stages``, ``ledger``).  Per-run state lives in one registered
:class:`CutoverSession`, reachable through ``config.stash``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.config import CutoverConfig, load_config
from pytest_cutover.context import RunContext, resolve_run_id
from pytest_cutover.errors import CutoverError
from pytest_cutover.fixtures import runbook_line
from pytest_cutover.ledger import iso_utc
from pytest_cutover.redact import redact
from pytest_cutover.redact_plugin import Crash, RedactedRepr
from pytest_cutover.scope import build_scopes, narrowing, packaged_items, selection, suite_enabled
from pytest_cutover.session_keys import (
    PROP_BLOCKED,
    PROP_FIGURE,
    PROP_RUNBOOK,
    PROP_STAGE,
    PROP_STARTED,
    SESSION_KEY,
    STAGE_KEY,
    announce,
    get_session,
)
from pytest_cutover.stages import (
    EXIT_CODES_HELP,
    EXIT_MEANING,
    STAGE_HELP,
    STAGES,
    UNKNOWN_SCOPE,
    PriorVerdict,
    StageMarkerError,
    StageResult,
    StageScope,
    StageTracker,
    exit_status,
    gate,
    stage_index,
    stage_of,
)
from pytest_cutover.util.wait import wait_until

# announce, get_session and the stash keys live in session_keys (below the hook modules); importable from here too.
__all__ = ["SESSION_KEY", "STAGE_KEY", "CutoverSession", "announce", "get_session"]

# The notification and report hooks are plugin modules of their own, loaded with this one (and not with
# `-p no:cutover`): pytest imports and registers the modules a plugin names in `pytest_plugins`, and each
# registers its hook object in its own `pytest_configure`.  They reach the session through session_keys,
# never through this module.
pytest_plugins = ("pytest_cutover.notify.plugin", "pytest_cutover.report.pytest_hooks")

_PROP_STAGE, _PROP_BLOCKED, _PROP_FIGURE, _PROP_RUNBOOK, _PROP_STARTED = (
    PROP_STAGE, PROP_BLOCKED, PROP_FIGURE, PROP_RUNBOOK, PROP_STARTED)


def _force_reason(value: str) -> str:
    if not value.strip():
        raise pytest.UsageError("--cutover-force needs a reason, for example --cutover-force \"DBA approved, INC-42\"")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cutover", f"database cutover stages and gating (exit codes: {EXIT_CODES_HELP})")
    group.addoption("--cutover-config", dest="cutover_config", metavar="PATH", default=None,
                    help="cutover.toml to use (default: ./cutover.toml, else [tool.cutover] in pyproject.toml)")
    group.addoption("--cutover-run", dest="cutover_run", metavar="ID", default=None,
                    help="run id of this cutover: verdicts of one run gate each other across invocations "
                         "(default: $CUTOVER_RUN, else [run] id, else 'default')")
    group.addoption("--cutover-force", dest="cutover_force", metavar="REASON", default=None, type=_force_reason,
                    help="run stages even when an earlier stage has not passed; the reason is recorded "
                         "in the ledger and shown in the report")
    group.addoption("--cutover-auto-rollback", dest="cutover_auto_rollback", action="store_true", default=False,
                    help="when a rollback trigger fires, run the runbook's rollback (maintenance on, previous "
                         "DATABASE_URL, restart, verify) and mark the run ROLLBACK")
    group.addoption("--cutover-barrier-timeout", dest="cutover_barrier_timeout", metavar="SECONDS", type=float,
                    default=4 * 3600.0,
                    help="with pytest-xdist, how long a worker waits for the earlier stages of this invocation "
                         "to finish before it gives up (default: 4 hours)")
    group.addoption("--cutover-suite", dest="cutover_suite", metavar="packaged|none", default=None,
                    help="whether the packaged acceptance suite joins the collection when a cutover config is found "
                         "(default: $CUTOVER_SUITE, else packaged)")
    group.addoption("--cutover-reports-dir", dest="cutover_reports_dir", metavar="DIR", default=None,
                    help="where reports/<run>/ lives (default: $CUTOVER_REPORTS_DIR, else ./reports)")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_cutover import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("cutover_redact"):  # an install that predates its entry point
        from pytest_cutover import redact_plugin

        config.pluginmanager.register(redact_plugin, "cutover_redact")
    for stage in STAGES:
        config.addinivalue_line("markers", f"{stage}: cutover stage {stage_index(stage) + 1}/6 - {STAGE_HELP[stage]}")
    # Not a seventh stage: the Week-1 checks read the ledger after the night and never gate a stage.
    config.addinivalue_line("markers", "week1: post-cutover Week-1 checks judged from the run's ledger "
                                       "(pytest -m week1); not a stage")
    try:
        cutover_config = load_config(config.getoption("cutover_config"), cwd=config.invocation_params.dir)
        session = CutoverSession(config, cutover_config)
    except CutoverError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, "cutover-session")


def _message(report: pytest.TestReport) -> str | None:
    longrepr = report.longrepr
    if longrepr is None:
        return None
    if isinstance(longrepr, tuple):  # a skip: (path, lineno, reason)
        return redact(str(longrepr[2]))
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return redact(crash.message)
    return redact(str(longrepr))[-2000:]


def _props(report: pytest.TestReport) -> dict[str, Any]:
    props: dict[str, Any] = {"figures": {}}
    for name, value in report.user_properties:
        if name == _PROP_FIGURE and isinstance(value, dict):
            props["figures"].update(value)
        else:
            props[name] = value
    return props


class CutoverSession:
    """State of one pytest invocation: context, tracker, and which stage verdicts are written."""

    def __init__(self, config: pytest.Config, cutover_config: CutoverConfig | None) -> None:
        self.config = config
        self.cutover_config = cutover_config
        self.is_worker = hasattr(config, "workerinput")
        reports = (config.getoption("cutover_reports_dir") or os.environ.get("CUTOVER_REPORTS_DIR")
                   or "reports")
        self.context = RunContext(
            run=resolve_run_id(config.getoption("cutover_run"), cutover_config),
            reports_dir=(config.invocation_params.dir / reports).resolve(),
            config=cutover_config,
            suite_dir=Path(str(config.rootpath)),
            args=list(config.invocation_params.args),
        )
        self.forced: str | None = config.getoption("cutover_force")
        self.invocation = (config.workerinput.get("cutover_invocation") if self.is_worker else None) \
            or uuid.uuid4().hex[:12]
        self.session_stages: list[str] = []
        self.tracker = StageTracker()
        self.remaining: Counter[str] = Counter()
        self._done: Counter[str] = Counter()
        self.written: dict[str, StageResult] = {}
        self.gates: dict[str, str | None] = {}
        self.forced_over: dict[str, str] = {}
        self.staged = False
        self.scopes: dict[str, StageScope] = {}
        self.stage_of_node: dict[str, str] = {}
        self.collection_errors: list[str] = []
        self.exit_status: int | None = None
        self._header_stage: str | None = None

    # -- collection -----------------------------------------------------------------------------
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(report.nodeid or "<session>")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> Any:
        """Join the packaged suite, note every staged test *before* selection, then see what selection kept."""
        if suite_enabled(config.getoption("cutover_suite"), self.cutover_config is not None):
            items.extend(packaged_items(session))
        collected = {item.nodeid: stage for item, stage in zip(items, self._stages(items), strict=True) if stage}
        result = yield
        self._order(items)
        if collected:
            selected = [item.nodeid for item in items]
            narrowed = narrowing(config, self.collection_errors, list(config.args))
            self.scopes = build_scopes(collected, selected, selection(config), narrowed)
        if self.is_worker and self.session_stages:
            self._publish_manifest()
        return result

    @staticmethod
    def _stages(items: list[pytest.Item]) -> list[str | None]:
        try:
            return [stage_of(item.nodeid, (m.name for m in item.iter_markers())) for item in items]
        except StageMarkerError as exc:
            raise pytest.UsageError(str(exc)) from None

    def _order(self, items: list[pytest.Item]) -> None:
        stages = self._stages(items)
        for item, stage in zip(items, stages, strict=True):
            if stage is None:
                continue
            item.stash[STAGE_KEY] = stage
            item.user_properties.append((_PROP_STAGE, stage))
            line = runbook_line(item)
            if line:
                item.user_properties.append((_PROP_RUNBOOK, line))
        self.stage_of_node = {item.nodeid: s for item, s in zip(items, stages, strict=True) if s}
        self.session_stages = sorted({s for s in stages if s}, key=stage_index)
        order = {id(item): (-1 if s is None else stage_index(s)) for item, s in zip(items, stages, strict=True)}
        items.sort(key=lambda item: order[id(item)])
        if self.session_stages:
            self.staged = True
            try:
                self.context.ledger.records()  # a corrupt ledger stops the run before anything changes
            except CutoverError as exc:
                raise pytest.UsageError(str(exc)) from None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.remaining = Counter(self.stage_of_node.values())

    # -- xdist: a stage barrier -----------------------------------------------------------------
    # Workers run tests of one stage in parallel, never across a boundary: the controller writes a
    # stage's verdict to the ledger when its last item finishes; a worker about to start a later
    # stage waits for those records (its own queue is in stage order, so this cannot deadlock).
    @property
    def _stage_map_path(self) -> Path:
        return self.context.run_dir / f".xdist-stages-{self.invocation}.json"

    def _publish_manifest(self) -> None:
        """A worker tells the controller (which collects nothing) each selected test's stage and each stage's scope."""
        manifest = {
            "stages": self.stage_of_node,
            "scopes": {stage: {"expected": sorted(sc.expected), "deselected": dict(sc.deselected),
                               "narrowed": sc.narrowed} for stage, sc in self.scopes.items()},
        }
        path = self._stage_map_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, sort_keys=True))
        os.replace(tmp, path)

    def _load_manifest(self) -> None:
        if self.stage_of_node or not self.config.pluginmanager.hasplugin("dsession") \
                or not self._stage_map_path.exists():
            return
        manifest = json.loads(self._stage_map_path.read_text())
        self.stage_of_node = dict(manifest["stages"])
        self.scopes = {stage: StageScope(frozenset(sc["expected"]), sc["deselected"], sc["narrowed"])
                       for stage, sc in manifest["scopes"].items()}
        self.remaining = Counter(self.stage_of_node.values())
        self.remaining.subtract(Counter(self._done))

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["cutover_invocation"] = self.invocation

    def _wait_for_earlier_stages(self, stage: str) -> None:
        earlier = [s for s in self.session_stages if stage_index(s) < stage_index(stage)]
        missing = list(earlier)

        def finished() -> bool:
            try:
                done = {r.get("stage") for r in self.context.ledger.records()
                        if r.get("kind") == "stage" and r.get("invocation") == self.invocation}
            except CutoverError as exc:
                raise pytest.UsageError(str(exc)) from None
            missing[:] = [s for s in earlier if s not in done]
            return not missing

        if earlier and not wait_until(finished, self.config.getoption("cutover_barrier_timeout"), pause=0.1):
            raise pytest.UsageError(f"stage barrier: gave up waiting for stage(s) {', '.join(missing)} to finish "
                                    f"(--cutover-barrier-timeout)")

    # -- gating ---------------------------------------------------------------------------------
    def _gate(self, stage: str) -> str | None:
        if stage not in self.gates:
            if self.is_worker:
                self._wait_for_earlier_stages(stage)
            try:
                verdicts: dict[str, PriorVerdict | None] = dict(self.context.ledger.stage_verdicts())
            except CutoverError as exc:
                raise pytest.UsageError(str(exc)) from None
            verdicts.update({s: r.prior() for s, r in self.written.items()})
            self.gates[stage] = gate(stage, verdicts, self.context.run)
        return self.gates[stage]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        stage = item.stash.get(STAGE_KEY, None)
        if stage is None:
            return
        reason = self._gate(stage)
        # The stage starts after the barrier wait, not when pytest began the setup phase.
        item.user_properties.append((_PROP_STARTED, time.time()))
        if reason is None:
            return
        if self.forced:
            self.forced_over.setdefault(stage, reason)
            return
        item.user_properties.append((_PROP_BLOCKED, reason))
        pytest.skip(reason)

    # -- findings first -----------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        # (redact_plugin masks secrets in every report, this compact one included)
        if STAGE_KEY in item.stash and report.failed and call.excinfo is not None and self._compact_tracebacks \
                and call.excinfo.errisinstance((AssertionError, CutoverError)):
            _compact_report(report)
        return report

    @property
    def _compact_tracebacks(self) -> bool:
        """A finding in a few lines unless the operator asked for tracebacks (``-v`` or an explicit ``--tb``)."""
        return self.config.option.tbstyle == "auto" and self.config.option.verbose <= 0

    # -- verdicts -------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self.is_worker:
            return
        self._load_manifest()
        stage = self.stage_of_node.get(nodeid)
        if stage is None:
            return
        self.tracker.start(stage)
        if stage != self._header_stage:
            self._header_stage = stage
            _stage_header(self.config, stage)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        props = _props(report)
        # A report xdist makes up for a crashed worker carries no properties: the manifest knows its stage.
        stage = props.get(_PROP_STAGE) or self.stage_of_node.get(report.nodeid)
        if stage not in STAGES:
            return
        self.tracker.record(
            stage, report.nodeid, report.when, report.outcome,
            message=_message(report), duration=report.duration, blocked=props.get(_PROP_BLOCKED),
            figures=props["figures"], runbook=props.get(_PROP_RUNBOOK),
            start=props.get(_PROP_STARTED, getattr(report, "start", None)), stop=getattr(report, "stop", None),
            wasxfail=hasattr(report, "wasxfail"),
        )
        if report.when != "teardown":
            return
        self._load_manifest()
        self._done[stage] += 1
        if self.remaining.get(stage):
            self.remaining[stage] -= 1
            if self.remaining[stage] == 0:
                self._write(stage, interrupted=False)

    def _write(self, stage: str, *, interrupted: bool) -> None:
        result = self.tracker.result(stage, self.scopes.get(stage, UNKNOWN_SCOPE), interrupted=interrupted)
        forced = self.forced if stage in self.forced_over else None
        self.context.ledger.append({
            "kind": "stage",
            **self.context.stamp(),
            "invocation": self.invocation,
            "stage": stage,
            "verdict": result.verdict,
            "start": iso_utc(result.start) if result.start else None,
            "end": iso_utc(result.end) if result.end else None,
            "duration": round(result.end - result.start, 3) if result.start and result.end else None,
            "first_failure": result.first_failure,
            "reason": result.reason,
            "forced": forced,
            "forced_over": self.forced_over.get(stage),
            "counts": result.counts,
            "tests": result.tests,
            "skipped": result.skipped,
            "not_run": result.not_run,
            "figures": result.figures,
        })
        self.written[stage] = result

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker or self.config.option.collectonly:
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        for stage in self.tracker.stages_seen():
            if stage not in self.written:
                self._write(stage, interrupted=interrupted)
        self._stage_map_path.unlink(missing_ok=True)
        if self.written:
            self.exit_status = exit_status(int(session.exitstatus), [r.verdict for r in self.written.values()])
            session.exitstatus = self.exit_status

    # -- terminal -------------------------------------------------------------------------------
    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        where = self.cutover_config.path if self.cutover_config else "none found"
        return [f"cutover: run {self.context.run}, ledger {self.context.ledger.path}, config {where}"]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.written:
            return
        findings = [(stage, t) for stage in STAGES if stage in self.written
                    for t in self.written[stage].tests if t["outcome"] in ("failed", "error")]
        if findings:
            terminalreporter.section("cutover findings", red=True)
            for stage, test in findings:
                terminalreporter.write_line(redact(f"{stage} {test['outcome'].upper()} {test['id']}"))
                for line in finding_lines(test["message"]):
                    terminalreporter.write_line(redact(f"    {line}"))
            if self._compact_tracebacks:
                terminalreporter.write_line("(full tracebacks: -v or --tb=long)")
        terminalreporter.section(f"cutover stages (run {self.context.run})")
        for stage in STAGES:
            result = self.written.get(stage)
            if result is None:
                continue
            counts = ", ".join(f"{n} {k}" for k, n in result.counts.items() if n)
            line = f"{stage:<11} {result.verdict.upper():<11} {counts}"
            if result.reason:
                line += f"  - {result.reason}"
            if stage in self.forced_over:
                line += f"  [forced: {self.forced}]"
            terminalreporter.write_line(redact(line))
        if self.exit_status is not None:
            terminalreporter.write_line(f"cutover exit status {self.exit_status}: {EXIT_MEANING[self.exit_status]}")


def finding_lines(message: str | None, limit: int = 6) -> list[str]:
    """A failed check's finding and fix, without pytest's ``assert <repr>`` explanation."""
    text = (message or "no message").strip()
    for prefix in ("AssertionError: ", "Failed: "):
        text = text.removeprefix(prefix)
    lines = []
    for line in text.splitlines():
        if line.startswith("assert ") or line.startswith("+  where"):
            break
        if line.strip():
            lines.append(line.rstrip())
    lines = lines or [text.splitlines()[0]]
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])


def _compact_report(report: pytest.TestReport) -> None:
    """Replace a failed check's long traceback by its location and finding (``-v``/``--tb=long`` keep it all)."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:
        return
    lines = [f"{crash.path}:{crash.lineno}", *(f"    {line}" for line in finding_lines(crash.message, limit=40))]
    report.longrepr = RedactedRepr("\n".join(lines), Crash(str(crash.path), crash.lineno, crash.message))


def _stage_header(config: pytest.Config, stage: str) -> None:
    """``---- stage 2/6 sync: ... ----`` on its own line in the progress output."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    reporter.ensure_newline()
    if reporter._tw.width_of_current_line:  # -q progress has no file name to end the line
        reporter._tw.line()
    reporter.write_sep("-", f"stage {stage_index(stage) + 1}/6 {stage}: {STAGE_HELP[stage]}", bold=True)
    reporter.currentfspath = None  # the next progress character starts a new line with its file name
