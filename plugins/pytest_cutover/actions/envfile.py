"""Edit one ``KEY=value`` line of a dotenv file, atomically, leaving every other byte alone.

Why so careful: the ``.env`` holds production secrets and is read by the app at
start.  A half-written file, a lost line, a changed mode or owner, or a second
``DATABASE_URL`` line that silently wins are all outages.  So: the file is read
as bytes, exactly one assignment of the key must exist, only that line is
rebuilt (its ``export`` prefix, quoting, trailing comment and line ending kept),
and the result is written to a temp file in the same directory, fsynced, given
the original mode and owner, and ``os.replace``d over the original.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pytest_cutover.actions.base import ActionError

__all__ = ["EnvLine", "atomic_write", "find_line", "read_value", "set_value"]

_LINE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


#: Backslash escapes inside quotes, as python-dotenv (pydantic-settings, the app) reads them.
_DOUBLE_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t", "v": "\v"}
_SINGLE_ESCAPES = {"\\": "\\", "'": "'"}


def _escapes(quote: str) -> dict[str, str]:
    return _DOUBLE_ESCAPES if quote == '"' else _SINGLE_ESCAPES


def _closing(rest: str, quote: str) -> int:
    """Index of the quote that closes ``rest[0]``, skipping backslash-escaped characters; -1 when none."""
    i = 1
    while i < len(rest):
        if rest[i] == "\\" and i + 1 < len(rest) and rest[i + 1] in _escapes(quote):
            i += 2
            continue
        if rest[i] == quote:
            return i
        i += 1
    return -1


def _unescape(raw: str, quote: str) -> str:
    escapes = _escapes(quote)
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(0)), raw)


def _escape(value: str, quote: str) -> str:
    return value.replace("\\", "\\\\").replace(quote, "\\" + quote)


@dataclass(frozen=True)
class EnvLine:
    """One assignment: ``<prefix><key><eq><quote><raw><quote><trail><eol>``; ``value`` is ``raw`` with its
    backslash escapes decoded (``\\"`` inside double quotes is a ``"`` of the value)."""

    index: int
    prefix: str
    key: str
    eq: str
    quote: str
    value: str
    trail: str
    eol: str

    def render(self, value: str) -> str:
        written = _escape(value, self.quote) if self.quote else value
        return f"{self.prefix}{self.key}{self.eq}{self.quote}{written}{self.quote}{self.trail}{self.eol}"


def _split(data: bytes) -> list[bytes]:
    return _LINE.findall(data)


def _parse(index: int, raw: bytes, key: str, path: Path) -> EnvLine | None:
    text = raw.decode("utf-8", "surrogateescape")
    head = re.match(rf"^(\s*(?:export\s+)?)({re.escape(key)})(\s*=\s*)", text)
    if head is None:
        return None
    eol = "\r\n" if text.endswith("\r\n") else ("\n" if text.endswith("\n") else "")
    rest = text[head.end(): len(text) - len(eol)]
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        end = _closing(rest, quote)
        if end < 0:
            raise ActionError(f"{path} line {index + 1}: {key} has an opening {quote} but no closing one",
                              hint=f"fix the quoting of {key} by hand, then run the action again")
        value, trail = _unescape(rest[1:end], quote), rest[end + 1:]
    else:
        quote = ""
        space = re.search(r"\s", rest)
        value, trail = (rest, "") if space is None else (rest[: space.start()], rest[space.start():])
    return EnvLine(index, head.group(1), key, head.group(3), quote, value, trail, eol)


def find_line(path: Path, key: str, *, data: bytes | None = None) -> EnvLine | None:
    """The one assignment of ``key`` in ``path``; ``None`` when there is none; an error when there are several."""
    if data is None:
        data = _read(path)
    found = [line for i, raw in enumerate(_split(data)) if (line := _parse(i, raw, key, path)) is not None]
    if len(found) > 1:
        numbers = ", ".join(str(line.index + 1) for line in found)
        raise ActionError(f"{path} has {len(found)} {key} lines (lines {numbers}): refusing to guess which one the "
                          "app reads", hint=f"keep exactly one {key} line in {path}, then run the action again")
    return found[0] if found else None


def read_value(path: Path, key: str) -> str | None:
    """The value of ``key`` (quotes removed), or ``None`` when the file has no such line."""
    line = find_line(path, key)
    return None if line is None else line.value


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ActionError(f"env file {path} does not exist", hint="set [app] env_file to the app's .env") from None
    except OSError as exc:
        raise ActionError(f"env file {path} cannot be read: {exc.strerror}") from None


def set_value(path: Path, key: str, value: str, *, append_if_missing: bool = False) -> tuple[str | None, bool]:
    """Set ``key`` to ``value`` in ``path``; returns ``(previous value, changed)``.

    Refuses (``ActionError``) when the key is absent (unless ``append_if_missing``),
    present more than once, or when ``value`` cannot be written in the line's quoting.
    """
    path = Path(os.path.realpath(path))
    data = _read(path)
    line = find_line(path, key, data=data)
    if line is None:
        if not append_if_missing:
            raise ActionError(f"{path} has no {key} line: refusing to add one the app may not read",
                              hint=f"add the {key}=... line the app uses to {path}, then run the action again")
        sep = b"" if not data or data.endswith(b"\n") else b"\n"
        new = data + sep + f"{key}={value}\n".encode("utf-8", "surrogateescape")
        atomic_write(path, new, expected=data)
        return None, True
    _check_value(path, key, value, line.quote)
    if line.value == value:
        return line.value, False
    lines = _split(data)
    lines[line.index] = line.render(value).encode("utf-8", "surrogateescape")
    atomic_write(path, b"".join(lines), expected=data)
    return line.value, True


def _check_value(path: Path, key: str, value: str, quote: str) -> None:
    bad = ("\n", "\r") + (() if quote else (" ", "\t", "#", '"', "'", "\\"))
    if any(ch in value for ch in bad):
        raise ActionError(f"the new {key} value cannot be written into {path} without changing its quoting",
                          hint="the value contains a newline, or whitespace, '#', a quote or a backslash on an "
                               "unquoted line: quote the line (KEY=\"...\") by hand, then run the action again")


def atomic_write(path: Path, data: bytes, *, expected: bytes | None = None, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically: temp file in the same directory, fsync, same mode/owner, rename.

    With ``expected``, refuse when the file changed since it was read (someone else edited it).
    A new file gets ``mode`` (default 0600).
    """
    path = Path(os.path.realpath(path))
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None and mode is None else (mode or 0o600))
        if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:
                os.fchown(fd, st.st_uid, st.st_gid)
            except PermissionError:
                raise ActionError(f"cannot give the new {path} its owner {st.st_uid}:{st.st_gid}",
                                  hint="run the action as the file's owner or as root") from None
        os.fsync(fd)
        os.close(fd)
        fd = -1
        if expected is not None and path.read_bytes() != expected:
            raise ActionError(f"{path} changed while it was being edited: not overwriting it",
                              hint="make sure nobody else edits the file, then run the action again")
        os.replace(tmp, path)
        tmp = ""
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
