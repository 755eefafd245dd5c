"""The monitor's figures, resolved once from the config into one frozen value.

Runbook numbers live in ``[thresholds]`` (window, interval, error rates, search
p95); the monitor's own limits in ``[monitor]``.  Triggers and criteria take this
plain dataclass, so they stay pure and testable without a config file.  Each field
names the config key it comes from, and its default is that key's default in the
config model: one source of truth (:mod:`pytest_cutover.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pytest_cutover.config import CutoverConfig, config_setting, resolve_settings

__all__ = ["MonitorSettings", "settings_from_config"]


@dataclass(frozen=True)
class MonitorSettings:
    """Window, interval, trigger limits and success criteria of one monitor run."""

    window_s: float = config_setting("thresholds.monitor_window_s")
    interval_s: float = config_setting("thresholds.monitor_interval_s")
    rollback_error_rate: float = config_setting("thresholds.rollback_error_rate")
    error_rate: float = config_setting("thresholds.error_rate")
    search_p95_ms: float = config_setting("thresholds.search_p95_ms")
    error_rate_span_s: float | None = config_setting("monitor.error_rate_span_s")
    min_requests: int = config_setting("monitor.min_requests")
    conn_failure_count: int = config_setting("monitor.conn_failure_count")
    conn_failure_window_s: float = config_setting("monitor.conn_failure_window_s")
    critical_probes: tuple[str, ...] = config_setting("monitor.critical_probes")
    critical_failures: int = config_setting("monitor.critical_failures")
    memory_slope_mb_per_min: float = config_setting("monitor.memory_slope_mb_per_min")
    memory_growth_floor_mb: float = config_setting("monitor.memory_growth_floor_mb")
    connection_growth_max: int = config_setting("monitor.connection_growth_max")
    stop_on_trigger: bool = config_setting("monitor.stop_on_trigger")

    def with_(self, **changes: Any) -> MonitorSettings:
        """A copy with some fields changed (a rehearsal's short window, a test's limits)."""
        return replace(self, **changes)


def settings_from_config(config: CutoverConfig | None, **overrides: Any) -> MonitorSettings:
    """Settings from ``[thresholds]`` and ``[monitor]``; ``overrides`` (not ``None``) win."""
    return resolve_settings(MonitorSettings, config).with_(**{k: v for k, v in overrides.items() if v is not None})
