"""The neutral helpers (``pytest_cutover.util``): JWTs, certificate dates, SQL quoting, git.

The stdlib HS256 signer is checked against PyJWT (the library the rehearsal's Storage service verifies
with), so a token that PyJWT would reject cannot pass here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pytest_cutover.errors import CutoverError
from pytest_cutover.util import certs
from pytest_cutover.util.aio import run_sync
from pytest_cutover.util.git import GitError, git_or_none, git_or_raise, run_git
from pytest_cutover.util.jwt import encode_hs256, mint_jwt
from pytest_cutover.util.pluginreg import register_once
from pytest_cutover.util.proc import run_checked, run_psql
from pytest_cutover.util.sql import quote_ident, quote_literal, shown_ident
from pytest_cutover.util.wait import wait_until

SECRET = "a-jwt-secret-of-at-least-32-bytes-0123456789"

EXPORTS = {
    "pytest_cutover.util.jwt": ["encode_hs256", "mint_jwt"],
    "pytest_cutover.util.certs": ["cert_not_after", "days_left"],
    "pytest_cutover.util.sql": ["quote_ident", "quote_literal", "shown_ident"],
    "pytest_cutover.util.git": ["GitError", "git_or_none", "git_or_raise", "run_git"],
    "pytest_cutover.util.aio": ["run_sync"],
    "pytest_cutover.util.wait": ["wait_until"],
    "pytest_cutover.util.proc": ["run_checked", "run_psql"],
    "pytest_cutover.util.pluginreg": ["register_once"],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_exports_are_pinned(module: str) -> None:
    assert sorted(importlib.import_module(module).__all__) == EXPORTS[module]


# -- jwt -------------------------------------------------------------------------------------------------------
def test_mint_jwt_claims_decode_with_pyjwt() -> None:
    token = mint_jwt(SECRET, role="authenticated", org_id="org_0001", sub="u1", ttl_s=60)
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="authenticated")
    assert (claims["role"], claims["org_id"], claims["sub"], claims["iss"], claims["aud"]) == (
        "authenticated", "org_0001", "u1", "supabase", "authenticated")
    assert claims["exp"] - claims["iat"] == 60
    service = jwt.decode(mint_jwt(SECRET, role="service_role"), SECRET, algorithms=["HS256"])
    assert service["role"] == "service_role" and "org_id" not in service and "aud" not in service


def test_same_claims_same_signature_as_pyjwt() -> None:
    """Byte-for-byte the signature PyJWT computes over our own signing input: the HMAC is the standard one."""
    claims = {"role": "anon", "iss": "supabase", "iat": 1_700_000_000, "exp": 1_700_003_600, "name": "Zoë"}
    token = encode_hs256(claims, SECRET)
    head, body, sig = token.split(".")
    algo = jwt.get_algorithm_by_name("HS256")
    expected = algo.sign(f"{head}.{body}".encode(), algo.prepare_key(SECRET))
    assert jwt.utils.base64url_decode(sig) == expected
    assert "=" not in token  # base64url without padding, as RFC 7515 requires


def test_wrong_secret_tampering_and_expiry_are_rejected_by_pyjwt() -> None:
    token = mint_jwt(SECRET, role="authenticated", org_id="org_a", ttl_s=60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET + "-wrong", algorithms=["HS256"], audience="authenticated")
    head, body, sig = token.split(".")
    forged_body = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(body).replace(b"org_a", b"org_b")).decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged_body}.{sig}", SECRET, algorithms=["HS256"], audience="authenticated")
    expired = mint_jwt(SECRET, role="anon", ttl_s=10, now=1_000_000)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired, SECRET, algorithms=["HS256"])


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty secret"):
        mint_jwt("", role="anon")


# -- certs -----------------------------------------------------------------------------------------------------
def _self_signed(not_after: dt.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "util-test")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_after - dt.timedelta(days=60)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))


def test_cert_not_after_reads_pem_path_pem_bytes_and_der(tmp_path: Path) -> None:
    end = dt.datetime(2031, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cert = _self_signed(end)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "c.pem").write_bytes(pem)
    assert certs.cert_not_after(tmp_path / "c.pem") == end
    assert certs.cert_not_after(b"\n" + pem) == end
    assert certs.cert_not_after(cert.public_bytes(serialization.Encoding.DER)) == end


def test_days_left_counts_down_and_goes_negative() -> None:
    end = dt.datetime(2030, 6, 10, tzinfo=dt.UTC)
    assert certs.days_left(end, now=dt.datetime(2030, 6, 5, 12, tzinfo=dt.UTC)) == 4.5
    assert certs.days_left(end, now=dt.datetime(2030, 6, 11, tzinfo=dt.UTC)) == -1.0
    assert certs.days_left(dt.datetime.now(dt.UTC) + dt.timedelta(days=3)) == pytest.approx(3, abs=1e-3)


# -- sql -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "quoted"), [
    ("memory_fragments", '"memory_fragments"'),
    ("public.memory_fragments", '"public"."memory_fragments"'),
    ('we"ird', '"we""ird"'),
    ('x"; drop table t; --', '"x""; drop table t; --"'),
    ("MixedCase", '"MixedCase"'),
])
def test_quote_ident(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(("value", "quoted"), [
    (None, "NULL"), ("", "''"), ("org_1", "'org_1'"), ("it's", "'it''s'"),
    ("'; drop table t; --", "'''; drop table t; --'"),
])
def test_quote_literal(value: str | None, quoted: str) -> None:
    assert quote_literal(value) == quoted


@pytest.mark.parametrize(("name", "dotted", "shown"), [
    ("public.threads", True, "public.threads"),
    ("public.MyTable", True, '"public"."MyTable"'),
    ("tenant_$1", False, "tenant_$1"),
    ('my "policy"', False, '"my ""policy"""'),
    ("postgres.ref", False, '"postgres.ref"'),  # a role whose name holds a dot stays one name
])
def test_shown_ident_quotes_only_what_needs_it(name: str, dotted: bool, shown: str) -> None:
    assert shown_ident(name, dotted=dotted) == shown


