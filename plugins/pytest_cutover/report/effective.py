"""The effective configuration of a run, recorded in its ledger so that every rebuild shows the same people.

A rehearsal's ``cutover.toml`` lives in a temporary folder; a production config is edited after the
night. ``cutover report``, ``--ack`` and ``report sign`` rebuild from the ledger, so the ledger keeps
what the report needs from the config when a stage runs: the lead, time zone and announced maintenance
window, the contacts, the team's attestations, waivers, thresholds and the Week-1 settings (redacted),
and every endpoint reduced to ``scheme://host:port/path`` (no user, password or query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_cutover.config import ConfigError, CutoverConfig, config_hash, config_hosts, parse_config
from pytest_cutover.redact import redact_obj

if TYPE_CHECKING:
    from pytest_cutover.context import RunContext

__all__ = ["CONFIG_KIND", "RecordedConfig", "config_record", "record_config", "recorded_config"]

CONFIG_KIND = "config"
# The sections the report reads; none of them holds a credential (secrets live in source/target/app/notify).
_KEPT = ("run", "people", "team", "waivers", "thresholds", "week1")


@dataclass(frozen=True)
class RecordedConfig:
    """The config a run recorded: enough to rebuild its report, and the hash that identifies the original."""

    config: CutoverConfig
    config_hash: str | None
    hosts: dict[str, str]
    path: str | None


def config_record(config: CutoverConfig) -> dict[str, Any]:
    """The ``config`` record's payload for ``config`` (redacted; no credentials)."""
    settings = config.model_dump(mode="json", by_alias=True, include=set(_KEPT), exclude_none=True)
    return {"kind": CONFIG_KIND, "config_hash": config_hash(config), "path": config.path,
            "settings": redact_obj(settings), "hosts": config_hosts(config)}


def record_config(ctx: RunContext) -> bool:
    """Append the run's effective config to its ledger unless the latest one recorded is the same config."""
    if ctx.config is None:
        return False
    wanted = config_hash(ctx.config)
    recorded = ctx.ledger.of_kind(CONFIG_KIND) if ctx.ledger.path.exists() else []
    if recorded and recorded[-1].get("config_hash") == wanted:
        return False
    ctx.ledger.append({**config_record(ctx.config), **ctx.stamp()})
    return True


def recorded_config(records: Sequence[Mapping[str, Any]]) -> RecordedConfig | None:
    """The latest config the run recorded, rebuilt as a :class:`CutoverConfig` (``None`` if none or unreadable)."""
    found = [r for r in records if r.get("kind") == CONFIG_KIND]
    if not found:
        return None
    rec = found[-1]
    try:
        config = parse_config(dict(rec.get("settings") or {}), source="the ledger's config record", env={},
                              path=rec.get("path"))
    except (ConfigError, ValueError):
        return None
    return RecordedConfig(config=config, config_hash=rec.get("config_hash"), hosts=dict(rec.get("hosts") or {}),
                          path=rec.get("path"))
