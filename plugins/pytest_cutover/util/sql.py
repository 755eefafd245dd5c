"""Quoting names and values into SQL text, where a bind parameter cannot go.

Why: table and column names come from ``[schema]`` in the config and DDL/COPY statements take no
parameters; every module quotes them here, one way (doubling the quote character), instead of each
keeping its own copy.
"""

from __future__ import annotations

import re

__all__ = ["quote_ident", "quote_literal", "shown_ident"]

_PLAIN = re.compile(r"[a-z_][a-z0-9_$]*")


def quote_ident(name: str) -> str:
    """``column``, ``table`` or ``schema.table`` as quoted SQL identifiers (split on the dot)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def quote_literal(value: str | None) -> str:
    """A standard-conforming SQL string literal (``NULL`` for ``None``)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def shown_ident(name: str, *, dotted: bool = True) -> str:
    """An identifier in SQL shown to a person (a fix to paste): as it is when every part is a plain lower-case
    identifier, else quoted like :func:`quote_ident`.  ``dotted=False``: one name that may hold a dot (a role)."""
    parts = name.split(".") if dotted else [name]
    if all(_PLAIN.fullmatch(part) for part in parts):
        return name
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)