# -- aio -------------------------------------------------------------------------------------------------------
async def _answer(delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    return 42


def test_run_sync_from_plain_code_and_from_inside_a_running_loop() -> None:
    assert run_sync(_answer()) == 42

    async def inside() -> int:
        return run_sync(_answer())  # asyncio.run would refuse here: a worker thread runs it

    assert asyncio.run(inside()) == 42


def test_run_sync_deadline() -> None:
    with pytest.raises(TimeoutError):
        run_sync(_answer(5.0), timeout=0.05)


# -- wait ------------------------------------------------------------------------------------------------------
def test_wait_until_returns_the_first_truthy_result() -> None:
    calls: list[int] = []

    def third() -> str:
        calls.append(1)
        return "ready" if len(calls) == 3 else ""

    assert wait_until(third, 5.0, pause=0.001) == "ready"
    assert len(calls) == 3


def test_wait_until_gives_up_at_the_deadline_with_the_last_result() -> None:
    import time

    calls: list[float] = []
    started = time.monotonic()
    assert wait_until(lambda: calls.append(time.monotonic()) or 0, 0.3, pause=0.02, max_pause=0.1) == 0
    took = time.monotonic() - started
    assert 0.3 <= took < 0.6, took  # the last call is at the deadline, never a full pause past it
    assert calls[-1] - started >= 0.29 and len(calls) >= 4


def test_wait_until_lets_an_error_through_at_once() -> None:
    calls: list[int] = []

    def broken() -> bool:
        calls.append(1)
        raise LookupError("the process exited")

    with pytest.raises(LookupError, match="exited"):
        wait_until(broken, 5.0)
    assert calls == [1]


# -- proc ------------------------------------------------------------------------------------------------------
class _ProbeError(CutoverError):
    pass


def test_run_checked_names_what_timed_out_or_failed_with_the_callers_error() -> None:
    import sys

    assert run_checked([sys.executable, "-c", "print('hi')"], what="hello", timeout=30).stdout == "hi\n"
    with pytest.raises(_ProbeError, match=r"slow thing timed out after 0\.2 s") as slow:
        run_checked([sys.executable, "-c", "import time; time.sleep(30)"], what="slow thing", timeout=0.2,
                    error=_ProbeError, hint="raise the timeout")
    assert slow.value.hint == "raise the timeout"
    with pytest.raises(_ProbeError, match=r"rss command failed with exit status 3: password=\S*\*") as failed:
        run_checked("echo password=hunter2 >&2; exit 3", shell=True, what="rss command", timeout=30,
                    error=_ProbeError, hint="check it", failure_hint="read its stderr")
    assert "hunter2" not in str(failed.value) and failed.value.hint == "read its stderr"


def test_run_psql_without_psql_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no psql on it
    with pytest.raises(_ProbeError, match="psql is not installed: cannot run SHOW POOLS") as missing:
        run_psql("postgresql://u:secret@127.0.0.1:1/pgbouncer", "SHOW POOLS", timeout=1, error=_ProbeError)
    assert "postgresql-client" in (missing.value.hint or "")


# -- git -------------------------------------------------------------------------------------------------------
IDENTITY = {"user.name": "util test", "user.email": "util@example.invalid", "commit.gpgsign": "false"}


def test_run_git_commits_with_the_given_identity_and_trusts_only_the_given_folders(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", check=True)
    (tmp_path / "f.txt").write_text("x")
    run_git(tmp_path, "add", "f.txt", check=True)
    run_git(tmp_path, "commit", "-q", "-m", "one", config=IDENTITY, check=True)
    assert run_git(tmp_path, "log", "-1", "--format=%an <%ae>").stdout.strip() == "util test <util@example.invalid>"
    trusted = run_git(tmp_path, "config", "--get-all", "safe.directory", trust=(tmp_path, tmp_path.parent))
    assert trusted.stdout.split() == [str(tmp_path), str(tmp_path.parent)]
    printenv = run_git(tmp_path, "show-env", config={"alias.show-env": "!printenv GIT_TERMINAL_PROMPT UTIL_X"},
                       env={"UTIL_X": "extra"}, check=True)
    assert printenv.stdout.split() == ["0", "extra"]   # never prompts for credentials; extra env passed


def test_run_git_failure_is_returned_or_raised_with_gits_words(tmp_path: Path) -> None:
    done = run_git(tmp_path, "rev-parse", "HEAD")           # not a repository: returned, not raised
    assert done.returncode != 0 and "not a git repository" in done.stderr
    with pytest.raises(GitError, match=r"git rev-parse HEAD failed in .*not a git repository") as caught:
        run_git(tmp_path, "rev-parse", "HEAD", check=True)
    assert caught.value.returncode == done.returncode and "not a git repository" in caught.value.stderr


def test_run_git_never_hangs_and_says_when_git_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GitError, match=r"git slow did not finish within 0.5s") as caught:
        run_git(tmp_path, "slow", config={"alias.slow": "!sleep 5"}, timeout=0.5)
    assert caught.value.returncode is None
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GitError, match="git is not installed"):
        run_git(tmp_path, "status")


