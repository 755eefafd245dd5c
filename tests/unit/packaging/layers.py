"""The layers of ``pytest_cutover`` as data, and its internal import graph read from the source (AST only).

Why: issue 18 asks for one direction of dependency, so that a maintainer can change a lower layer without
reading the upper ones, and a cycle never decides what works only because of import order.  The graph is
static: every ``import`` at any depth (function bodies, ``try`` blocks and ``if TYPE_CHECKING:`` included)
plus the plugin modules a module requires with ``pytest_plugins``, which pytest imports just as surely.

Type-only imports count.  An annotation naming an upper layer's type is still an upward dependency (the lower
module cannot be read, checked or moved without the upper one); hiding it under ``TYPE_CHECKING`` would make
that block a loophole.  Dotted paths in registries that are imported on first use and say so when absent
(``cli.LAZY_COMMANDS``, the pytest11 entry points in pyproject.toml) are data, not edges: that is how a lower
layer names an optional upper part without depending on it.  Importing ``a.b.c`` also runs ``a/b/__init__``;
that implied edge is not counted (every package that re-exports would otherwise be a cycle with its parts),
but an explicit ``from pytest_cutover.report import build_report`` is an edge to ``report/__init__``.

Run it directly for the layer of every module and whatever breaks the rules:

    PYTHONPATH=plugins python3 -m tests.unit.packaging.layers
"""

from __future__ import annotations

import ast
import functools
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .imports import PACKAGE, PACKAGE_DIR, ROOT, _module_name, import_sites

#: Lowest first; a module may import its own layer or a lower one, never a higher one.
LAYERS: tuple[str, ...] = ("helpers", "core", "domain", "plugin+cli", "rehearsal")

#: Module (dotted, relative to ``pytest_cutover``; ``""`` is its ``__init__``) or package -> layer.  The
#: longest matching prefix wins, so a package's entry covers its new modules and a listed submodule overrides.
PLACEMENT: dict[str, str] = {
    # Neutral helpers sit BELOW the core, not above it as issue 18's sketch has them: they import nothing
    # of this package (util/__init__ promises it; git, SQL quoting, JWTs, certificate dates, storage keys),
    # while the core needs one of them (context stamps every ledger record with the suite's git revision,
    # through util.git).  Below the core they stay reusable by everything, the rehearsal included.
    "util": "helpers",
    # util.proc turns a helper program's failure into our CutoverError with redacted output: it needs the
    # core's errors, redaction and DSN splitting, so it sits in the core layer although it lives in util/.
    "util.proc": "core",
    # The core: the stage model and gate, the ledger and its records, config, run context, errors, redaction.
    "": "core",  # pytest_cutover/__init__ re-exports the stage and status words from stages
    "config": "core",
    "context": "core",
    "dsn": "core",
    "errors": "core",
    "jsonl": "core",
    "ledger": "core",
    "records": "core",
    "redact": "core",
    "session_keys": "core",  # the stash keys every hook module shares: below them, so none imports plugin.py
    "stages": "core",
    # The domain: what the night does and checks, usable without pytest's hooks or the CLI.
    "actions": "domain",
    "checks": "domain",
    "migrate": "domain",
    "monitor": "domain",
    "notify": "domain",
    "plan": "domain",
    "report": "domain",
    "week1": "domain",
    # The pytest plugin and the CLI: adapters over the domain.
    "plugin": "plugin+cli",
    "fixtures": "plugin+cli",
    "hookspecs": "plugin+cli",
    "redact_plugin": "plugin+cli",
    "scope": "plugin+cli",
    "suite": "plugin+cli",
    # pytest hook modules living beside their domain code; plugin.py requires them with ``pytest_plugins``.
    "notify.plugin": "plugin+cli",
    "report.pytest_hooks": "plugin+cli",
    "__main__": "plugin+cli",
    "cli": "plugin+cli",
    "cli_config": "plugin+cli",
    "cli_options": "plugin+cli",
    "init": "plugin+cli",
    "status": "plugin+cli",
    # ``cutover <command>`` subcommands living beside their domain code; cli.LAZY_COMMANDS loads them by name.
    "actions.cli": "plugin+cli",
    "migrate.cli": "plugin+cli",
    "notify.cli": "plugin+cli",
    "plan.cli": "plugin+cli",
    "report.cli": "plugin+cli",
    "week1.cli": "plugin+cli",
    # The rehearsal drives everything above and nothing imports it (a plain install has no rehearsal extra).
    "rehearsal": "rehearsal",
}

