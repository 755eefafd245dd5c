"""The monitor's and Week 1's settings derive from the config models: each field names its key, its default is
the model's, and a config value reaches the settings (no default declared twice)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest

from pytest_cutover.config import CutoverConfig, config_setting, lookup, parse_config, resolve_settings
from pytest_cutover.monitor.settings import MonitorSettings, settings_from_config
from pytest_cutover.week1.checks import Week1Settings, week1_settings


@pytest.mark.parametrize("cls", [MonitorSettings, Week1Settings])
def test_every_field_names_its_key_and_takes_the_models_default(cls: type) -> None:
    defaults = CutoverConfig()
    for f in fields(cls):
        keys = f.metadata.get("config")
        assert keys, f"{cls.__name__}.{f.name} does not say which config key it comes from"
        model_default = next(v for v in (lookup(defaults, k) for k in keys) if v is not None)
        expected = tuple(model_default) if isinstance(model_default, list | tuple) else model_default
        assert f.default == expected, (cls.__name__, f.name)


def test_config_values_reach_the_settings() -> None:
    cfg = parse_config({"thresholds": {"monitor_window_s": 7.0, "error_rate": 0.02},
                        "monitor": {"critical_probes": ["health"], "error_rate_span_s": None},
                        "week1": {"coverage_hours": 12.0}})
    monitor = settings_from_config(cfg)
    assert (monitor.window_s, monitor.error_rate, monitor.critical_probes, monitor.error_rate_span_s) == (
        7.0, 0.02, ("health",), None)
    week1 = week1_settings(cfg)
    assert (week1.coverage_hours, week1.error_rate_max) == (12.0, 0.02)  # error_rate_max falls back to thresholds
    assert week1_settings(parse_config({"week1": {"error_rate_max": 0.005}})).error_rate_max == 0.005


def test_resolve_settings_without_a_config_gives_the_defaults() -> None:
    @dataclass(frozen=True)
    class Probe:
        timeout: float = config_setting("monitor.probe_timeout_s")
        local: int = 3

    assert resolve_settings(Probe, None) == Probe(timeout=5.0, local=3)
    assert resolve_settings(Probe, parse_config({"monitor": {"probe_timeout_s": 1.5}})).timeout == 1.5
