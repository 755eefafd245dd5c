"""Supabase Storage's object key rules, and a key segment that every filename maps to.

The rules are the real service's (supabase/storage, ``src/storage/limits.ts``: ``isValidKey`` and
``isValidBucketName``; read at commit 4fa61fba of 2026-08-21): a key is non-empty and made only of
``A-Z a-z 0-9 _ / ! . * ' ( ) space & $ = @ ; : + , ? -``, which refuses every non-ASCII character, ``%``,
``#``, ``[ ] { } ^ ~ ` " < > \\ |`` and control characters; a bucket name uses the same set without ``/``
and has 1 to 100 characters.  Both answer 400 ``InvalidKey`` / ``InvalidBucketName``.  The file backend
(``src/storage/backend/secure-path.ts``) also refuses ``.`` and ``..`` path segments, and a segment
longer than a file name may be fails on disk, so :func:`safe_segment` avoids both as well.

The rehearsal's storage service enforces these rules and the BLOB migration names its objects with
:func:`safe_segment`, so a key the rehearsal accepts is one the real service accepts.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["HASH_CHARS", "MAX_SEGMENT", "dot_segment", "is_valid_bucket_name", "is_valid_key", "safe_segment"]

# The same character class as limits.ts' VALID_OBJECT_KEY / VALID_BUCKET_NAME; used with fullmatch, since
# Python's ``$`` would also match before a trailing newline, which JavaScript's does not.
_KEY_CHARS = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]*")
_BUCKET_CHARS = re.compile(r"[A-Za-z0-9_!.*'() &$=@;:+,?-]*")
_SLUG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_SEGMENT = 120  # well under the 255-byte file name limit of the file backend's disks
HASH_CHARS = 12  # 48 bits of sha256: distinct names that need rewriting get distinct segments
_MAX_EXT = 10


def is_valid_key(key: str) -> bool:
    """``isValidKey`` of supabase/storage: non-empty and only S3-safe characters."""
    return len(key) > 0 and _KEY_CHARS.fullmatch(key) is not None


def is_valid_bucket_name(name: str) -> bool:
    """``isValidBucketName`` of supabase/storage: 1 to 100 characters of the key set without ``/``."""
    return 0 < len(name) < 101 and _BUCKET_CHARS.fullmatch(name) is not None


def dot_segment(key: str) -> bool:
    """Whether ``key`` has a ``.`` or ``..`` segment (the file backend refuses those as path traversal)."""
    return any(part in (".", "..") for part in re.split(r"[\\/]+", key) if part)


def _kept(text: str) -> bool:
    """A name that is already a good segment stays as it is (so plain names keep their familiar keys)."""
    return (is_valid_key(text) and "/" not in text and len(text) <= MAX_SEGMENT and text.strip() == text
            and text.strip(".") != "")


def safe_segment(value: object) -> str:
    """One path segment the real service accepts, for any value; the same value always gives the same segment.

    A value that is already a valid, short, non-dot segment is returned unchanged.  Any other becomes an
    ASCII slug of it (accents folded, anything outside ``A-Za-z0-9._-`` replaced), a hyphen and the first
    :data:`HASH_CHARS` hex digits of the sha256 of the original text, keeping a short extension, so two
    different names never share a segment and the file type still shows:

    >>> safe_segment("report.pdf")
    'report.pdf'
    >>> safe_segment("Résumé #2.pdf")
    'Resume_2-3f0489bc47d0.pdf'
    """
    text = str(value)
    if _kept(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem, dot, ext = ascii_text.rpartition(".")
    ext = _SLUG_UNSAFE.sub("", ext) if dot else ""
    if not dot or len(ext) > _MAX_EXT:
        stem, ext = ascii_text, ""
    slug = _SLUG_UNSAFE.sub("_", stem).strip("._-")
    room = MAX_SEGMENT - HASH_CHARS - 1 - (len(ext) + 1 if ext else 0)
    slug = slug[:room].rstrip("._-") or "file"
    return f"{slug}-{digest}" + (f".{ext}" if ext else "")
