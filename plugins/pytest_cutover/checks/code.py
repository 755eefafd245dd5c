"""Runbook "Code Quality": the app checkout compiles, its imports resolve, its tests collect, no conflict
markers, everything committed and pushed.

Compilation and import resolution run in the app's *own* interpreter (``app.python``, else ours) in a
subprocess with a timeout: the app's Python version decides what is valid syntax and its environment
decides which packages exist.  ``py_compile`` writes its bytecode to a scratch folder, never into the
checkout (a ``__pycache__`` would make the tree dirty).  Import resolution does not execute the app's
modules: its own packages are resolved on disk (and ``from x import name`` checked against x's top-level
bindings); third-party names with ``importlib.util.find_spec``.  Imports under ``if TYPE_CHECKING``/``if
sys...`` or inside ``try: ... except ImportError`` are optional and skipped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_cutover.checks.base import CheckResult, config_relative, result
from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.redact import redact
from pytest_cutover.util.git import GitError, git_or_raise

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = [
    "EXCLUDED_DIRS",
    "CheckoutReport",
    "check_collects",
    "check_git",
    "check_imports",
    "check_merge_markers",
    "check_syntax",
    "inspect_checkout",
    "python_files",
    "source_dir",
]

EXCLUDED_DIRS = frozenset({".git", ".hg", ".venv", "venv", "env", ".env", "node_modules", "__pycache__",
                           "site-packages", "build", "dist", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache", ".eggs"})
_TIMEOUT_S = 180.0
_MARKER = re.compile(r"^(<{7}|>{7})(?: |$)|^={7}$|^\|{7}(?: |$)")

# Runs inside the app's interpreter: argv[1] = checkout; stdin = JSON list of relative .py paths.
_INSPECT = r'''
import ast, importlib.util, json, os, py_compile, sys, tempfile
root = sys.argv[1]
files = json.load(sys.stdin)
sys.path.insert(0, root)
out = {"python": sys.version.split()[0], "compiled": 0, "syntax": [], "unresolved": [], "imports": 0}
scratch = tempfile.mkdtemp(prefix="cutover-pyc-")
trees = {}
for i, rel in enumerate(files):
    path = os.path.join(root, rel)
    try:
        py_compile.compile(path, cfile=os.path.join(scratch, f"{i}.pyc"), doraise=True)
        out["compiled"] += 1
        with open(path, "rb") as fh:
            trees[rel] = ast.parse(fh.read(), filename=rel)
    except py_compile.PyCompileError as exc:
        err = exc.exc_value
        out["syntax"].append({"file": rel, "line": getattr(err, "lineno", None),
                              "error": f"{type(err).__name__}: {getattr(err, 'msg', None) or err}"})
    except (OSError, ValueError) as exc:
        out["syntax"].append({"file": rel, "line": None, "error": f"{type(exc).__name__}: {exc}"})

def local_path(dotted):
    base = os.path.join(root, *dotted.split("."))
    for cand in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(cand):
            return cand
    if os.path.isdir(base):
        return base  # namespace package
    return None

def bindings(path):
    if not path.endswith(".py"):
        return None
    rel = os.path.relpath(path, root)
    tree = trees.get(rel)
    if tree is None:
        return None
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                if a.name == "*":
                    return None
                names.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For)):
            return None  # conditional definitions: do not guess
    if "__getattr__" in names:
        return None
    return names

def optional(parents):
    for p in parents:
        if isinstance(p, ast.If):
            src = ast.dump(p.test)
            if "TYPE_CHECKING" in src or "'sys'" in src or "platform" in src:
                return True
        if isinstance(p, ast.Try):
            for h in p.handlers:
                t = ast.dump(h.type) if h.type is not None else "bare"
                if "ImportError" in t or "ModuleNotFoundError" in t or t == "bare" or "Exception" in t:
                    return True
    return False

def walk(node, parents):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, parents
        else:
            yield from walk(child, parents + [child])

def resolve(mod):
    top = mod.split(".")[0]
    if local_path(top) is not None:
        return local_path(mod)
    try:
        return importlib.util.find_spec(mod) is not None or None
    except Exception as exc:  # a parent failed to import, or is not a package
        return None

for rel, tree in sorted(trees.items()):
    parts = rel[:-3].split(os.sep)
    is_pkg = parts[-1] == "__init__"
    package = parts[:-1]
    for node, parents in walk(tree, []):
        if optional(parents):
            continue
        if isinstance(node, ast.Import):
            targets = [(a.name, None) for a in node.names]
        else:
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [(mod, [a.name for a in node.names])]
        for mod, names in targets:
            out["imports"] += 1
            where = f"{rel}:{node.lineno}"
            found = resolve(mod) if mod else root
            if not found:
                out["unresolved"].append({"where": where, "module": mod, "name": None})
                continue
            if names and isinstance(found, str):
                defined = bindings(found) if found.endswith(".py") else None
                for name in names:
                    if name == "*" or local_path(f"{mod}.{name}") is not None:
                        continue
                    if defined is not None and name not in defined:
                        out["unresolved"].append({"where": where, "module": mod, "name": name})
print(json.dumps(out))
'''


@dataclass(frozen=True)
class CheckoutReport:
    """What the app's interpreter said about the checkout."""

    python: str
    files: int
    compiled: int
    syntax: tuple[dict[str, Any], ...]
    unresolved: tuple[dict[str, Any], ...]
    imports: int
    figures: dict[str, Any] = field(default_factory=dict)