def test_git_or_none_is_none_only_when_git_cannot_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = git_or_none(tmp_path, "rev-parse", "HEAD")
    assert done is not None and done.returncode != 0  # git answered: not a repository
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
    assert git_or_none(tmp_path, "status") is None  # git cannot answer: unknown


def test_git_or_raise_turns_a_git_failure_into_the_callers_error(tmp_path: Path) -> None:
    def error(exc: GitError) -> CutoverError:
        return CutoverError(f"checkout: {exc}", hint="missing" if exc.returncode is None else "not a checkout")

    assert git_or_raise(tmp_path, "rev-parse", "HEAD", error=error).returncode != 0  # check=False: returned
    with pytest.raises(CutoverError, match=r"checkout: git rev-parse HEAD failed in .*not a git repository") as bad:
        git_or_raise(tmp_path, "rev-parse", "HEAD", check=True, error=error)
    assert bad.value.hint == "not a checkout"
    with pytest.raises(CutoverError, match=r"did not finish within 0\.5s") as slow:
        git_or_raise(tmp_path, "slow", config={"alias.slow": "!sleep 5"}, timeout=0.5, error=error)
    assert slow.value.hint == "missing"


# -- pluginreg ---------------------------------------------------------------------------------------------------
def test_register_once_registers_one_object_under_the_name(pytestconfig: pytest.Config) -> None:
    made: list[object] = []

    def factory(config: pytest.Config) -> object:
        made.append(object())
        return made[-1]

    name = "pytest-cutover-util-test"
    try:
        first = register_once(pytestconfig, name, factory)
        assert register_once(pytestconfig, name, factory) is first and made == [first]
        assert pytestconfig.pluginmanager.get_plugin(name) is first
    finally:
        pytestconfig.pluginmanager.unregister(name=name)
