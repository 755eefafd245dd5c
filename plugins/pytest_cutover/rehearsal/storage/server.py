"""Routes of the Storage API subset storage3 uses, mounted at ``/`` and at ``/storage/v1`` (the gateway path).

Object keys and bucket names follow the real service's rules (``pytest_cutover.util.storage_key``, from
supabase/storage ``src/storage/limits.ts``): a key outside them is a 400 ``InvalidKey``.
Authorisation follows the real handlers (supabase/storage ``src/http/routes``): bucket lookups for
reads run as the service role (``asSuperUser``); object rows are read, written, listed and deleted as
the JWT's role, so RLS decides; a public bucket serves reads without a JWT.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from pytest_cutover.rehearsal.storage.auth import SERVICE_PRINCIPAL, Principal, principal_from_headers
from pytest_cutover.rehearsal.storage.blobs import BlobStore, check_object_name
from pytest_cutover.rehearsal.storage.errors import (
    StorageApiError,
    access_denied,
    invalid_bucket_name,
    invalid_key,
    invalid_request,
    no_such_bucket,
    no_such_key,
    resource_exists,
)
from pytest_cutover.rehearsal.storage.metadata import MetadataStore
from pytest_cutover.rehearsal.storage.multipart import parse_form
from pytest_cutover.util.jwt import encode_hs256
from pytest_cutover.util.storage_key import is_valid_bucket_name, is_valid_key

__all__ = ["create_app"]

_log = logging.getLogger("storage")
_SIGNED_URL_SCOPE = "download"


@dataclass
class _Service:
    meta: MetadataStore
    blobs: BlobStore
    jwt_secret: str

    def who(self, request: Request, *, allow_invalid: bool = False) -> Principal:
        return principal_from_headers(request.headers, self.jwt_secret, allow_invalid=allow_invalid)


def _svc(request: Request) -> _Service:
    return request.app.state.service


def _object_name(request: Request, *, key_rule: bool = True) -> str:
    """The object name of the route, refused (400 InvalidKey) where the real service calls ``mustBeValidKey``:
    uploads and every lookup of one object (``findObject``); deletes and upload signing do not (``key_rule``
    off), though a name that would leave the data folder is refused everywhere, as the file backend does."""
    name = request.path_params["path"]
    if key_rule and not is_valid_key(name):
        raise invalid_key(name)
    return check_object_name(name)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise invalid_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid_request("body must be a JSON object")
    return data


# ---------------------------------------------------------------------------------------------- buckets
async def list_buckets(request: Request) -> Response:
    svc = _svc(request)
    async with svc.meta.scoped(svc.who(request), method="GET", path=request.url.path) as conn:
        return JSONResponse(await svc.meta.list_buckets(conn))


async def get_bucket(request: Request) -> Response:
    svc = _svc(request)
    async with svc.meta.scoped(svc.who(request)) as conn:
        row = await svc.meta.find_bucket(conn, request.path_params["bucket"])
    if row is None:
        raise no_such_bucket()
    return JSONResponse(svc.meta.bucket_json(row))


async def create_bucket(request: Request) -> Response:
    svc = _svc(request)
    who = svc.who(request)
    body = await _json_body(request)
    name = body.get("name") or body.get("id")
    if not isinstance(name, str) or not name:
        raise invalid_request("body must have required property 'name'")
    bucket_id = body.get("id") or name
    if not isinstance(bucket_id, str) or not is_valid_bucket_name(bucket_id):
        raise invalid_bucket_name(str(bucket_id))
    async with svc.meta.scoped(who) as conn:
        if await svc.meta.find_bucket(conn, bucket_id) is not None:
            raise resource_exists()
        await svc.meta.create_bucket(conn, bucket_id=bucket_id, name=name, public=bool(body.get("public")),
                                     owner=who.sub, file_size_limit=body.get("file_size_limit"),
                                     allowed_mime_types=body.get("allowed_mime_types"))
    return JSONResponse({"name": name})


async def update_bucket(request: Request) -> Response:
    svc = _svc(request)
    body = await _json_body(request)
    changes = {k: body[k] for k in ("public", "file_size_limit", "allowed_mime_types") if k in body}
    async with svc.meta.scoped(svc.who(request)) as conn:
        if not await svc.meta.update_bucket(conn, request.path_params["bucket"], changes):
            raise no_such_bucket()
    return JSONResponse({"message": "Successfully updated"})


async def delete_bucket(request: Request) -> Response:
    svc = _svc(request)
    bucket = request.path_params["bucket"]
    async with svc.meta.scoped(svc.who(request)) as conn:
        if not await svc.meta.delete_bucket(conn, bucket):
            raise no_such_bucket()
    svc.blobs.delete_bucket(bucket)
    return JSONResponse({"message": "Successfully deleted"})


async def empty_bucket(request: Request) -> Response:
    svc = _svc(request)
    bucket = request.path_params["bucket"]
    async with svc.meta.scoped(svc.who(request)) as conn:
        if await svc.meta.find_bucket(conn, bucket) is None:
            raise no_such_bucket()
        names = [r["name"] for r in await svc.meta.objects_under(conn, bucket, "%")]
        deleted = await svc.meta.delete_objects(conn, bucket, names)
    for row in deleted:
        svc.blobs.delete(bucket, row["name"], str(row["id"]))
    return JSONResponse({"message": "Successfully emptied"})


# ---------------------------------------------------------------------------------------------- objects
async def _upload_payload(request: Request) -> tuple[bytes, str, str, dict[str, Any] | None]:
    """(bytes, content type, cache-control, user metadata) from a multipart form or a raw body."""
    content_type = request.headers.get("content-type", "application/octet-stream")
    body = await request.body()
    if content_type.lower().startswith("multipart/form-data"):
        form = parse_form(body, content_type)
        file_part = form.get("file") or next((p for p in form.values() if p.filename is not None), None)
        if file_part is None:
            raise invalid_request("multipart upload without a file part")
        cache = form["cacheControl"].data.decode() if "cacheControl" in form else "3600"
        user_meta = json.loads(form["metadata"].data) if "metadata" in form else None
        return file_part.data, file_part.content_type or "application/octet-stream", cache, user_meta
    cache = (request.headers.get("cache-control") or "max-age=3600").removeprefix("max-age=")
    return body, content_type, cache, _header_metadata(request.headers.get("x-metadata"))


def _header_metadata(value: str | None) -> dict[str, Any] | None:
    """``x-metadata``: base64 of a JSON object, ignored when unreadable (``parseUserMetadata`` in uploader.ts)."""
    if not value:
        return None
    try:
        data = json.loads(base64.b64decode(value).decode("utf-8"))
    except (ValueError, binascii.Error):
        return None
    return data if isinstance(data, dict) else None


def _object_metadata(data: bytes, content_type: str, cache: str) -> dict[str, Any]:
    now = time.time()
    return {"eTag": f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"', "size": len(data),
            "mimetype": content_type, "cacheControl": f"max-age={cache}",
            "lastModified": format_datetime(_utc(now), usegmt=True), "contentLength": len(data), "httpStatusCode": 200}


def _utc(ts: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC)


class _DryRun(Exception):
    """Raised inside a savepoint to roll back a permission probe."""


async def _existing(svc: _Service, bucket: str, name: str) -> tuple[Any, Any]:
    """(bucket row, object row) as the service role: limits and duplicates do not depend on RLS."""
    async with svc.meta.scoped(SERVICE_PRINCIPAL) as conn:
        return await svc.meta.find_bucket(conn, bucket), await svc.meta.find_object(conn, bucket, name)


async def _write_rows(conn: Any, svc: _Service, *, bucket: str, name: str, owner: str, exists: bool,
                      metadata: dict[str, Any], user_meta: dict[str, Any] | None) -> str:
    """Insert or update the object row on ``conn`` (whose role RLS judges); the object id."""
    if exists:
        object_id = await svc.meta.update_object(conn, bucket_id=bucket, name=name, owner=owner, metadata=metadata,
                                                 user_metadata=user_meta)
        if object_id is None:  # the row exists but this role may not update it
            raise access_denied("new row violates row-level security policy")
        return object_id
    return await svc.meta.insert_object(conn, bucket_id=bucket, name=name, owner=owner, metadata=metadata,
                                        user_metadata=user_meta)


async def _store(request: Request, svc: _Service, *, who: Principal, owner: str, upsert: bool,
                 must_exist: bool) -> Response:
    bucket, name = request.path_params["bucket"], _object_name(request)
    data, content_type, cache, user_meta = await _upload_payload(request)
    metadata = _object_metadata(data, content_type, cache)
    bucket_row, existing = await _existing(svc, bucket, name)
    if bucket_row is None:
        raise no_such_bucket()
    limit = bucket_row.get("file_size_limit")
    if limit is not None and len(data) > limit:
        raise StorageApiError(413, "EntityTooLarge", "The object exceeded the maximum allowed size",
                              "Payload too large")
    if existing is not None and not (upsert or must_exist):
        raise resource_exists()
    if must_exist and existing is None:
        raise no_such_key()
    async with svc.meta.scoped(who, method=request.method, path=request.url.path) as conn:
        object_id = await _write_rows(conn, svc, bucket=bucket, name=name, owner=owner, exists=existing is not None,
                                      metadata=metadata, user_meta=user_meta)
        # Bytes land before COMMIT: a failed commit leaves an unreferenced file, never a row without bytes.
        svc.blobs.write(bucket, name, object_id, data)
    return JSONResponse({"Id": object_id, "Key": f"{bucket}/{name}"})


async def upload_object(request: Request) -> Response:
    """POST (create; ``x-upsert: true`` replaces) or PUT (update) ``/object/{bucket}/{path}``, as the JWT's role."""
    svc = _svc(request)
    who = svc.who(request)
    upsert = request.method == "POST" and request.headers.get("x-upsert", "").lower() == "true"
    return await _store(request, svc, who=who, owner=who.sub, upsert=upsert, must_exist=request.method == "PUT")


