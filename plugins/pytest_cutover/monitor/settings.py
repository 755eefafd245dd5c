"""The monitor's figures, resolved once from the config into one frozen value.

Runbook numbers live in ``[thresholds]`` (window, interval, error rates, search
p95); the monitor's own limits in ``[monitor]``.  Triggers and criteria take this
plain dataclass, so they stay pure and testable without a config file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["MonitorSettings", "settings_from_config"]


@dataclass(frozen=True)
class MonitorSettings:
    """Window, interval, trigger limits and success criteria of one monitor run."""

    window_s: float = 1800.0
    interval_s: float = 10.0
    rollback_error_rate: float = 0.05
    error_rate: float = 0.01
    search_p95_ms: float = 100.0
    error_rate_span_s: float | None = 300.0
    min_requests: int = 20
    conn_failure_count: int = 3
    conn_failure_window_s: float = 300.0
    critical_probes: tuple[str, ...] = ("health", "threads")
    critical_failures: int = 3
    memory_slope_mb_per_min: float = 10.0
    memory_growth_floor_mb: float = 32.0
    connection_growth_max: int = 10
    stop_on_trigger: bool = True

    def with_(self, **changes: Any) -> MonitorSettings:
        """A copy with some fields changed (a rehearsal's short window, a test's limits)."""
        return replace(self, **changes)


def settings_from_config(config: CutoverConfig | None, **overrides: Any) -> MonitorSettings:
    """Settings from ``[thresholds]`` and ``[monitor]``; ``overrides`` (not ``None``) win."""
    settings = MonitorSettings()
    if config is not None:
        th, mon = config.thresholds, config.monitor
        settings = MonitorSettings(
            window_s=th.monitor_window_s, interval_s=th.monitor_interval_s,
            rollback_error_rate=th.rollback_error_rate, error_rate=th.error_rate, search_p95_ms=th.search_p95_ms,
            error_rate_span_s=mon.error_rate_span_s, min_requests=mon.min_requests,
            conn_failure_count=mon.conn_failure_count, conn_failure_window_s=mon.conn_failure_window_s,
            critical_probes=tuple(mon.critical_probes), critical_failures=mon.critical_failures,
            memory_slope_mb_per_min=mon.memory_slope_mb_per_min, memory_growth_floor_mb=mon.memory_growth_floor_mb,
            connection_growth_max=mon.connection_growth_max,
            stop_on_trigger=mon.stop_on_trigger,
        )
    return settings.with_(**{k: v for k, v in overrides.items() if v is not None})
