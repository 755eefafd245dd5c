"""Quoting names and values into SQL text, where a bind parameter cannot go.

Why: table and column names come from ``[schema]`` in the config and DDL/COPY statements take no
parameters; every module quotes them here, one way (doubling the quote character), instead of each
keeping its own copy.
"""

from __future__ import annotations

__all__ = ["quote_ident", "quote_literal"]


def quote_ident(name: str) -> str:
    """``column``, ``table`` or ``schema.table`` as quoted SQL identifiers (split on the dot)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def quote_literal(value: str | None) -> str:
    """A standard-conforming SQL string literal (``NULL`` for ``None``)."""
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"
