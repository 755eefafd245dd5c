"""pytest glue for the report: Allure labels and attachments, JUnit/Allure collection, pytest-html.

:class:`ReportPlugin` is registered once per pytest process by this module's ``pytest_configure``: the
module is loaded through ``pytest_plugins`` in :mod:`pytest_cutover.plugin` (or with
``-p pytest_cutover.report.pytest_hooks``).  On every process it labels tests
for Allure when ``allure_listener`` is registered (epic and feature = stage, story = runbook
item) and attaches each test's figures.  On the controller, after every other
``pytest_sessionfinish`` (so JUnit XML and the final stage records are written), it redacts
the JUnit file and Allure results, archives them into the run, records the effective config in the
ledger (:mod:`pytest_cutover.report.effective`) and refreshes the report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.redact import redact, redact_obj
from pytest_cutover.session_keys import PROP_FIGURE, PROP_RUNBOOK, PROP_STAGE
from pytest_cutover.util.pluginreg import register_once

__all__ = ["PLUGIN_NAME", "ReportPlugin", "register"]

PLUGIN_NAME = "cutover-report"


def _props(item: pytest.Item) -> dict[str, Any]:
    props: dict[str, Any] = {"figures": {}}
    for name, value in item.user_properties:
        if name == PROP_FIGURE and isinstance(value, dict):
            props["figures"].update(value)
        elif name in (PROP_STAGE, PROP_RUNBOOK):
            props[name] = value
    return props


class ReportPlugin:
    """Report-side hooks of one pytest process."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.result: Any = None
        self.error: str | None = None

    # -- Allure ---------------------------------------------------------------------------------
    def _allure_on(self) -> bool:
        return self.config.pluginmanager.get_plugin("allure_listener") is not None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self._allure_on():
            return
        for item in session.items:
            props = _props(item)
            stage = props.get(PROP_STAGE)
            if stage:
                item.add_marker(pytest.mark.allure_label(stage, label_type="epic"))
                item.add_marker(pytest.mark.allure_label(stage, label_type="feature"))
            if props.get(PROP_RUNBOOK):
                item.add_marker(pytest.mark.allure_label(redact(props[PROP_RUNBOOK]), label_type="story"))

    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        if not self._allure_on():
            return
        figures = _props(item)["figures"]
        if figures:
            import allure

            allure.attach(json.dumps(redact_obj(figures), indent=2, sort_keys=True, default=str),
                          name="figures", attachment_type=allure.attachment_type.JSON)

    # -- pytest-html / pytest-metadata ----------------------------------------------------------
    def _redact_metadata(self) -> None:
        try:
            from pytest_metadata.plugin import metadata_key
        except ImportError:
            return
        metadata = self.config.stash.get(metadata_key, None)
        if isinstance(metadata, dict):
            clean = redact_obj(metadata)
            metadata.clear()
            metadata.update(clean)

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._redact_metadata()

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        self._redact_metadata()
        block = self._signoff_html()
        if block:
            prefix.append(block)

    def _signoff_html(self) -> str | None:
        from html import escape

        context = self._context()
        if context is None:
            return None
        from pytest_cutover.report.build import build_report

        report = build_report(context.ledger, context.config, context.run, local_versions=False)
        colour = {"SUCCESS": "#1a7f37", "ROLLBACK": "#cf222e"}.get(report["status"], "#bf8700")
        stages = " · ".join(f"{s['name']} {s['verdict']}" for s in report["stages"])
        return redact(
            f'<div style="border-left:6px solid {colour};padding:6px 12px;margin:8px 0">'
            f'<b style="color:{colour};font-size:18px">{escape(report["status"])}</b> cutover run '
            f'<b>{escape(report["run"])}</b> · lead {escape(str(report["lead"] or "not set"))} · '
            f'{escape(str(report["date"]))} {escape(str(report["time"]))}<br>{escape(stages)}<br>'
            f'{len(report["issues"])} issue(s); the signed report is reports/{escape(report["run"])}/report.json</div>'
        )

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # pytest-html writes its page in a trylast sessionfinish; by now it is on disk, so mask what it captured.
        htmlpath = getattr(config.option, "htmlpath", None)
        if self.is_worker or not htmlpath or not Path(htmlpath).is_file():
            return
        page = Path(htmlpath)
        text = page.read_text("utf-8", errors="replace")
        clean = redact(text)
        if clean != text:
            page.write_text(clean, "utf-8")

    # -- the report -----------------------------------------------------------------------------
    def _context(self) -> Any:
        from pytest_cutover.session_keys import SESSION_KEY

        session = self.config.stash.get(SESSION_KEY, None)
        return session.context if session is not None else None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_cutover.errors import CutoverError
        from pytest_cutover.session_keys import SESSION_KEY

        if self.is_worker or self.config.option.collectonly:
            return
        cutover = self.config.stash.get(SESSION_KEY, None)
        # Under xdist the controller collects nothing (``staged`` stays False) but writes the stage verdicts.
        if cutover is None or not (cutover.staged or cutover.written):
            return
        from pytest_cutover.report.effective import record_config
        from pytest_cutover.report.writer import write_report_files

        xmlpath = getattr(self.config.option, "xmlpath", None)
        alluredir = getattr(self.config.option, "allure_report_dir", None)
        try:
            # The config this invocation ran with, once per config: later rebuilds read it from the ledger.
            record_config(cutover.context)
            self.result = write_report_files(
                cutover.context,
                junit=Path(xmlpath) if xmlpath else None,
                allure_results=Path(alluredir) if alluredir and self._allure_on() else None,
                invocation=cutover.invocation,
                # CUTOVER_ALLURE_HTML=0 skips `npx allure generate` (the results are still archived and listed).
                generate_allure=os.environ.get("CUTOVER_ALLURE_HTML", "1").lower() not in ("0", "off", "no", "false"),
            )
        except (CutoverError, OSError) as exc:
            self.error = redact(f"cutover report not written: {exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.error:
            terminalreporter.write_line(self.error, red=True)
        if self.result is None:
            return
        report = self.result.report
        colour = {"SUCCESS": "green", "ROLLBACK": "red"}.get(report["status"], "yellow")
        terminalreporter.write_line(
            f"cutover report: {self.result.path} - {report['status']} ({report['status_reason']})",
            **{colour: True},
        )
        for message in self.result.messages:
            terminalreporter.write_line(f"cutover report: {redact(message)}")


def register(config: pytest.Config) -> ReportPlugin:
    """Register the report hooks once for this pytest process (idempotent)."""
    return register_once(config, PLUGIN_NAME, ReportPlugin)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Register the hook object (this module is loaded by ``pytest_plugins`` in :mod:`pytest_cutover.plugin`)."""
    register(config)
