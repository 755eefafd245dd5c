"""``cutover config check``: validate the config and print it with every secret redacted."""

from __future__ import annotations

from pathlib import Path

import click

from pytest_cutover.cli_options import run_options

__all__ = ["config"]


@click.group()
def config() -> None:
    """Work with cutover.toml."""


@config.command("check")
@run_options
def check(config_path: Path | None, run: str | None, reports_dir: Path | None) -> int:
    """Validate the config and print it, redacted.  Exit 2 on any error."""
    from pytest_cutover.cli import echo_json
    from pytest_cutover.config import dsn_notices
    from pytest_cutover.context import context_from_options
    from pytest_cutover.errors import ConfigError

    ctx = context_from_options(config_path, run, reports_dir)
    if ctx.config is None:
        raise ConfigError("no config found: no ./cutover.toml and no [tool.cutover] in ./pyproject.toml",
                          hint="pass --config PATH")
    click.echo(f"config {ctx.config.path} is valid (run {ctx.run}, hash {ctx.config_hash})")
    for notice in dsn_notices(ctx.config):
        click.echo(f"notice: {notice}")
    echo_json(ctx.config.model_dump(mode="json", by_alias=True, exclude={"path"}))
    return 0
