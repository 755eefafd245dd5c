"""``cutover init``: a new operator directory, ready for ``cutover config check`` and ``pytest -m precutover``.

It writes the commented production example as ``cutover.toml`` and a ``.gitignore`` that keeps the reports
(and the secrets folder beside them) out of git.  It never overwrites: an existing ``cutover.toml`` is a
usage error naming it, so a filled-in config cannot be lost to a second ``init``.
"""

from __future__ import annotations

from pathlib import Path

import click

from pytest_cutover.errors import ConfigError

__all__ = ["EXAMPLE_CONFIG", "init", "init_directory"]

EXAMPLE_CONFIG = Path(__file__).resolve().parent / "examples" / "cutover.example.toml"
_GITIGNORE = "# pytest-cutover output: reports/<run>/ and reports/.secrets/ (never commit them)\nreports/\n"


def init_directory(directory: Path) -> list[Path]:
    """Write ``cutover.toml`` (and ``.gitignore`` when absent) into ``directory``; returns what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "cutover.toml"
    if config.exists():
        raise ConfigError(f"{config} already exists; cutover init never overwrites it",
                          hint="edit it, or run cutover init in an empty directory")
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(
        "cutover config check --config fixtures/cutover.example.toml", "cutover config check")
    written = []
    with config.open("x", encoding="utf-8") as fh:  # "x": a file that appeared meanwhile is not overwritten
        fh.write(text)
    written.append(config)
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(_GITIGNORE, encoding="utf-8")
        written.append(gitignore)
    return written


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
def init(directory: Path) -> int:
    """Start an operator directory: a commented cutover.toml (from the production example) and a .gitignore.

    Your own checks go beside it as ordinary pytest tests with a stage marker (@pytest.mark.precutover, ...):
    they join the packaged acceptance suite and the same gate.
    """
    for path in init_directory(directory):
        click.echo(f"wrote {path}")
    click.echo("next: fill in cutover.toml (secrets as ${VAR} references), then `cutover config check` "
               "and `pytest -m precutover`")
    return 0
