"""The official storage3 client against the rehearsal's storage service: buckets with the service key, a user's
own org folder with a user JWT, RLS denying other orgs, and public buckets served without any JWT."""

from __future__ import annotations

import ssl

import httpx
import pytest
from storage3 import SyncStorageClient
from storage3.exceptions import StorageApiError

from pytest_cutover.util.jwt import mint_jwt

from .conftest import JWT_SECRET, Storage

pytestmark = pytest.mark.integration

ORG_A, ORG_B = "org_0001", "org_0002"


def _client(storage: Storage, key: str | None, ca: ssl.SSLContext) -> SyncStorageClient:
    headers = {"apikey": key, "Authorization": f"Bearer {key}"} if key else {}
    return SyncStorageClient(storage.url + "/", headers, http_client=httpx.Client(verify=ca, timeout=15))


@pytest.fixture(scope="module")
def ca(tls_material) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_material.ca.cert_path))


def test_service_key_lists_and_creates_buckets(storage: Storage, ca: ssl.SSLContext) -> None:
    with _client(storage, storage.service_key, ca) as client:
        assert "attachments" in {b.id for b in client.list_buckets()}
        assert client.create_bucket("svc-made", options={"public": False}) == {"name": "svc-made"}
        bucket = client.get_bucket("svc-made")
        assert (bucket.id, bucket.public) == ("svc-made", False)
        with pytest.raises(StorageApiError) as dup:
            client.create_bucket("svc-made")
        assert dup.value.status == "409"


def test_user_cannot_create_buckets_and_sees_only_allowed_ones(storage: Storage, ca: ssl.SSLContext) -> None:
    with _client(storage, storage.user_key(ORG_A), ca) as client:
        with pytest.raises(StorageApiError) as denied:
            client.create_bucket("user-made")
        assert (denied.value.status, denied.value.code) == ("403", "Unauthorized")
        # storage.buckets RLS: a signed-in user sees only the attachments bucket.
        assert [b.id for b in client.list_buckets()] == ["attachments"]


def test_user_uploads_downloads_lists_its_org_folder(storage: Storage, ca: ssl.SSLContext) -> None:
    path = f"{ORG_A}/thread-1/11/report.txt"
    with _client(storage, storage.user_key(ORG_A), ca) as client:
        bucket = client.from_("attachments")
        assert bucket.upload(path, b"org A bytes", {"content-type": "text/plain"}).path == path
        assert bucket.download(path) == b"org A bytes"
        on_disk = [p for p in storage.data_dir.rglob("*") if p.is_file() and str(p).endswith(path)]
        assert [p.read_bytes() for p in on_disk] == [b"org A bytes"]  # <data>/<bucket>/<id>/<name>
        assert [e["name"] for e in bucket.list(f"{ORG_A}/thread-1/11")] == ["report.txt"]
        folders = {e["name"]: e for e in bucket.list(ORG_A)}
        assert folders["thread-1"]["id"] is None  # a folder entry, as storage.search returns it
        info = bucket.info(path)
        assert (info["size"], info["content_type"], info["bucket_id"]) == (11, "text/plain", "attachments")
        assert bucket.exists(path) and not bucket.exists(f"{ORG_A}/thread-1/11/missing.txt")
        signed = bucket.create_signed_url(path, 60)["signedURL"]
    assert httpx.get(signed, verify=ca).content == b"org A bytes"  # no JWT: the signed token authorises


def test_rls_denies_another_orgs_folder(storage: Storage, ca: ssl.SSLContext) -> None:
    path_b = f"{ORG_B}/thread-2/21/secret.txt"
    with _client(storage, storage.user_key(ORG_B), ca) as owner:
        owner.from_("attachments").upload(path_b, b"org B only")
    with _client(storage, storage.user_key(ORG_A), ca) as intruder:
        bucket = intruder.from_("attachments")
        with pytest.raises(StorageApiError) as write:
            bucket.upload(f"{ORG_B}/thread-2/21/planted.txt", b"x")
        assert (write.value.status, write.value.message) == ("403", "new row violates row-level security policy")
        with pytest.raises(StorageApiError) as read:
            bucket.download(path_b)
        assert read.value.status == "404"  # RLS hides the row: "Object not found", as on Supabase
        assert bucket.list(ORG_B) == []
        with pytest.raises(StorageApiError):
            bucket.create_signed_url(path_b, 60)
        assert bucket.remove([path_b]) == []  # nothing this role may delete
    with _client(storage, storage.user_key(ORG_B), ca) as owner:
        assert owner.from_("attachments").download(path_b) == b"org B only"
        removed = owner.from_("attachments").remove([path_b])
        assert [r["name"] for r in removed] == [path_b]
    assert not [p for p in storage.data_dir.rglob("*") if str(p).endswith(path_b)]


def test_public_bucket_reads_need_no_jwt(storage: Storage, ca: ssl.SSLContext) -> None:
    with _client(storage, storage.service_key, ca) as admin:
        admin.create_bucket("public-assets", options={"public": True})
        admin.from_("public-assets").upload("brand/logo.svg", b"<svg/>", {"content-type": "image/svg+xml"})
        admin.from_("attachments").upload(f"{ORG_A}/private.txt", b"private")
        public_url = admin.from_("public-assets").get_public_url("brand/logo.svg")
    answer = httpx.get(public_url, verify=ca)
    assert (answer.status_code, answer.content, answer.headers["content-type"]) == (200, b"<svg/>", "image/svg+xml")
    with _client(storage, None, ca) as anonymous:
        assert anonymous.from_("public-assets").download("brand/logo.svg") == b"<svg/>"
        with pytest.raises(StorageApiError) as private:
            anonymous.from_("attachments").download(f"{ORG_A}/private.txt")
        assert private.value.status == "404" and private.value.code == "Bucket not found"


def test_signed_upload_urls_are_decided_by_rls_when_signed(storage: Storage, ca: ssl.SSLContext) -> None:
    own = f"{ORG_A}/thread-3/31/signed.txt"
    with _client(storage, storage.user_key(ORG_A), ca) as client:
        bucket = client.from_("attachments")
        signed = bucket.create_signed_upload_url(own)
        assert bucket.upload_to_signed_url(own, signed["token"], b"via token").full_path == f"attachments/{own}"
        assert bucket.download(own) == b"via token"
        with pytest.raises(StorageApiError) as denied:
            bucket.create_signed_upload_url(f"{ORG_B}/thread-3/31/signed.txt")
        assert denied.value.status == "403"
        with pytest.raises(StorageApiError) as swapped:  # a token is valid for its own path only
            bucket.upload_to_signed_url(f"{ORG_B}/thread-3/31/signed.txt", signed["token"], b"x")
        assert swapped.value.status == "400"


def test_unknown_routes_answer_in_the_api_error_shape(storage: Storage, ca: ssl.SSLContext) -> None:
    answer = httpx.get(storage.url + "/no/such/route", verify=ca)
    assert answer.status_code == 404 and answer.json()["statusCode"] == "404"


def test_bad_jwt_is_refused(storage: Storage, ca: ssl.SSLContext) -> None:
    forged = mint_jwt(JWT_SECRET + "-wrong", role="service_role")
    with _client(storage, forged, ca) as client, pytest.raises(StorageApiError) as refused:
        client.list_buckets()
    assert refused.value.status == "403"
