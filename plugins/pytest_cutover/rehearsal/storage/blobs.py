"""Object bytes on local disk: ``<data_dir>/<bucket>/<object id>/<object name>``.

The row id (``storage.objects.id``) comes first, so objects named ``a/b`` and ``a/b/c`` never collide,
and the file path still ends with the object's name (easy to find, e.g. by the ``blob-corrupt`` fault).
Names were checked against Supabase's key rules by the routes; here only what keeps a name inside the
folder is refused again (``.``/``..`` segments, as the real file backend does).
Writes go to a temporary file first and are renamed into place (atomic on one file system).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pytest_cutover.rehearsal.storage.errors import invalid_key
from pytest_cutover.util.storage_key import dot_segment

__all__ = ["BlobStore", "check_object_name"]


def check_object_name(name: str) -> str:
    """Refuse a name that could leave the data folder, as the real file backend does (``secure-path.ts``)."""
    if not name or "\x00" in name:
        raise invalid_key(name, "contains null byte" if name else "")
    if dot_segment(name):
        raise invalid_key(name, "contains dot path segment")
    return name


def _relative(name: str) -> Path:
    """``name`` under its object folder: empty segments (``a//b``, a leading ``/``) are accepted keys but not
    file names; the object id folder already keeps every object apart."""
    return Path(*[part for part in check_object_name(name).split("/") if part] or ["_"])


class BlobStore:
    """Read, write and delete object bytes under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: str, name: str, object_id: str) -> Path:
        return self.root / _relative(bucket) / _relative(object_id) / _relative(name)

    def write(self, bucket: str, name: str, object_id: str, data: bytes) -> None:
        final = self._path(bucket, name, object_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, bucket: str, name: str, object_id: str) -> bytes | None:
        try:
            return self._path(bucket, name, object_id).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, bucket: str, name: str, object_id: str) -> None:
        self._path(bucket, name, object_id).unlink(missing_ok=True)
        shutil.rmtree(self.root / bucket / object_id, ignore_errors=True)

    def delete_bucket(self, bucket: str) -> None:
        shutil.rmtree(self.root / _relative(bucket), ignore_errors=True)
