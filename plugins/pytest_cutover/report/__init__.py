"""The sign-off report: ``report.json`` from the ledger, ``report.html``, Allure, JUnit, and a signature.

Only light names are exported here; jinja2, cryptography and Allure load inside the functions
that use them, so importing the plugin stays fast.
"""

from __future__ import annotations

from pytest_cutover.report.build import build_report
from pytest_cutover.report.writer import write_report

__all__ = ["build_report", "write_report"]