#: Packages whose mutual imports are checked as a whole (a cycle between two packages is a cycle even when no
#: two of their modules form one).
DOMAIN_PACKAGES: tuple[str, ...] = ("actions", "checks", "migrate", "monitor", "notify", "plan", "report",
                                         "week1")

#: Edges (importer, imported) let through the cycle check, each with why and until when.  Keep this short.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {
    # Empty: every cycle is fixed.  An entry here (module pair -> why) must come with the issue that removes it;
    # the test fails once an entry no longer closes a cycle.
}

#: The reference app the rehearsal checks out and serves: its own package (``app``), not part of this graph.
NOT_MODULES = ("rehearsal/app_template",)


@dataclass(frozen=True)
class Edge:
    """One place where module ``src`` imports module ``dst`` (both relative to ``pytest_cutover``)."""

    src: str
    dst: str
    path: Path
    line: int
    typing_only: bool
    via: str = "import"  # or "pytest_plugins"

    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"

    def describe(self) -> str:
        how = " (type-only)" if self.typing_only else "" if self.via == "import" else f" ({self.via})"
        return f"{_show(self.src)} imports {_show(self.dst)}{how} at {self.where()}"


def _show(module: str) -> str:
    return module or PACKAGE


def module_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every ``.py`` file of the package except the rehearsal's reference app."""
    return sorted(p for p in package_dir.rglob("*.py") if "__pycache__" not in p.parts
                  and not any(p.relative_to(package_dir).as_posix().startswith(f"{n}/") for n in NOT_MODULES))


def _short(dotted: str) -> str:
    return "" if dotted == PACKAGE else dotted.removeprefix(f"{PACKAGE}.")


