"""From cutover.toml to a running sampler: settings, probes, log source, and the runner on a run context."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_cutover.config import parse_config
from pytest_cutover.context import RunContext
from pytest_cutover.errors import ConfigError
from pytest_cutover.ledger import Ledger
from pytest_cutover.monitor.logs import CommandFollower, FileFollower, LogWatcher, log_source_from_config
from pytest_cutover.monitor.probes import probe_set_from_config
from pytest_cutover.monitor.runner import run_monitor
from pytest_cutover.monitor.sampler import Sampler
from pytest_cutover.monitor.samples import MonitorSeries
from pytest_cutover.monitor.settings import MonitorSettings, settings_from_config

from .fakeapp import TOKEN, ServedApp


def _config(api_base: str, log_file: str, **monitor: object):
    return parse_config({
        "app": {"api_base": api_base, "test_token": "${TEST_TOKEN}", "log_file": log_file},
        "thresholds": {"monitor_window_s": 1.0, "monitor_interval_s": 0.1, "rollback_error_rate": 0.05},
        "monitor": {"orgs": ["org_0001", "org_0002"], "attachments": {"org_0001": 5}, "search_dim": 4,
                    "rss_command": "echo 1048576", "critical_probes": ["threads"], **monitor},
    }, env={"TEST_TOKEN": TOKEN}, path="/etc/cutover/cutover.toml")


def test_settings_from_config_and_overrides() -> None:
    cfg = _config("http://x", "app.log", conn_failure_count=5, error_rate_span_s=None)
    got = settings_from_config(cfg, window_s=3.0, interval_s=None)
    assert got == MonitorSettings(window_s=3.0, interval_s=0.1, conn_failure_count=5, error_rate_span_s=None,
                                  critical_probes=("threads",))
    assert settings_from_config(None) == MonitorSettings()


def test_probe_set_from_config() -> None:
    probes = probe_set_from_config(_config("http://api:8000/", "app.log"))
    assert [s.name for s in probes.specs] == ["health", "threads:org_0001", "search:org_0001", "attachment:org_0001",
                                              "threads:org_0002", "search:org_0002"]
    assert probes.specs[0].url == "http://api:8000/health"
    assert TOKEN not in repr(probes)
    with pytest.raises(ConfigError, match=r"app\.api_base is not set: the monitor has nothing to probe"):
        probe_set_from_config(parse_config({}))


def test_log_source_from_config(tmp_path: Path) -> None:
    assert log_source_from_config(None, None) is None
    follower = log_source_from_config("logs/app.log", None, base=tmp_path)
    assert isinstance(follower, FileFollower) and follower.path == tmp_path / "logs" / "app.log"
    command = log_source_from_config("ignored.log", "tail -n0 -F /dev/null")
    assert isinstance(command, CommandFollower)
    command.close()


def test_run_monitor_on_a_run_context(tmp_path: Path, fake_app: ServedApp) -> None:
    cfg = _config(fake_app.url, str(fake_app.app.log_file))
    ctx = RunContext(run="wired", reports_dir=tmp_path / "reports", config=cfg, suite_dir=tmp_path, git_rev="abc")
    result = run_monitor(ctx, progress=False)
    assert result.complete and result.ok, [c.message for c in result.criteria if not c.ok]
    assert (ctx.run_dir / "monitor.jsonl").exists()
    (record,) = [r for r in ctx.ledger.records() if r["kind"] == "monitor"]
    assert (record["run"], record["git_rev"], record["series"]) == ("wired", "abc", "monitor.jsonl")
    assert record["figures"]["rss_end_bytes"] == 1048576
    assert TOKEN not in (ctx.run_dir / "ledger.jsonl").read_text() + (ctx.run_dir / "monitor.jsonl").read_text()


@pytest.mark.skipif(shutil.which("tail") is None, reason="tail not installed")
def test_log_command_source_feeds_the_db_trigger_and_is_stopped(tmp_path: Path, fake_app: ServedApp,
                                                                probe_set: object) -> None:
    fake_app.app.faults.db_conn_failures = True
    command = CommandFollower(["tail", "-n0", "-F", str(fake_app.app.log_file)])
    sampler = Sampler(MonitorSettings(window_s=3.0, interval_s=0.1, critical_probes=()),
                      series=MonitorSeries(tmp_path / "monitor.jsonl"), probes=probe_set, logs=LogWatcher(command),
                      ledger=Ledger(tmp_path / "ledger.jsonl"), progress=False)
    result = sampler.run()
    assert result.stopped_by == "database-connection-failures"
    assert any("ConnectionDoesNotExistError" in line for s in result.samples for line in s.logs.evidence)
    with pytest.raises(ProcessLookupError):
        os.kill(command.pid, 0)
