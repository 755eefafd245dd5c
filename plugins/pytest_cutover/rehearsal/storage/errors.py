"""Storage API errors with the real server's body ``{"statusCode", "code", "error", "message"}``.

As in supabase/storage ``src/http/error-handler.ts``: the HTTP status is 400 for every client error
(the body's ``statusCode`` carries 404/403/409...), 500 for server errors.  storage3 reads ``error``,
``message`` and ``statusCode`` from that body (``StorageApiError``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["StorageApiError", "access_denied", "from_postgres", "invalid_bucket_name", "invalid_jwt", "invalid_key",
           "invalid_request", "no_such_bucket", "no_such_key", "resource_exists"]


class StorageApiError(Exception):
    """An error the service answers with (``status`` is the logical status, as in the body)."""

    def __init__(self, status: int, code: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.error = error or code

    @property
    def http_status(self) -> int:
        return 500 if self.status >= 500 else 400

    def body(self) -> dict[str, Any]:
        return {"statusCode": str(self.status), "code": self.code, "error": self.error, "message": self.message}


def no_such_bucket() -> StorageApiError:
    return StorageApiError(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def no_such_key() -> StorageApiError:
    return StorageApiError(404, "NoSuchKey", "Object not found", "not_found")


def access_denied(message: str = "Access denied") -> StorageApiError:
    return StorageApiError(403, "AccessDenied", message, "Unauthorized")


def invalid_jwt(message: str = "Invalid JWT") -> StorageApiError:
    return StorageApiError(400, "InvalidJWT", message)


def invalid_request(message: str) -> StorageApiError:
    return StorageApiError(400, "InvalidRequest", message)


def invalid_key(key: str, reason: str = "") -> StorageApiError:
    """``ERRORS.InvalidKey`` (``src/internal/errors/codes.ts``); the file backend adds a reason."""
    return StorageApiError(400, "InvalidKey", f"Invalid key: {key}" + (f" {reason}" if reason else ""))


def invalid_bucket_name(name: str) -> StorageApiError:
    """``ERRORS.InvalidBucketName``: the message does not repeat the name."""
    del name
    return StorageApiError(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input")


def resource_exists() -> StorageApiError:
    return StorageApiError(409, "ResourceAlreadyExists", "The resource already exists", "Duplicate")


def from_postgres(exc: Exception) -> StorageApiError:
    """Map a PostgreSQL error as ``src/storage/database/errors.ts`` (``DBError.fromDBError``) does."""
    state = getattr(exc, "sqlstate", "") or ""
    text = str(exc)
    if state == "42501":
        return access_denied("new row violates row-level security policy" if "row-level security" in text else text)
    if state == "23505":
        return resource_exists()
    if state == "23503":
        return StorageApiError(409, "ResourceReferenced",
                               "The resource could not be updated or removed due to a foreign key constraint")
    if state in ("22P02",):
        return StorageApiError(400, "InvalidParameter", text or "Invalid value format or type conversion failed")
    return StorageApiError(500, "DatabaseError", f"database error, code: {state or 'unknown'}", "DatabaseError")
