"""The report package's public names, and that importing it stays light (no jinja2, cryptography)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_cutover.report as report
from pytest_cutover.report import allure, build, charts, checklist, cli, html, pytest_hooks, sign, versions, writer


@pytest.mark.parametrize("module", [report, allure, build, charts, checklist, cli, html, pytest_hooks, sign,
                                    versions, writer])
def test_all_is_sorted_and_public(module: object) -> None:
    names = module.__all__
    # isort style, as ruff's RUF022 keeps it: CONSTANTS, then Classes, then functions.
    assert names == sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))
    assert all(hasattr(module, n) for n in names)


def test_importing_the_hooks_does_not_load_heavy_libraries() -> None:
    code = ("import sys, pytest_cutover.report, pytest_cutover.report.pytest_hooks; "
            "print(sorted(m for m in ('jinja2', 'cryptography', 'allure') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
