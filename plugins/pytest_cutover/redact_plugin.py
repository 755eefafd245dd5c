"""Redaction of everything pytest itself prints or writes during a cutover session.

Why a plugin of its own: the secrets the config loaded (every form of them, see
:func:`pytest_cutover.redact.secret_forms`) must be masked in text that never passes through our
code: live logging (``--log-cli-level``), the log file (``--log-file``), captured logs, warnings,
``-l`` locals and ``--tb=long`` tracebacks of any test (staged or not), collection errors, JUnit XML
properties, every byte the terminal writer emits and, with ``-s``, what tests print to ``sys.stdout`` and
``sys.stderr`` (not what a subprocess writes to the file descriptors).  Each hook here is one wrapper around
:func:`~pytest_cutover.redact.redact`; the pattern-based masking inside it stays as the second line of
defence for secrets the config does not know.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from pytest_cutover.redact import redact, redact_obj

__all__ = ["RedactingFormatter", "redact_record"]

_FACTORY_KEY = pytest.StashKey[Any]()
_STREAMS_KEY = pytest.StashKey[tuple[Any, Any]]()
_PYTEST_HANDLERS = ("log_cli_handler", "log_file_handler", "caplog_handler", "report_handler")


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask secrets in ``record``'s message, exception text and stack (formatted once, here)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken %-format: logging reports it when a handler formats the record
        return record
    clean = redact(message)
    if clean != message:  # untouched otherwise: tests may compare caplog's record.msg with a format string
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter: whatever it produces (message, exception, extras) is redacted."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _RedactingFile:
    """The terminal writer's file: every write is redacted (the last line of defence for the terminal)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        return self._inner.write(redact(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _wrap_handler(handler: logging.Handler | None) -> None:
    if handler is not None and not isinstance(handler.formatter, RedactingFormatter):
        handler.setFormatter(RedactingFormatter(handler.formatter or logging.Formatter()))


def _wrap_logging_plugin(plugin: Any) -> None:
    for name in _PYTEST_HANDLERS:
        _wrap_handler(getattr(plugin, name, None))


def _wrap_terminal(reporter: Any) -> None:
    writer = getattr(reporter, "_tw", None)
    if writer is not None and not isinstance(getattr(writer, "_file", None), _RedactingFile):
        writer._file = _RedactingFile(writer._file)


def pytest_plugin_registered(plugin: Any, plugin_name: str, manager: pytest.PytestPluginManager) -> None:
    # pytest's terminal and logging plugins register in their own pytest_configure: wrap them as they do
    # (this hook is historic, so the ones registered before this plugin are seen too).
    if plugin_name == "logging-plugin":
        _wrap_logging_plugin(plugin)
    elif plugin_name == "terminalreporter":
        _wrap_terminal(plugin)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    old = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(old(*args, **kwargs))

    # Every record, from any logger, is redacted when it is made: handlers we never see (a user's, a
    # library's) then only ever format masked text.
    config.stash[_FACTORY_KEY] = old
    logging.setLogRecordFactory(factory)
    for handler in logging.getLogger().handlers:
        _wrap_handler(handler)
    if config.getoption("capture", None) == "no":  # -s: what tests print goes straight to the terminal
        config.stash[_STREAMS_KEY] = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = _RedactingFile(sys.stdout), _RedactingFile(sys.stderr)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    manager = session.config.pluginmanager
    _wrap_terminal(manager.get_plugin("terminalreporter"))
    _wrap_logging_plugin(manager.get_plugin("logging-plugin"))
    for handler in logging.getLogger().handlers:
        _wrap_handler(handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    old = config.stash.get(_FACTORY_KEY, None)
    if old is not None:
        logging.setLogRecordFactory(old)
    streams = config.stash.get(_STREAMS_KEY, None)
    if streams is not None:
        sys.stdout, sys.stderr = streams


def pytest_report_header(config: pytest.Config) -> list[str]:
    from pytest_cutover.config import dsn_notices

    session = config.pluginmanager.get_plugin("cutover-session")
    return [f"cutover notice: {line}" for line in dsn_notices(getattr(session, "cutover_config", None))]


def _redact_any_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    from pytest_cutover.plugin import _redact_report

    _redact_report(report)  # type: ignore[arg-type]
    properties = getattr(report, "user_properties", None)
    if properties:
        report.user_properties = [(name, redact_obj(value)) for name, value in properties]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _redact_any_report(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    _redact_any_report(report)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_warning_recorded(warning_message: Any, when: str, nodeid: str, location: Any) -> None:
    message = warning_message.message
    text = str(message)
    clean = redact(text)
    if clean == text:
        return
    if isinstance(message, Warning):
        message.args = (clean,)
    else:
        warning_message.message = clean
