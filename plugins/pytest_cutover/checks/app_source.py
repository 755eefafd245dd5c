"""Is the app's source fit for a transaction pooler?  Read it (``app.source_dir``), as a reviewer would.

Two things break through Supabase's 6543 pooler and are visible in the source (field notes):

* **Prepared statements.**  asyncpg caches prepared statements per connection; through a transaction
  pooler the next transaction runs on another backend where they do not exist (measured: 140 of 180
  queries failed).  Pooled engines need ``statement_cache_size=0`` (asyncpg) and, with SQLAlchemy,
  ``prepared_statement_cache_size=0``: as ``connect_args`` keys, keyword arguments or URL query parameters.
* **The RLS context.**  Only a transaction-scoped setting is safe: ``SET LOCAL`` or
  ``set_config(name, value, true)`` with the value as a bound parameter.  A plain ``SET app.…`` or
  ``set_config(..., false)`` stays on the pooled server connection and the next client inherits the
  tenant; SQL built with f-strings, ``%`` or ``.format`` is an injection path into the tenant.

The scan walks the AST of every non-test ``.py`` file (docstrings are ignored) and reports file:line.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_cutover.checks.base import CheckResult, result
from pytest_cutover.checks.code import python_files, source_dir

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["CACHE_SETTINGS", "SourceScan", "check_engine_settings", "check_rls_context", "scan_app_source"]

CACHE_SETTINGS = ("statement_cache_size", "prepared_statement_cache_size")
_ASYNC_ENGINES = {"create_async_engine", "async_engine_from_config"}
_ASYNCPG_CALLS = {"connect", "create_pool"}
_BIND = re.compile(r"^(?::\w+|\$\d+|%s|%\(\w+\)s|\?|bindparam\b.*)$")
_SET_CONFIG = re.compile(r"set_config\s*\(\s*'(?P<name>[^']+)'\s*,\s*(?P<value>[^,]+?)\s*,\s*(?P<local>\w+)\s*\)", re.I)
_SET = re.compile(r"\bSET\s+(?P<scope>LOCAL\s+|SESSION\s+)?(?P<name>[A-Za-z_][\w]*\.[\w.]+)\s*(?:=|TO\b)", re.I)


@dataclass
class SourceScan:
    """Where the app creates connections and sets its tenant, as ``file:line`` findings."""

    root: Path
    files: int = 0
    engines: list[tuple[str, str]] = field(default_factory=list)                 # (where, call)
    cache: dict[str, list[tuple[str, object]]] = field(default_factory=dict)     # setting -> [(where, value)]
    safe_context: list[tuple[str, str]] = field(default_factory=list)            # (where, sql)
    unsafe_context: list[tuple[str, str]] = field(default_factory=list)          # (where, why)


def _is_test(rel: str) -> bool:
    parts = Path(rel).parts
    name = parts[-1]
    return (any(p in ("tests", "test") for p in parts[:-1]) or name.startswith("test_") or name.endswith("_test.py")
            or name == "conftest.py")


def _call_name(node: ast.Call) -> tuple[str | None, str | None]:
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    if isinstance(func, ast.Name):
        return None, func.id
    return None, None


def _constant_value(node: ast.AST) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _formatted(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Is this string constant part of SQL built at run time (f-string, %, .format, + with a variable)?"""
    parent = parents.get(node)
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Mod) and parent.left is node:
        return True
    if isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Add):
        other = parent.right if parent.left is node else parent.left
        return not isinstance(other, ast.Constant)
    return bool(isinstance(parent, ast.Attribute) and parent.attr == "format")


def scan_app_source(root: Path, org_setting: str) -> SourceScan:
    """Scan every non-test ``.py`` file under ``root``; unparsable files are skipped (the syntax check reports them)."""
    scan = SourceScan(root=root, cache={name: [] for name in CACHE_SETTINGS})
    prefix = org_setting.split(".", 1)[0] + "." if "." in org_setting else org_setting
    for rel in python_files(root):
        if _is_test(rel):
            continue
        try:
            tree = ast.parse((root / rel).read_bytes(), filename=rel)
        except (SyntaxError, ValueError, OSError):
            continue
        scan.files += 1
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        docstrings = {id(n.value) for n in ast.walk(tree)
                      if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                _scan_call(scan, node, where)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in CACHE_SETTINGS:
                        scan.cache[key.value].append((where, _constant_value(value)))
            elif isinstance(node, ast.JoinedStr):  # an f-string: scan it whole, placeholders as {…}
                text = "".join(v.value if isinstance(v, ast.Constant) else "{…}" for v in node.values)
                formatted = any(isinstance(v, ast.FormattedValue) for v in node.values)
                _scan_sql(scan, text, where, formatted or _formatted(node, parents), org_setting, prefix)
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                  and not isinstance(parents.get(node), ast.JoinedStr)):
                text = node.value
                for setting in CACHE_SETTINGS:
                    for m in re.finditer(rf"\b{setting}=(\w+)", text):
                        scan.cache[setting].append((where, int(m.group(1)) if m.group(1).isdigit() else m.group(1)))
                _scan_sql(scan, text, where, _formatted(node, parents), org_setting, prefix)
    return scan