def source_dir(config: CutoverConfig) -> Path:
    """``app.source_dir`` as a path (relative to the config file), which must be a folder."""
    if not config.app.source_dir:
        raise ConfigError("missing config key app.source_dir", hint="set [app] source_dir to the app's checkout")
    path = config_relative(config, config.app.source_dir)
    if not path.is_dir():
        raise ConfigError(f"app.source_dir {path} is not a folder", hint="point [app] source_dir at the checkout")
    return path


def _python(config: CutoverConfig) -> str:
    return str(config_relative(config, config.app.python)) if config.app.python else sys.executable


def python_files(root: Path) -> list[str]:
    """Relative paths of every ``.py`` file under ``root`` (virtualenvs, caches and VCS folders excluded)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS and not d.endswith(".egg-info"))
        found += [os.path.relpath(os.path.join(folder, f), root) for f in sorted(files) if f.endswith(".py")]
    return found


def _child_env(config: CutoverConfig | None = None) -> dict[str, str]:
    """The operator's environment, less what would make the app's code behave unlike the app: pytest's own
    variables and ``PYTHONPATH``, and every variable the app's ``.env`` sets (the service reads those from its
    ``.env``; an operator shell's ``DATABASE_URL`` must not decide how the app's tests import)."""
    from pytest_cutover.actions.envfile import keys

    app_keys: set[str] = set()
    env_file = config.app.env_file if config is not None else None
    if env_file and config_relative(config, env_file).is_file():
        app_keys = set(keys(config_relative(config, env_file)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "COV_CORE")) and k not in ("PYTHONPATH",) and k not in app_keys}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(argv: list[str], cwd: Path, timeout: float, what: str, stdin: str | None = None,
         config: CutoverConfig | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=_child_env(config), check=False)
    except FileNotFoundError:
        raise CutoverError(f"{what}: {argv[0]} does not exist", hint="set app.python to the app's interpreter "
                                                                      "(e.g. backend/venv/bin/python)") from None
    except subprocess.TimeoutExpired:
        raise CutoverError(f"{what} did not finish within {timeout:g}s in {cwd}",
                           hint="the checkout is very large or an import blocks; run it by hand to see") from None


def inspect_checkout(config: CutoverConfig, timeout: float = _TIMEOUT_S) -> CheckoutReport:
    """Compile every file and resolve every import in the app's interpreter (one subprocess)."""
    root = source_dir(config)
    files = python_files(root)
    python = _python(config)
    done = _run([python, "-X", "utf8", "-c", _INSPECT, str(root)], root, timeout,
                f"inspecting {root} with {python}", stdin=json.dumps(files), config=config)
    if done.returncode != 0:
        raise CutoverError(f"the app's interpreter {python} failed while inspecting {root}: "
                           f"{redact(done.stderr.strip()[-500:])}", hint="run app.python by hand; is it a Python 3?")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return CheckoutReport(python=data["python"], files=len(files), compiled=data["compiled"],
                          syntax=tuple(data["syntax"]), unresolved=tuple(data["unresolved"]), imports=data["imports"])


def check_syntax(report: CheckoutReport, root: Path) -> CheckResult:
    """Runbook "All syntax verified with `py_compile`"."""
    problems = [f"{s['file']}:{s['line']}: {s['error']}: py_compile fails, so the app cannot start: fix it and "
                f"commit" for s in report.syntax]
    if report.files == 0:
        problems.append(f"no .py file under {root}: is app.source_dir the backend checkout?")
    evidence = f"py_compile (Python {report.python}) of {report.files} files under {root}: {report.compiled} ok"
    return result("code-syntax", problems, evidence, {"py_files": report.files, "syntax_errors": len(report.syntax)})


def check_imports(report: CheckoutReport, root: Path) -> CheckResult:
    """Runbook "All imports verified"."""
    problems = []
    for u in report.unresolved:
        what = f"name {u['name']} from {u['module']}" if u["name"] else f"module {u['module']}"
        problems.append(f"{u['where']}: {what} cannot be resolved in the app's interpreter (Python "
                        f"{report.python}): install the package or fix the import")
    evidence = (f"{report.imports} imports in {report.compiled} compiled files resolved with Python {report.python}; "
                f"{len(report.unresolved)} unresolved")
    return result("code-imports", problems, evidence,
                  {"imports": report.imports, "unresolved_imports": len(report.unresolved)})


