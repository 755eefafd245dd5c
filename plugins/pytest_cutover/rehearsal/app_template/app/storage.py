"""Client for the Supabase Storage HTTP API (STORAGE_URL, e.g. https://<ref>.supabase.co/storage/v1).

The backend talks to storage with the service key (STORAGE_KEY), as the runbook's storage_service
does; tenant isolation for attachments is the backend's job (it only looks up attachment rows of
the request's org, under RLS).  TLS is verified with STORAGE_SSL_CA (default: DATABASE_SSL_CA).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable
from urllib.parse import quote

import httpx

from app.config import Settings, get_settings

__all__ = ["StorageAccessError", "StorageService"]


class StorageAccessError(RuntimeError):
    """Storage did not give us the object (transport error or a non-200 answer)."""


class StorageService:
    """Download (and upload) objects; one pooled HTTP client per process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._client: httpx.AsyncClient | None = None

    @property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def configured(self) -> bool:
        return bool(self.settings.storage_url and self.settings.storage_key)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            s = self.settings
            verify: bool | ssl.SSLContext = (ssl.create_default_context(cafile=str(s.storage_ssl_ca))
                                             if s.storage_ssl_ca else True)
            self._client = httpx.AsyncClient(
                base_url=s.storage_url + "/",
                headers={"apikey": s.storage_key, "Authorization": f"Bearer {s.storage_key}"},
                verify=verify, timeout=httpx.Timeout(10.0),
            )
        return self._client

    def _object_url(self, bucket: str, path: str) -> str:
        return f"object/{quote(bucket, safe='')}/{quote(path, safe='/')}"

    async def download(self, bucket: str, path: str) -> bytes:
        """The bytes of ``bucket/path``; raises :class:`StorageAccessError` otherwise."""
        if not self.configured:
            raise StorageAccessError("STORAGE_URL or STORAGE_KEY is not set")
        response = await _answered(self._http().get(self._object_url(bucket, path)),
                                   f"request for {bucket}/{path}", f"{bucket}/{path}")
        return response.content

    async def upload(self, bucket: str, path: str, data: bytes, content_type: str, *, upsert: bool = True) -> None:
        """Store ``data`` at ``bucket/path`` (raw body upload, as the Storage API accepts)."""
        if not self.configured:
            raise StorageAccessError("STORAGE_URL or STORAGE_KEY is not set")
        await _answered(self._http().post(self._object_url(bucket, path), content=data,
                                          headers={"content-type": content_type,
                                                   "x-upsert": "true" if upsert else "false"}),
                        f"upload of {bucket}/{path}", f"upload of {bucket}/{path}")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def _answered(request: Awaitable[httpx.Response], sent: str, answered: str) -> httpx.Response:
    """The response to ``request`` when it is a 200; else one :class:`StorageAccessError` wording for every call."""
    try:
        response = await request
    except httpx.HTTPError as exc:
        raise StorageAccessError(f"storage {sent} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise StorageAccessError(f"storage answered {response.status_code} for {answered}: {response.text[:200]}")
    return response
