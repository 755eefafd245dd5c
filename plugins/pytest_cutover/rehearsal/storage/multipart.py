"""The one request body shape storage3 uploads with: ``multipart/form-data`` (fields + one ``file`` part).

A few lines of our own instead of python-multipart (not installed here): split on the boundary,
read each part's headers, keep the bytes exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from pytest_cutover.rehearsal.storage.errors import invalid_request

__all__ = ["Part", "parse_form"]


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def _params(header_value: str) -> Message:
    msg = Message()
    msg["content-type"] = header_value
    return msg


def parse_form(body: bytes, content_type: str) -> dict[str, Part]:
    """The parts of a multipart/form-data ``body`` by field name."""
    boundary = _params(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise invalid_request("multipart body without a boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    parts: dict[str, Part] = {}
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise invalid_request("malformed multipart part")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        disposition = _params("form-data; " + headers.get("content-disposition", "").partition(";")[2])
        name = disposition.get_param("name")
        filename = disposition.get_param("filename")
        if isinstance(name, str):
            parts[name] = Part(name=name, data=data, filename=filename if isinstance(filename, str) else None,
                               content_type=headers.get("content-type"))
    return parts
