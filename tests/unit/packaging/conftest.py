"""A fresh venv with a plain, non-editable ``pip install`` of this repository (no extras), once per session.

Why: issue 13 promises that ``pip install pytest-cutover`` alone runs every stage.  Only a real venv
(no ``--system-site-packages``) with the wheel built from these sources shows what a user gets: files
missing from the wheel, undeclared dependencies, imports of the rehearsal package.

Reuse: ``plain_install.python`` is the venv's interpreter and ``plain_install.run(...)`` runs a command
from ``plain_install.bin`` in any folder (for example the packaged suite collected from an empty dir).
Mark such tests ``@pytest.mark.slow`` and ``@pytest.mark.xdist_group(PLAIN_INSTALL_GROUP)`` so that, with
``--dist loadgroup``, they share one worker and one venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from .imports import ROOT

PLAIN_INSTALL_GROUP = "plain-install"
VENV_TIMEOUT_S = 180
PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class PlainInstall:
    """A venv holding ``pip install <repo>`` and nothing else."""

    venv: Path
    source: Path                 # the copy of the repository that was installed
    seconds: dict[str, float]    # {"venv": ..., "pip": ...}: what the build cost

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def run(self, *argv: str | os.PathLike[str], cwd: Path, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``argv[0]`` from the venv's ``bin`` (``python``, ``pytest``, ``cutover``), with the venv first on PATH
        and nothing of this repository on ``PYTHONPATH``."""
        base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        base |= {"PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(self.venv)}
        first, *rest = (str(a) for a in argv)
        exe = str(self.bin / first) if (self.bin / first).exists() else first
        return subprocess.run([exe, *rest], cwd=cwd, env=base | (env or {}), capture_output=True, text=True,
                              timeout=timeout, check=False)


def _copy_sources(dest: Path) -> Path:
    """The files a clean clone would have (tracked, plus new files not ignored), so the build neither sees
    local junk (reports/, caches) nor writes build/ and egg-info into the worktree."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, timeout=60, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _step(argv: Sequence[str | os.PathLike[str]], timeout: float, what: str) -> float:
    started = time.monotonic()
    try:
        done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False,
                              env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {timeout:.0f} s")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-25:])
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{tail}")
    return time.monotonic() - started


@pytest.fixture(scope="session")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> PlainInstall:
    """Build the venv (about 5 s) and install the repository into it (about 30 s with a warm wheel cache)."""
    base = tmp_path_factory.mktemp("plain-install")
    source = _copy_sources(base / "src")
    venv = base / "venv"
    seconds = {"venv": _step([sys.executable, "-m", "venv", venv], VENV_TIMEOUT_S, "python -m venv")}
    cfg = (venv / "pyvenv.cfg").read_text(encoding="utf-8")
    assert "include-system-site-packages = false" in cfg, f"not an isolated venv:\n{cfg}"
    seconds["pip"] = _step([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            "--no-input", source], PIP_TIMEOUT_S, f"pip install {source} (non-editable, no extras)")
    return PlainInstall(venv=venv, source=source, seconds=seconds)
