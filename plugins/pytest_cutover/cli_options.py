"""Options shared by every ``cutover`` subcommand that works on one run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["run_options"]


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--config`` (or ``--cutover-config``, as pytest spells it), ``--run`` and ``--reports-dir``,
    resolved like the pytest plugin resolves them."""
    func = click.option("--reports-dir", type=click.Path(path_type=Path), default=None,
                        help="Folder holding <run>/ (default: $CUTOVER_REPORTS_DIR, else ./reports).")(func)
    func = click.option("--run", "run", default=None, metavar="ID",
                        help="Run id (default: $CUTOVER_RUN, else [run] id, else 'default').")(func)
    func = click.option("--config", "--cutover-config", "config_path", type=click.Path(path_type=Path), default=None,
                        help="cutover.toml (default: ./cutover.toml, else [tool.cutover] in pyproject.toml).")(func)
    return func