async def sign_upload(request: Request) -> Response:
    """POST /object/upload/sign/{bucket}/{path}: a token to upload there later, if the caller may write it now.

    The permission is probed by writing the row as the caller inside a savepoint that is rolled back (the
    real server asks ``storage.can_insert_object`` the same way: RLS decides at signing time).
    """
    svc = _svc(request)
    who = svc.who(request)
    bucket, name = request.path_params["bucket"], _object_name(request, key_rule=False)
    upsert = request.headers.get("x-upsert", "").lower() == "true"
    bucket_row, existing = await _existing(svc, bucket, name)
    if bucket_row is None:
        raise no_such_bucket()
    if existing is not None and not upsert:
        raise resource_exists()
    async with svc.meta.scoped(who, method="POST", path=request.url.path) as conn:
        try:
            async with conn.transaction():
                await _write_rows(conn, svc, bucket=bucket, name=name, owner=who.sub, exists=existing is not None,
                                  metadata={}, user_meta=None)
                raise _DryRun
        except _DryRun:
            pass
    now = int(time.time())
    token = encode_hs256({"url": f"{bucket}/{name}", "owner": who.sub, "upsert": upsert, "scope": "upload",
                          "iat": now, "exp": now + 2 * 3600}, svc.jwt_secret)
    return JSONResponse({"url": f"/object/upload/sign/{quote(bucket)}/{quote(name)}?token={token}"})


