"""Object bytes on local disk: ``<data_dir>/<bucket>/<object id>/<object name>``.

The row id (``storage.objects.id``) comes first, so objects named ``a/b`` and ``a/b/c`` never collide,
and the file path still ends with the object's name (easy to find, e.g. by the ``blob-corrupt`` fault).
Writes go to a temporary file first and are renamed into place (atomic on one file system).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pytest_cutover.rehearsal.storage.errors import invalid_request

__all__ = ["BlobStore", "check_object_name"]


def check_object_name(name: str) -> str:
    """Refuse names that could leave the data folder or are not a path (as storage3 and the server do)."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\x00" in name or any(p in ("", ".", "..") for p in parts):
        raise invalid_request(f"Invalid key: {name}")
    return name


class BlobStore:
    """Read, write and delete object bytes under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, bucket: str, name: str, object_id: str) -> Path:
        check_object_name(bucket)
        check_object_name(name)
        check_object_name(object_id)
        return self.root / bucket / object_id / name

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
        shutil.rmtree(self.root / check_object_name(bucket), ignore_errors=True)
