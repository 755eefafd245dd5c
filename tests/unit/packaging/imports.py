"""What production code imports, read from its source (AST), compared with what pyproject.toml declares.

Why: issue 13 asks that a plain install (no extras) runs every stage, so the runtime dependencies must
be exactly the third-party distributions production code imports: nothing missing (an ImportError on
the night), nothing unused.  "Production" is every module of ``pytest_cutover`` outside
``pytest_cutover.rehearsal`` (the rehearsal has its own extra).  Run it directly for a listing:

    PYTHONPATH=plugins python3 -m tests.unit.packaging.imports
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIR = ROOT / "plugins" / "pytest_cutover"
PACKAGE = "pytest_cutover"
REHEARSAL = f"{PACKAGE}.rehearsal"

#: Declared runtime dependencies that production code never imports by name, each with why it is needed.
#: Anything else declared and not imported is an unused dependency and fails the test.
ENTRY_POINT_PLUGINS: dict[str, str] = {
    # pytest loads these through their pytest11 entry points; the suite uses them by option, not by import.
    "pytest-xdist": "`pytest -n N` runs a stage's tests in parallel; plugin.py keeps the stage barrier for it",
    "allure-pytest": "`--alluredir` writes the Allure results the report bundles (report/pytest_hooks.py reads "
                     "the option allure_report_dir)",
}


def normalize(name: str) -> str:
    """A distribution name in PEP 503 form (``Jinja2`` -> ``jinja2``, ``pydantic_core`` -> ``pydantic-core``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ImportSite:
    """One import statement: the module it names, where it is, and whether the code copes without it."""

    module: str
    path: Path
    line: int
    optional: bool      # inside ``try: ... except ImportError``: absence is handled
    typing_only: bool   # under ``if TYPE_CHECKING:``: never executed
    name: str | None = None  # ``from module import name``: the name (a submodule, or an attribute of module)

    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def production_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every ``.py`` file of the package outside ``rehearsal/`` (the packaged suite included, wherever it lives)."""
    return sorted(p for p in package_dir.rglob("*.py")
                  if "rehearsal" not in p.relative_to(package_dir).parts[:1] and "__pycache__" not in p.parts)


def rehearsal_files(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every ``.py`` file under ``rehearsal/``, the reference app's template included."""
    return sorted(p for p in (package_dir / "rehearsal").rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path, package_dir: Path) -> str:
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return handler.type is None or any(isinstance(k, ast.Name) and k.id in names for k in kinds)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_sites(path: Path, package_dir: Path = PACKAGE_DIR) -> Iterator[ImportSite]:
    """Every import in ``path``, at any depth (function bodies included), relative ones made absolute."""
    here = _module_name(path, package_dir)
    is_pkg = path.name == "__init__.py"

    def visit(node: ast.AST, optional: bool, typing_only: bool) -> Iterator[ImportSite]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportSite(alias.name, path, node.lineno, optional, typing_only)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # ``from pytest_cutover import rehearsal`` imports the subpackage: record it by its full name.
            for alias in node.names:
                yield ImportSite(f"{module}.{alias.name}" if module == PACKAGE else module, path, node.lineno,
                                 optional, typing_only, None if module == PACKAGE else alias.name)
            return
        if isinstance(node, ast.Try):
            guarded = any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                yield from visit(child, optional or guarded, typing_only)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                yield from visit(child, optional, typing_only)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from visit(child, optional, True)
            for child in node.orelse:
                yield from visit(child, optional, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, optional, typing_only)

    yield from visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False, False)


def rehearsal_imports(files: list[Path], package_dir: Path = PACKAGE_DIR) -> list[ImportSite]:
    """Imports of ``pytest_cutover.rehearsal`` (or anything under it) in ``files``, at any depth."""
    return [site for path in files for site in import_sites(path, package_dir)
            if site.module == REHEARSAL or site.module.startswith(f"{REHEARSAL}.")]


#: Top-level names that are this project's own code: the package, and the rehearsal's reference app
#: (``rehearsal/app_template`` is checked out and served as the package ``app``).
FIRST_PARTY = frozenset({PACKAGE, "app"})


def third_party_imports(files: list[Path], package_dir: Path = PACKAGE_DIR) -> dict[str, list[ImportSite]]:
    """Top-level third-party module name -> the sites that import it at run time (typing-only ones left out)."""
    out: dict[str, list[ImportSite]] = {}
    for path in files:
        for site in import_sites(path, package_dir):
            top = site.module.split(".")[0]
            if site.typing_only or not top or top in FIRST_PARTY or top in sys.stdlib_module_names:
                continue
            out.setdefault(top, []).append(site)
    return out


def declared(pyproject: Path = ROOT / "pyproject.toml", extra: str | None = None) -> dict[str, Requirement]:
    """``[project] dependencies`` (or one optional extra) by normalized distribution name."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {normalize(req.name): req for req in map(Requirement, specs)}


@dataclass
class Comparison:
    """Imported third-party distributions against declared ones."""

    required: dict[str, list[ImportSite]]    # distribution -> unguarded import sites
    optional: dict[str, list[ImportSite]]    # distribution -> guarded sites only (not required)
    unmapped: dict[str, list[ImportSite]]    # import name no installed distribution provides
    missing: list[str]                       # required but not declared
    unused: list[str]                        # declared, never imported, not an allow-listed plugin


def compare(files: list[Path], deps: dict[str, Requirement], allow: dict[str, str],
            package_dir: Path = PACKAGE_DIR) -> Comparison:
    """Map every third-party import to its distribution(s) and compare with ``deps``."""
    providers = importlib.metadata.packages_distributions()
    required: dict[str, list[ImportSite]] = {}
    optional: dict[str, list[ImportSite]] = {}
    unmapped: dict[str, list[ImportSite]] = {}
    for name, sites in third_party_imports(files, package_dir).items():
        dists = sorted({normalize(d) for d in providers.get(name, [])})
        if not dists:
            # Not installed here: an optional import may be absent; a required one is an error either way.
            if not all(s.optional for s in sites):
                unmapped[name] = sites
            continue
        # One import name, several distributions (rare: namespace packages): a declared one satisfies it.
        dist = next((d for d in dists if d in deps), dists[0])
        target = required if not all(s.optional for s in sites) else optional
        target.setdefault(dist, []).extend(sites)
    missing = sorted(d for d in required if d not in deps)
    unused = sorted(d for d in deps if d not in required and d not in optional and d not in allow)
    return Comparison(required, optional, unmapped, missing, unused)


def main() -> int:
    files = production_files()
    result = compare(files, declared(), ENTRY_POINT_PLUGINS)
    for dist, sites in sorted(result.required.items()):
        print(f"{dist:24} {sites[0].where()} (+{len(sites) - 1} more)")
    for dist, sites in sorted(result.optional.items()):
        print(f"{dist:24} optional, {sites[0].where()}")
    for name in ENTRY_POINT_PLUGINS:
        print(f"{name:24} entry-point plugin")
    print(f"missing: {result.missing or 'none'}; unused: {result.unused or 'none'}; "
          f"unmapped: {sorted(result.unmapped) or 'none'}; rehearsal imports: "
          f"{[s.where() for s in rehearsal_imports(files)] or 'none'}")
    return 1 if result.missing or result.unused or result.unmapped or rehearsal_imports(files) else 0


if __name__ == "__main__":
    raise SystemExit(main())
