"""Wire a :class:`~pytest_cutover.monitor.sampler.Sampler` from a run's config and context.

This is what the monitor stage's fixture (and a CLI command) calls: probes from
``[app]`` + ``[monitor]`` (sampled orgs discovered on the target when none are
configured), the log file or log command, RSS and connection counts, the series
under ``reports/<run>/monitor.jsonl`` and the run's ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.errors import ConfigError
from pytest_cutover.monitor.logs import LogWatcher, log_source_from_config
from pytest_cutover.monitor.probes import probe_set_from_config
from pytest_cutover.monitor.sampler import MonitorResult, Sampler
from pytest_cutover.monitor.samples import SERIES_NAME, MonitorSeries, Sample
from pytest_cutover.monitor.settings import MonitorSettings, settings_from_config
from pytest_cutover.monitor.system import system_sampler_from_config
from pytest_cutover.monitor.tenancy import DatabaseLeakOracle, ProbeTargets, discover_targets

if TYPE_CHECKING:
    from rich.console import Console

    from pytest_cutover.context import RunContext

__all__ = ["build_sampler", "run_monitor"]


def _maintenance_paths(config: Any) -> tuple[str, ...]:
    """The health path, when a maintenance answer there counts as up (``[monitor] allow_maintenance``)."""
    from urllib.parse import urlsplit

    if not config.monitor.allow_maintenance or not config.app.health_url:
        return ()
    return (urlsplit(config.app.health_url).path or "/",)


def build_sampler(context: RunContext, *, stage: str = "monitor", settings: MonitorSettings | None = None,
                  prior_leaks: Sequence[str] = (), console: Console | None = None, progress: bool = True,
                  fresh: bool = False, on_sample: Callable[[Sample], None] | None = None,
                  targets: ProbeTargets | None = None) -> Sampler:
    """A sampler for ``context``'s run, from its config."""
    config = context.config
    if config is None:
        raise ConfigError("the monitor needs a config (app.api_base at least)", hint="pass --cutover-config PATH")
    mon, target = config.monitor, config.target
    timeout = config.thresholds.connect_timeout_s
    if targets is None and not mon.orgs and target.database_url is not None:
        targets = asyncio.run(discover_targets(target.database_url, config.schema_, count=mon.sample_orgs,
                                               timeout_s=timeout, ca_file=target.ca_file))
    oracle = (DatabaseLeakOracle(target.database_url, config.schema_, timeout, target.ca_file)
              if target.database_url is not None else None)
    probes = probe_set_from_config(
        config, orgs=targets.orgs if targets else None, oracle=oracle,
        search_fragments={**(targets.search_fragments if targets else {}), **mon.search_fragments},
        attachments={**(targets.attachments if targets else {}), **mon.attachments})
    base = Path(config.path).parent if config.path else None
    source = log_source_from_config(config.app.log_file, config.app.log_command, base=base,
                                    timeout_s=mon.command_timeout_s)
    stamp: dict[str, Any] = context.stamp()
    return Sampler(settings or settings_from_config(config), series=MonitorSeries(context.run_dir / SERIES_NAME),
                   probes=probes, logs=LogWatcher(source, maintenance_paths=_maintenance_paths(config))
                   if source is not None else None,
                   system=system_sampler_from_config(config), ledger=context.ledger, stage=stage, stamp=stamp,
                   prior_leaks=prior_leaks, console=console, progress=progress, on_sample=on_sample, fresh=fresh)


def run_monitor(context: RunContext, **options: Any) -> MonitorResult:
    """Build the sampler for ``context`` (see :func:`build_sampler`) and run its window."""
    return build_sampler(context, **options).run()