def _pytest_plugins(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """The modules a module-level ``pytest_plugins = ...`` names (a string, or a list or tuple of strings)."""
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and any(
                isinstance(t, ast.Name) and t.id == "pytest_plugins"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    yield value.value, node.lineno


def _resolve(name: str, modules: set[str]) -> str | None:
    """The deepest module of the package that ``name`` (dotted, absolute) is or lies in; None when outside."""
    if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
        return None
    parts = _short(name).split(".") if name != PACKAGE else [""]
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return "" if "" in modules else None


def import_graph(package_dir: Path = PACKAGE_DIR) -> tuple[set[str], list[Edge]]:
    """The package's modules and every import edge between two of them, in file and line order."""
    files = module_files(package_dir)
    names = {path: _short(_module_name(path, package_dir)) for path in files}
    modules = set(names.values())
    edges: list[Edge] = []
    for path, src in names.items():
        for site in import_sites(path, package_dir):
            target = f"{site.module}.{site.name}" if site.name else site.module
            dst = _resolve(target, modules)
            if dst is not None and dst != src:
                edges.append(Edge(src, dst, path, site.line, site.typing_only))
        text = path.read_text(encoding="utf-8")
        specs = _pytest_plugins(ast.parse(text, filename=str(path))) if "pytest_plugins" in text else iter(())
        for spec, line in specs:
            dst = _resolve(spec, modules)
            if dst is not None and dst != src:
                edges.append(Edge(src, dst, path, line, False, "pytest_plugins"))
    return modules, list(dict.fromkeys(edges))  # one edge per line: ``from m import a, b`` is one import


def layer_of(module: str, placement: dict[str, str] = PLACEMENT) -> str | None:
    """The layer of ``module`` from its longest listed prefix, or None when it is not placed."""
    parts = module.split(".") if module else [""]
    while parts:
        found = placement.get(".".join(parts))
        if found is not None:
            return found
        parts.pop()
    return None


def unplaced(modules: Iterable[str], placement: dict[str, str] = PLACEMENT) -> list[str]:
    return sorted(m for m in modules if layer_of(m, placement) is None)


def upward_edges(edges: Iterable[Edge], placement: dict[str, str] = PLACEMENT,
                 layers: tuple[str, ...] = LAYERS) -> list[Edge]:
    """Edges from a module to a module of a higher layer (unplaced modules are reported apart)."""
    out = []
    for edge in edges:
        src, dst = layer_of(edge.src, placement), layer_of(edge.dst, placement)
        if src is not None and dst is not None and layers.index(dst) > layers.index(src):
            out.append(edge)
    return out


def _components(nodes: Iterable[str], succ: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(succ.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(succ.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _one_cycle(component: list[str], succ: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the first node of ``component`` (breadth-first), as a closed path."""
    start, members = component[0], set(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(succ.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child in members and child not in parent:
                    parent[child] = node
                    following.append(child)
        frontier = following
    return [start]  # unreachable for a real component


@dataclass(frozen=True)
class Cycle:
    """Nodes that import each other, with one concrete cycle through them and where its edges are."""

    members: list[str]
    path: list[str]
    sites: list[str]

    def describe(self) -> str:
        return (" -> ".join(_show(n) for n in self.path) + f" (members: {', '.join(_show(m) for m in self.members)}; "
                + "; ".join(self.sites) + ")")


def _cycles(pairs: dict[tuple[str, str], list[Edge]]) -> list[Cycle]:
    succ: dict[str, set[str]] = {}
    for src, dst in pairs:
        succ.setdefault(src, set()).add(dst)
    out = []
    for component in _components(succ, succ):
        path = _one_cycle(component, succ)
        sites = [pairs[(a, b)][0].describe() for a, b in itertools.pairwise(path)]
        out.append(Cycle(component, path, sites))
    return out


def module_cycles(edges: Iterable[Edge], allowed: Iterable[tuple[str, str]] = KNOWN_CYCLE_EDGES) -> list[Cycle]:
    """Cycles between modules, leaving out the ``allowed`` edges."""
    skip = set(allowed)
    pairs: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges:
        if (edge.src, edge.dst) not in skip:
            pairs.setdefault((edge.src, edge.dst), []).append(edge)
    return _cycles(pairs)


def package_cycles(edges: Iterable[Edge], packages: Iterable[str] = DOMAIN_PACKAGES) -> list[Cycle]:
    """Cycles between ``packages``, counting every module inside each (its CLI and hook modules included)."""
    wanted = set(packages)
    pairs: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges:
        src, dst = edge.src.split(".")[0], edge.dst.split(".")[0]
        if src != dst and src in wanted and dst in wanted:
            pairs.setdefault((src, dst), []).append(edge)
    return _cycles(pairs)


def stale_allowances(edges: Iterable[Edge], allowed: Iterable[tuple[str, str]] = KNOWN_CYCLE_EDGES) -> list[str]:
    """Allowed edges that no longer close a cycle (gone, or the cycle was broken elsewhere): delete them."""
    edges = list(edges)
    every = module_cycles(edges, allowed=())
    return [f"{a} -> {b}" for a, b in allowed
            if not any(a in c.members and b in c.members for c in every)]


@functools.cache
def package_graph() -> tuple[frozenset[str], tuple[Edge, ...]]:
    """The real package's graph, parsed once per process."""
    modules, edges = import_graph()
    return frozenset(modules), tuple(edges)


def main() -> int:
    modules, edges = package_graph()
    for layer in LAYERS:
        members = sorted(m for m in modules if layer_of(m) == layer)
        print(f"{layer:11} {len(members):3} modules")
    problems = ([f"not placed: {_show(m)}" for m in unplaced(modules)]
                + [f"upward: {e.describe()} ({layer_of(e.src)} -> {layer_of(e.dst)})" for e in upward_edges(edges)]
                + [f"module cycle: {c.describe()}" for c in module_cycles(edges)]
                + [f"package cycle: {c.describe()}" for c in package_cycles(edges)]
                + [f"stale allowance: {s}" for s in stale_allowances(edges)])
    print(f"{len(modules)} modules, {len(edges)} import sites between them "
          f"({sum(e.typing_only for e in edges)} type-only, {sum(e.via != 'import' for e in edges)} pytest_plugins)")
    for line in problems or ["no upward edge, no cycle"]:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