def check_collects(config: CutoverConfig, timeout: float = _TIMEOUT_S) -> CheckResult:
    """Runbook "Test suite created and ready": ``python -m pytest --collect-only -q`` in the checkout collects tests."""
    root = source_dir(config)
    python = _python(config)
    done = _run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"], root, timeout,
                f"collecting the app's tests in {root}", config=config)
    lines = done.stdout.strip().splitlines()
    collected = sum(1 for line in lines if "::" in line)
    summary = next((line for line in reversed(lines) if "collected" in line or "error" in line.lower()),
                   lines[-1] if lines else "")
    problems = []
    if done.returncode == 5 or (done.returncode == 0 and collected == 0):
        problems.append(f"the app's test suite in {root} collects no tests: add tests (runbook: 'Test suite "
                        f"created and ready')")
    elif done.returncode != 0:
        lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("E ", "ERROR")) or "Error" in line]
        detail = redact(" | ".join((errors or lines)[-4:]))
        problems.append(f"`python -m pytest --collect-only` in {root} failed (exit {done.returncode}): {detail}; fix "
                        f"the collection errors")
    return result("code-tests-collect", problems, f"{collected} tests collected in {root}: {redact(summary)}",
                  {"tests_collected": collected})


def _tracked_files(root: Path) -> list[str]:
    done = _git(root, "ls-files", "-z", check=False)
    if done.returncode == 0:
        return [f for f in done.stdout.split("\0") if f]
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in EXCLUDED_DIRS)
        found += [os.path.relpath(os.path.join(folder, f), root) for f in sorted(files)]
    return found


def check_merge_markers(config: CutoverConfig) -> CheckResult:
    """Runbook "No merge conflicts": no ``<<<<<<<``/``>>>>>>>`` lines in any tracked text file."""
    root = source_dir(config)
    hits: dict[str, list[int]] = {}
    scanned = 0
    for rel in _tracked_files(root):
        path = root / rel
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if b"\0" in data[:8192]:
            continue
        scanned += 1
        lines = data.decode("utf-8", "replace").splitlines()
        found = [i for i, line in enumerate(lines, 1) if _MARKER.match(line)]
        if any(lines[i - 1].startswith(("<<<<<<<", ">>>>>>>")) for i in found):
            hits[rel] = found
    problems = [f"{rel}: merge-conflict markers on lines {', '.join(map(str, lines[:6]))}: resolve the conflict, "
                f"commit and push" for rel, lines in sorted(hits.items())]
    return result("code-merge-markers", problems, f"{scanned} text files scanned under {root}; "
                                                  f"{len(hits)} with conflict markers",
                  {"files_with_conflict_markers": len(hits)})


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return git_or_raise(root, *args, trust=(root,), timeout=60, check=check, error=_git_error)


def _git_error(exc: GitError) -> CutoverError:
    if exc.returncode is None:  # git missing, too slow, or no folder
        return CutoverError(str(exc), hint="install git, and check that app.source_dir is a git checkout")
    return CutoverError(redact(str(exc)), hint="is app.source_dir a git checkout?")


def check_git(config: CutoverConfig) -> CheckResult:
    """Runbook "All changes committed to git": a clean tree whose HEAD is on the remote branch."""
    root = source_dir(config)
    if _git(root, "rev-parse", "--is-inside-work-tree", check=False).returncode != 0:
        return result("code-git", [f"{root} is not a git checkout: deploy from a committed, pushed revision"],
                      str(root))
    problems = []
    status = [line for line in _git(root, "status", "--porcelain=v1", "--untracked-files=normal").stdout.splitlines()
              if line.strip()]
    if status:
        shown = ", ".join(line[3:] for line in status[:5]) + (" ..." if len(status) > 5 else "")
        problems.append(f"{len(status)} uncommitted change(s) in {root}: {shown}: commit (or discard) them and push "
                        f"before the cutover")
    head = _git(root, "rev-parse", "--short", "HEAD").stdout.strip()
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    upstream = _git(root, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{u}", check=False)
    ahead = None
    if upstream.returncode == 0:
        up = upstream.stdout.strip()
        ahead = int(_git(root, "rev-list", "--count", f"{up}..HEAD").stdout.strip() or 0)
        if ahead:
            problems.append(f"{ahead} commit(s) on {branch} are not on {up} (HEAD {head}): run git push")
        where = f"upstream {up}"
    else:
        remotes = _git(root, "branch", "-r", "--contains", "HEAD", check=False).stdout.split()
        if not remotes:
            problems.append(f"HEAD {head} ({branch}) is on no remote branch: push it (git push -u origin {branch})")
        where = f"remote branches {', '.join(remotes[:3]) or 'none'}"
    evidence = (f"{root}: {branch} at {head}, {len(status)} uncommitted change(s), {where} "
                f"(remote refs as of the last fetch/push)")
    return result("code-git", problems, evidence, {"uncommitted": len(status), "unpushed": ahead, "head": head})