def _scan_call(scan: SourceScan, node: ast.Call, where: str) -> None:
    """An engine or asyncpg connection being created, and cache settings passed as keywords."""
    owner, name = _call_name(node)
    if name in _ASYNC_ENGINES or (owner == "asyncpg" and name in _ASYNCPG_CALLS):
        scan.engines.append((where, f"{owner + '.' if owner else ''}{name}"))
    for kw in node.keywords:
        if kw.arg in CACHE_SETTINGS:
            scan.cache[kw.arg].append((where, _constant_value(kw.value)))


def _scan_sql(scan: SourceScan, text: str, where: str, formatted: bool, org_setting: str, prefix: str) -> None:
    for m in _SET_CONFIG.finditer(text):
        if not m.group("name").startswith(prefix):
            continue
        value, local = m.group("value").strip(), m.group("local").lower()
        if local != "true":
            scan.unsafe_context.append((where, f"set_config('{m.group('name')}', ..., {local}) is session-scoped: the "
                                               f"tenant stays on the pooled connection for the next client; use true"))
        elif formatted:
            scan.unsafe_context.append((where, f"set_config('{m.group('name')}', ...) is built with string "
                                               f"formatting: pass the value as a bound parameter (:org_id)"))
        elif not _BIND.match(value):
            scan.unsafe_context.append((where, f"set_config('{m.group('name')}', {value}, true) does not bind the "
                                               f"value: use a bound parameter (:org_id)"))
        else:
            scan.safe_context.append((where, m.group(0)))
    for m in _SET.finditer(text):
        if not m.group("name").startswith(prefix):
            continue
        scope = (m.group("scope") or "").strip().upper()
        if scope != "LOCAL":
            scan.unsafe_context.append((where, f"plain SET {m.group('name')} is session-scoped: through the "
                                               f"transaction pooler the next client inherits the tenant; use "
                                               f"SET LOCAL or set_config(..., true)"))
        elif formatted:
            scan.unsafe_context.append((where, f"SET LOCAL {m.group('name')} is built with string formatting: use "
                                               f"set_config('{m.group('name')}', :value, true) with a bound parameter"))
        else:
            scan.safe_context.append((where, m.group(0)))


def _scan(config: CutoverConfig) -> SourceScan:
    return scan_app_source(source_dir(config), config.schema_.rls_org_setting)


def check_engine_settings(config: CutoverConfig, scan: SourceScan | None = None) -> CheckResult:
    """asyncpg's and SQLAlchemy's statement caches are off where the app creates its engine/pool."""
    scan = scan or _scan(config)
    problems: list[str] = []
    engines = ", ".join(f"{call} at {where}" for where, call in scan.engines[:3])
    if not scan.engines:
        problems.append(f"no create_async_engine/asyncpg.connect/asyncpg.create_pool found in {scan.files} files "
                        f"under {scan.root}: cannot confirm the statement cache is off; set app.source_dir to the "
                        f"backend checkout")
    needed = list(CACHE_SETTINGS) if any(c in _ASYNC_ENGINES for _, c in scan.engines) else ["statement_cache_size"]
    for setting in needed if scan.engines else []:
        found = scan.cache.get(setting, [])
        zero = [w for w, v in found if v == 0]
        other = [(w, v) for w, v in found if v != 0]
        if not zero:
            problems.append(f"no {setting}=0 in the app's engine settings ({engines}): through the transaction "
                            f"pooler asyncpg's prepared statements fail ('prepared statement ... does not exist'); add "
                            f"connect_args={{'statement_cache_size': 0, 'prepared_statement_cache_size': 0}}")
        for where, value in other:
            problems.append(f"{where}: {setting} = {value!r}, not 0: prepared statements break through the "
                            f"transaction pooler; set it to 0")
    found_zero = {s: [w for w, v in scan.cache.get(s, []) if v == 0] for s in CACHE_SETTINGS}
    evidence = (f"{len(scan.engines)} engine/pool call(s) ({engines or 'none'}); "
                + "; ".join(f"{s}=0 at {', '.join(w[:2]) or 'nowhere'}" for s, w in found_zero.items()))
    return result("app-engine-settings", problems, evidence,
                  {"engines": len(scan.engines), **{f"{s}_zero": len(w) for s, w in found_zero.items()}})


def check_rls_context(config: CutoverConfig, scan: SourceScan | None = None) -> CheckResult:
    """The tenant is set per transaction (SET LOCAL / set_config(..., true)), with bound parameters."""
    scan = scan or _scan(config)
    setting = config.schema_.rls_org_setting
    problems = [f"{where}: {why}" for where, why in scan.unsafe_context]
    if not any(setting in sql for _, sql in scan.safe_context):
        problems.append(f"no transaction-scoped RLS context for {setting} in {scan.files} files under {scan.root}: "
                        f"expected SELECT set_config('{setting}', :org_id, true) (or SET LOCAL) at the start of "
                        f"every transaction")
    safe = ", ".join(w for w, _ in scan.safe_context[:3]) or "none"
    return result("app-rls-context", problems,
                  f"{len(scan.safe_context)} transaction-scoped context statement(s) ({safe}); "
                  f"{len(scan.unsafe_context)} unsafe", {"rls_context_safe": len(scan.safe_context),
                                                         "rls_context_unsafe": len(scan.unsafe_context)})
