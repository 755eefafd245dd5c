"""One direction of dependency (issue 18): every module of ``pytest_cutover`` has a layer, imports only its own
layer or lower ones, and no modules (nor domain packages) import each other in a cycle.

The layers and the placement of every module are data in :mod:`.layers` (``LAYERS``, ``PLACEMENT``); the graph
is read from the source with ``ast`` (nothing is imported), every import at any depth counted, type-only ones
included.  Each guard is also run on a small planted package to watch it fail with its message.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from .layers import (
    DOMAIN_PACKAGES,
    KNOWN_CYCLE_EDGES,
    LAYERS,
    PLACEMENT,
    Edge,
    import_graph,
    layer_of,
    module_cycles,
    package_cycles,
    package_graph,
    stale_allowances,
    unplaced,
    upward_edges,
)


def _lines(items: list[str]) -> str:
    return "".join(f"\n  {item}" for item in items)


# -- the package ------------------------------------------------------------------------------------------------
def test_the_walk_sees_the_package_and_its_hidden_edges() -> None:
    modules, edges = package_graph()
    assert len(modules) > 100, f"only {len(modules)} modules found: is PACKAGE_DIR right?"
    pairs = {(e.src, e.dst) for e in edges}
    # A module-level import, one inside a function, and a type-only one: each kind must reach the graph.
    assert ("plugin", "stages") in pairs
    assert ("actions.restart", "actions.env_switch") in pairs      # inside _app_urls
    assert any(e.typing_only for e in edges if (e.src, e.dst) == ("actions.base", "context"))
    assert ("plugin", "notify.plugin") in pairs                     # pytest_plugins
    assert "rehearsal.app_template.app.main" not in modules         # the reference app is its own package


def test_every_module_has_a_layer() -> None:
    modules, _ = package_graph()
    missing = unplaced(modules)
    assert not missing, ("modules without a layer; add each (or its package) to PLACEMENT in tests/unit/packaging/"
                         f"layers.py, with a comment if the placement is unusual:{_lines(missing)}")


def test_placement_names_only_modules_that_exist() -> None:
    modules, _ = package_graph()
    stale = sorted(key for key in PLACEMENT
                   if key not in modules and not any(m.startswith(f"{key}.") for m in modules))
    assert not stale, f"PLACEMENT lists modules that do not exist (renamed or removed?): {stale}"
    assert set(PLACEMENT.values()) <= set(LAYERS)


def test_no_module_imports_a_higher_layer() -> None:
    _, edges = package_graph()
    upward = upward_edges(edges)
    assert not upward, (f"imports against the layers {' <- '.join(LAYERS)} (move the shared code down, or pass "
                        "it in from above):"
                        + _lines([f"{e.describe()} [{layer_of(e.src)} -> {layer_of(e.dst)}]" for e in upward]))


def test_no_import_cycle_between_modules() -> None:
    _, edges = package_graph()
    cycles = module_cycles(edges)
    assert not cycles, ("modules that import each other (move what both need into a lower module, or pass it in):"
                        + _lines([c.describe() for c in cycles]))


def test_no_import_cycle_between_domain_packages() -> None:
    _, edges = package_graph()
    cycles = package_cycles(edges)
    assert not cycles, (f"domain packages ({', '.join(DOMAIN_PACKAGES)}) that import each other:"
                        + _lines([c.describe() for c in cycles]))


def test_no_cycle_is_allowed_and_no_allowance_is_stale() -> None:
    # The last known cycle (rehearsal faults <-> stack) was broken with the stack protocol (#19): nothing is let
    # through any more.
    assert not KNOWN_CYCLE_EDGES, "KNOWN_CYCLE_EDGES must stay empty: break a new cycle instead of allowing it"
    _, edges = package_graph()
    stale = stale_allowances(edges)
    assert not stale, f"these allowed edges no longer close a cycle: delete them from KNOWN_CYCLE_EDGES: {stale}"


# -- the guards, watched failing on a planted package -----------------------------------------------------------
PLANTED_PLACEMENT = {"": "core", "errors": "core", "util": "helpers", "checks": "domain", "actions": "domain",
                     "plugin": "plugin+cli", "checks.cli": "plugin+cli", "rehearsal": "rehearsal"}


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pytest_cutover"
    for rel in ("__init__.py", "errors.py", "util/__init__.py", "checks/__init__.py", "actions/__init__.py",
                "rehearsal/__init__.py", "plugin.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(textwrap.dedent(text))
    return pkg


def _upward(pkg: Path) -> list[Edge]:
    _, edges = import_graph(pkg)
    return upward_edges(edges, PLANTED_PLACEMENT)


def test_an_upward_import_inside_a_function_is_named_with_its_line(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"checks/db.py": """\
        def later():
            from pytest_cutover.plugin import thing
            return thing
        """})
    (edge,) = _upward(pkg)
    assert edge.describe() == f"checks.db imports plugin at {pkg / 'checks' / 'db.py'}:2"


def test_a_type_only_upward_import_counts(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"errors.py": """\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pytest_cutover.checks import base
        """, "checks/base.py": ""})
    (edge,) = _upward(pkg)
    assert (edge.src, edge.dst, edge.typing_only) == ("errors", "checks.base", True)
    assert "(type-only)" in edge.describe()


def test_relative_and_from_package_imports_resolve_to_the_submodule(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"util/git.py": "from .. import rehearsal\nfrom ..rehearsal import stack\n",
                            "rehearsal/stack.py": ""})
    assert [(e.src, e.dst, e.line) for e in _upward(pkg)] == [("util.git", "rehearsal", 1),
                                                               ("util.git", "rehearsal.stack", 2)]


def test_a_listed_submodule_overrides_its_package(tmp_path: Path) -> None:
    # checks.cli is placed with the CLI: it may import the plugin; checks.db may not.
    pkg = _plant(tmp_path, {"checks/cli.py": "import pytest_cutover.plugin\n",
                            "checks/db.py": "import pytest_cutover.checks.cli\n"})
    assert [(e.src, e.dst) for e in _upward(pkg)] == [("checks.db", "checks.cli")]


def test_pytest_plugins_is_an_edge(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"checks/hooks.py": 'pytest_plugins = ["pytest_cutover.plugin"]\n'})
    (edge,) = _upward(pkg)
    assert (edge.src, edge.dst, edge.via) == ("checks.hooks", "plugin", "pytest_plugins")


def test_an_unplaced_module_is_named(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"newthing.py": ""})
    modules, _ = import_graph(pkg)
    assert unplaced(modules, PLANTED_PLACEMENT) == ["newthing"]


def test_a_module_cycle_is_named_with_both_import_sites(tmp_path: Path) -> None:
    pkg = _plant(tmp_path, {"actions/a.py": "from pytest_cutover.actions.b import x\n",
                            "actions/b.py": "def f():\n    from pytest_cutover.actions import a\n"})
    _, edges = import_graph(pkg)
    (cycle,) = module_cycles(edges, allowed=())
    assert cycle.path == ["actions.a", "actions.b", "actions.a"]
    text = cycle.describe()
    assert text.startswith("actions.a -> actions.b -> actions.a (members: actions.a, actions.b; ")
    assert "actions/a.py:1" in text and "actions/b.py:2" in text
    # An allowed edge lets the cycle through, and is stale once the cycle is gone.
    assert module_cycles(edges, allowed=[("actions.b", "actions.a")]) == []
    assert stale_allowances(edges, allowed=[("actions.b", "actions.a")]) == []
    assert stale_allowances(edges, allowed=[("actions.a", "checks.x")]) == ["actions.a -> checks.x"]


def test_a_package_cycle_without_a_module_cycle_is_found(tmp_path: Path) -> None:
    # checks.a -> actions.b and actions.c -> checks.d: no two modules import each other, the packages do.
    pkg = _plant(tmp_path, {"checks/a.py": "import pytest_cutover.actions.b\n", "actions/b.py": "",
                            "actions/c.py": "import pytest_cutover.checks.d\n", "checks/d.py": ""})
    _, edges = import_graph(pkg)
    assert module_cycles(edges, allowed=()) == []
    (cycle,) = package_cycles(edges, packages=("actions", "checks"))
    assert cycle.members == ["actions", "checks"]
    assert "actions.c imports checks.d" in cycle.describe() and "checks.a imports actions.b" in cycle.describe()


@pytest.mark.parametrize(("module", "layer"), [("util.git", "helpers"), ("context", "core"), ("", "core"),
                                               ("checks.isolation", "domain"), ("actions.cli", "plugin+cli"),
                                               ("notify.plugin", "plugin+cli"), ("suite.test_sync", "plugin+cli"),
                                               ("rehearsal.stack", "rehearsal")])
def test_placement_examples(module: str, layer: str) -> None:
    assert layer_of(module) == layer
