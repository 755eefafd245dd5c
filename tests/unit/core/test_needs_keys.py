"""One fixture for "this check needs these config keys": values when set, else a skip naming every missing key
and the config file (the report's waivers match the key in that reason)."""

from __future__ import annotations

from pytest_cutover.report.build import is_waived

from .conftest import CutoverPytester

CONFIG = '[run]\nid = "night"\n[app]\nhealth_url = "https://api.example/health"\n'
CHECKS = '''
import pytest

@pytest.fixture(scope="module")
def old_side(needs):  # a module-scoped fixture uses the same helper
    return needs("source.database_url")

@pytest.mark.precutover
def test_values(needs):
    assert needs("app.health_url") == "https://api.example/health"
    assert needs("app.health_url", "app.api_base|app.health_url") == ("https://api.example/health",) * 2

@pytest.mark.precutover
def test_all_missing_named(needs):
    needs("app.health_url", "app.maintenance", "source.qdrant_url|source.qdrant_path")

@pytest.mark.precutover
def test_from_a_fixture(old_side):
    pass

@pytest.mark.precutover
def test_old_name(cutover_require):
    cutover_require("target.storage_url")
'''


def test_needs_returns_values_or_skips_naming_every_missing_key_and_the_file(
        cutover_pytester: CutoverPytester) -> None:
    (cutover_pytester.path / "cutover.toml").write_text(CONFIG)
    cutover_pytester.suite(CHECKS)
    run = cutover_pytester.run("-m", "precutover", "--cutover-suite=none")
    (record,) = [r for r in run.records() if r["kind"] == "stage"]
    skipped = {s["id"].rsplit("::", 1)[1]: s["reason"].removeprefix("Skipped: ") for s in record["skipped"]}
    config = cutover_pytester.path / "cutover.toml"
    assert skipped == {
        "test_all_missing_named": "missing config keys app.maintenance, source.qdrant_url (or source.qdrant_path) "
                                  f"in {config}",
        "test_from_a_fixture": f"missing config key source.database_url in {config}",
        "test_old_name": f"missing config key target.storage_url in {config}",
    }
    assert record["counts"]["passed"] == 1
    # A waiver for one of the named keys covers the skip.
    assert is_waived("t.py::test_all_missing_named", skipped["test_all_missing_named"],
                     {"source.qdrant_url": "no Qdrant in this deployment"}) == "no Qdrant in this deployment"