async def upload_signed(request: Request) -> Response:
    """PUT /object/upload/sign/{bucket}/{path}?token=...: the token is the authorisation (no JWT needed)."""
    import jwt

    svc = _svc(request)
    bucket, name = request.path_params["bucket"], _object_name(request)
    try:
        claims = jwt.decode(request.query_params.get("token") or "", svc.jwt_secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise StorageApiError(400, "InvalidSignature", f"invalid signature: {exc}") from None
    if claims.get("url") != f"{bucket}/{name}" or claims.get("scope") != "upload":
        raise StorageApiError(400, "InvalidSignature", "Invalid signature")
    return await _store(request, svc, who=SERVICE_PRINCIPAL, owner=str(claims.get("owner") or ""),
                        upsert=bool(claims.get("upsert")), must_exist=False)


async def _readable_object(request: Request, svc: _Service, who: Principal, *, public_route: bool) -> Any:
    """The object row the caller may read (the real ``getObject`` flow), or an API error."""
    bucket, name = request.path_params["bucket"], _object_name(request)
    async with svc.meta.scoped(SERVICE_PRINCIPAL) as conn:
        bucket_row = await svc.meta.find_bucket(conn, bucket)
    is_public = bool(bucket_row is not None and bucket_row["public"])
    if bucket_row is None or ((public_route or not who.authenticated) and not is_public):
        raise no_such_bucket()
    async with svc.meta.scoped(SERVICE_PRINCIPAL if is_public else who) as conn:
        row = await svc.meta.find_object(conn, bucket, name)
    if row is None:
        raise no_such_key()
    return row


def _object_response(svc: _Service, row: Any, request: Request) -> Response:
    data = svc.blobs.read(row["bucket_id"], row["name"], str(row["id"]))
    if data is None:
        raise no_such_key()
    meta = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else (row["metadata"] or {})
    headers = {"cache-control": meta.get("cacheControl", "no-cache"), "etag": meta.get("eTag", ""),
               "last-modified": meta.get("lastModified", "")}
    download = request.query_params.get("download")
    if download is not None:
        filename = download or row["name"].rsplit("/", 1)[-1]
        headers["content-disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    return Response(data, media_type=meta.get("mimetype", "application/octet-stream"), headers=headers)


async def get_object(request: Request) -> Response:
    """GET /object/{bucket}/{path}: a missing or invalid JWT means anonymous (public buckets only)."""
    svc = _svc(request)
    who = svc.who(request, allow_invalid=True)
    return _object_response(svc, await _readable_object(request, svc, who, public_route=False), request)


async def get_authenticated_object(request: Request) -> Response:
    svc = _svc(request)
    who = svc.who(request)
    return _object_response(svc, await _readable_object(request, svc, who, public_route=False), request)


async def get_public_object(request: Request) -> Response:
    svc = _svc(request)
    return _object_response(svc, await _readable_object(request, svc, svc.who(request, allow_invalid=True),
                                                        public_route=True), request)


def _info_body(svc: _Service, row: Any) -> dict[str, Any]:
    obj = svc.meta.object_json(row)
    meta = obj.get("metadata") or {}
    return {"id": obj["id"], "name": obj["name"], "version": obj.get("version"), "bucket_id": obj["bucket_id"],
            "size": meta.get("size"), "content_type": meta.get("mimetype"), "cache_control": meta.get("cacheControl"),
            "etag": meta.get("eTag"), "metadata": obj.get("user_metadata"), "last_modified": obj.get("updated_at"),
            "created_at": obj.get("created_at")}


async def object_info(request: Request) -> Response:
    svc = _svc(request)
    row = await _readable_object(request, svc, svc.who(request), public_route=False)
    return JSONResponse(_info_body(svc, row))


async def public_object_info(request: Request) -> Response:
    svc = _svc(request)
    row = await _readable_object(request, svc, svc.who(request, allow_invalid=True), public_route=True)
    return JSONResponse(_info_body(svc, row))


async def list_objects(request: Request) -> Response:
    """POST /object/list/{bucket}: one folder level under ``prefix``, as ``storage.search`` returns it."""
    svc = _svc(request)
    body = await _json_body(request)
    bucket = request.path_params["bucket"]
    prefix = str(body.get("prefix") or "")
    if prefix and not prefix.endswith("/"):
        prefix += "/"  # the real server assumes the prefix is a folder
    search = str(body.get("search") or "")
    limit, offset = int(body.get("limit") or 100), int(body.get("offset") or 0)
    sort_by = body.get("sortBy") or {}
    column = sort_by.get("column") or "name"
    descending = str(sort_by.get("order") or "asc").lower() == "desc"
    pattern = _like_escape(prefix + search) + "%"
    async with svc.meta.scoped(svc.who(request), method="POST", path=request.url.path) as conn:
        rows = await svc.meta.objects_under(conn, bucket, pattern)
    entries: dict[str, dict[str, Any]] = {}
    for row in rows:
        rest = row["name"][len(prefix):]
        head, slash, _ = rest.partition("/")
        if slash:
            entries.setdefault(head, {"name": head, "id": None, "updated_at": None, "created_at": None,
                                      "last_accessed_at": None, "metadata": None})
        else:
            obj = svc.meta.object_json(row)
            entries[head] = {"name": head, "id": obj["id"], "updated_at": obj.get("updated_at"),
                             "created_at": obj.get("created_at"), "last_accessed_at": obj.get("last_accessed_at"),
                             "metadata": obj.get("metadata")}
    key = column if column in ("name", "updated_at", "created_at", "last_accessed_at") else "name"
    ordered = sorted(entries.values(), key=lambda e: (e[key] is not None, e[key] or "", e["name"]),
                     reverse=descending)
    return JSONResponse(ordered[offset:offset + limit])


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def remove_objects(request: Request) -> Response:
    """DELETE /object/{bucket} ``{"prefixes": [...]}``: deletes the rows this role may delete (RLS)."""
    svc = _svc(request)
    body = await _json_body(request)
    prefixes = body.get("prefixes")
    if not isinstance(prefixes, list) or not prefixes or not all(isinstance(p, str) for p in prefixes):
        raise invalid_request("body must have required property 'prefixes' (a non-empty list of names)")
    bucket = request.path_params["bucket"]
    async with svc.meta.scoped(svc.who(request), method="DELETE", path=request.url.path) as conn:
        deleted = await svc.meta.delete_objects(conn, bucket, prefixes)
    for row in deleted:
        svc.blobs.delete(bucket, row["name"], str(row["id"]))
    return JSONResponse([svc.meta.object_json(r) for r in deleted])


async def remove_object(request: Request) -> Response:
    svc = _svc(request)
    bucket, name = request.path_params["bucket"], _object_name(request, key_rule=False)
    async with svc.meta.scoped(svc.who(request), method="DELETE", path=request.url.path) as conn:
        deleted = await svc.meta.delete_objects(conn, bucket, [name])
    if not deleted:
        raise no_such_key()
    svc.blobs.delete(bucket, name, str(deleted[0]["id"]))
    return JSONResponse({"message": "Successfully deleted"})


# ---------------------------------------------------------------------------------------------- signed URLs
def _sign(svc: _Service, bucket: str, name: str, expires_in: int) -> str:
    now = int(time.time())
    token = encode_hs256({"url": f"{bucket}/{name}", "scope": _SIGNED_URL_SCOPE, "iat": now, "exp": now + expires_in},
                         svc.jwt_secret)
    return f"/object/sign/{quote(bucket)}/{quote(name)}?token={token}"


def _expires_in(body: dict[str, Any]) -> int:
    try:
        value = int(body.get("expiresIn"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid_request("expiresIn must be a positive integer") from None
    if value <= 0:
        raise invalid_request("expiresIn must be a positive integer")
    return value


async def sign_object(request: Request) -> Response:
    """POST /object/sign/{bucket}/{path}: the caller must be able to read the object (RLS) to sign it."""
    svc = _svc(request)
    body = await _json_body(request)
    bucket, name = request.path_params["bucket"], _object_name(request)
    expires_in = _expires_in(body)
    async with svc.meta.scoped(svc.who(request)) as conn:
        if await svc.meta.find_object(conn, bucket, name) is None:
            raise no_such_key()
    return JSONResponse({"signedURL": _sign(svc, bucket, name, expires_in)})


async def sign_objects(request: Request) -> Response:
    svc = _svc(request)
    body = await _json_body(request)
    bucket = request.path_params["bucket"]
    paths = body.get("paths")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise invalid_request("body must have required property 'paths'")
    expires_in = _expires_in(body)
    async with svc.meta.scoped(svc.who(request)) as conn:
        visible = {r["name"] for r in await svc.meta.find_objects(conn, bucket, paths)}
    return JSONResponse([
        {"error": None, "path": p, "signedURL": _sign(svc, bucket, p, expires_in)} if p in visible
        else {"error": "Either the object does not exist or you do not have access to it", "path": p,
              "signedURL": None}
        for p in paths
    ])


async def get_signed_object(request: Request) -> Response:
    import jwt

    svc = _svc(request)
    bucket, name = request.path_params["bucket"], _object_name(request)
    token = request.query_params.get("token") or ""
    try:
        claims = jwt.decode(token, svc.jwt_secret, algorithms=["HS256"])
    except jwt.PyJWTError as exc:
        raise StorageApiError(400, "InvalidSignature", f"invalid signature: {exc}") from None
    if claims.get("url") != f"{bucket}/{name}" or claims.get("scope") != _SIGNED_URL_SCOPE:
        raise StorageApiError(400, "InvalidSignature", "Invalid signature")
    async with svc.meta.scoped(SERVICE_PRINCIPAL) as conn:
        row = await svc.meta.find_object(conn, bucket, name)
    if row is None:
        raise no_such_key()
    return _object_response(svc, row, request)


async def status(_request: Request) -> Response:
    return Response(status_code=200)


# ---------------------------------------------------------------------------------------------- app
class _ObjectKey(Convertor[str]):
    """Any object name, newlines included (Starlette's ``path`` stops at one, so a key holding a newline
    would get a 404 instead of the real service's 400 InvalidKey)."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("objectkey", _ObjectKey())

_ROUTES = [
    Route("/status", status, methods=["GET"]),
    Route("/bucket", list_buckets, methods=["GET"]),
    Route("/bucket", create_bucket, methods=["POST"]),
    Route("/bucket/{bucket}/empty", empty_bucket, methods=["POST"]),
    Route("/bucket/{bucket}", get_bucket, methods=["GET"]),
    Route("/bucket/{bucket}", update_bucket, methods=["PUT"]),
    Route("/bucket/{bucket}", delete_bucket, methods=["DELETE"]),
    Route("/object/list/{bucket}", list_objects, methods=["POST"]),
    Route("/object/upload/sign/{bucket}/{path:objectkey}", sign_upload, methods=["POST"]),
    Route("/object/upload/sign/{bucket}/{path:objectkey}", upload_signed, methods=["PUT"]),
    Route("/object/public/{bucket}/{path:objectkey}", get_public_object, methods=["GET"]),
    Route("/object/authenticated/{bucket}/{path:objectkey}", get_authenticated_object, methods=["GET"]),
    Route("/object/info/public/{bucket}/{path:objectkey}", public_object_info, methods=["GET"]),
    Route("/object/info/authenticated/{bucket}/{path:objectkey}", object_info, methods=["GET"]),
    Route("/object/info/{bucket}/{path:objectkey}", object_info, methods=["GET"]),
    Route("/object/sign/{bucket}/{path:objectkey}", get_signed_object, methods=["GET"]),
    Route("/object/sign/{bucket}/{path:objectkey}", sign_object, methods=["POST"]),
    Route("/object/sign/{bucket}", sign_objects, methods=["POST"]),
    Route("/object/{bucket}/{path:objectkey}", get_object, methods=["GET"]),
    Route("/object/{bucket}/{path:objectkey}", upload_object, methods=["POST", "PUT"]),
    Route("/object/{bucket}/{path:objectkey}", remove_object, methods=["DELETE"]),
    Route("/object/{bucket}", remove_objects, methods=["DELETE"]),
]


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StorageApiError)
    return JSONResponse(exc.body(), status_code=exc.http_status)


async def _no_route(request: Request, _exc: Exception) -> Response:
    """Unknown routes answer in the API's error shape (e.g. the signed-upload routes this subset lacks)."""
    body = {"statusCode": "404", "code": "NotFound", "error": "Not Found",
            "message": f"Route {request.method}:{request.url.path} not found"}
    return JSONResponse(body, status_code=404)


class _AccessLog:
    """One log line per request (method, path, status, ms); never headers, so never a token."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            _log.info("%s %s %s %.1fms", scope["method"], scope["path"], status["code"],
                      (time.perf_counter() - started) * 1000)


def create_app(*, dsn: str, jwt_secret: str, data_dir: Path) -> Starlette:
    """The storage service as an ASGI app (opens its database pool at startup)."""
    service = _Service(meta=MetadataStore(dsn), blobs=BlobStore(data_dir), jwt_secret=jwt_secret)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await service.meta.open()
        _log.info("storage ready: data under %s", data_dir)
        try:
            yield
        finally:
            await service.meta.close()

    app = Starlette(routes=[Mount("/storage/v1", routes=_ROUTES), *_ROUTES],
                    exception_handlers={StorageApiError: _api_error, 404: _no_route}, lifespan=lifespan,
                    middleware=[Middleware(_AccessLog)])
    app.state.service = service
    return app
