"""Sign and verify ``report.json`` with Ed25519, and check every artefact it lists.

``report.json.sig`` holds the signature over the report's canonical JSON (sorted keys, no
whitespace, UTF-8), the signer's public key and its fingerprint, the sha256 of the file's
exact bytes, and a digest of each top-level key and each stage, so that verification can
say *what* changed, not only that something did.  The fingerprint is also recorded inside
the signed report.  A signature proves integrity; who signed is proven only by comparing the
fingerprint with the lead's published one (``verify --pubkey``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_cutover.errors import CutoverError
from pytest_cutover.ledger import iso_utc

__all__ = [
    "SIG_SUFFIX",
    "SignatureError",
    "Verification",
    "canonical",
    "fingerprint",
    "keygen",
    "load_private_key",
    "load_public_key",
    "part_digests",
    "sha256_file",
    "sign_report",
    "verify_report",
]

SIG_SUFFIX = ".sig"
_ALGORITHM = "Ed25519"


class SignatureError(CutoverError, ValueError):
    """A key or signature file cannot be used."""


def canonical(obj: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def part_digests(report: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of each top-level key, and of each stage by name (for 'what changed' messages)."""
    parts = {key: hashlib.sha256(canonical(value)).hexdigest()[:16] for key, value in report.items()}
    for stage in report.get("stages") or []:
        if isinstance(stage, Mapping):
            parts[f"stages.{stage.get('name')}"] = hashlib.sha256(canonical(stage)).hexdigest()[:16]
    return parts


def _raw_public(public_key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public_key: Any) -> str:
    """``SHA256:<base64>`` of the raw 32-byte Ed25519 public key (the OpenSSH fingerprint style)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(_raw_public(public_key)).digest()).decode().rstrip("=")


def keygen(path: Path, *, force: bool = False) -> tuple[Path, Path, str]:
    """Write an Ed25519 private key (PEM, mode 0600) to ``path`` and its public key to ``path.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub_path = path.with_name(path.name + ".pub")
    if not force and (path.exists() or pub_path.exists()):
        raise SignatureError(f"key file {path} already exists", hint="pass --force to replace it, or choose --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    if force and path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, private_pem)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)  # the umask cannot widen it, but make the mode explicit
    pub_path.write_bytes(public_pem)
    return path, pub_path, fingerprint(key.public_key())


def load_private_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot load private key {path}: {exc.__class__.__name__}",
                             hint="make one with `cutover keygen --out PATH`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"key {path} is not an Ed25519 key", hint="make one with `cutover keygen`")
    return key


def load_public_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot load public key {path}: {exc.__class__.__name__}",
                             hint="pass the .pub file written by `cutover keygen`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"public key {path} is not an Ed25519 key")
    return key


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


def _artifact_problems(report: Mapping[str, Any], base: Path) -> list[str]:
    problems = []
    sizes = report.get("artifact_sizes") or {}
    for name, expected in sorted((report.get("artifacts") or {}).items()):
        path = (base / name).resolve()
        if not path.is_file():
            problems.append(f"{name}: missing (report lists sha256 {expected[:16]}…)")
            continue
        actual = sha256_file(path)
        if actual != expected:
            size = path.stat().st_size
            was = sizes.get(name)
            delta = f"; {size} bytes now, {was} when the report was built" if was is not None else f"; {size} bytes"
            problems.append(f"{name}: changed (sha256 {actual[:16]}… != {expected[:16]}… in report.json{delta})")
    return problems


def sign_report(report_path: Path, key_path: Path, *, signer: str | None = None) -> dict[str, Any]:
    """Sign ``report_path`` in place: record the key's fingerprint, refresh the HTML, write ``.sig``."""
    from pytest_cutover.report.html import render_html

    key = load_private_key(key_path)
    report = json.loads(report_path.read_text("utf-8"))
    report.pop("signature", None)
    base = report_path.parent
    stale = [p for p in _artifact_problems(report, base) if not p.startswith("report.html")]
    if stale:
        raise SignatureError(f"refusing to sign {report_path}: its artefacts changed since it was built: "
                             + "; ".join(stale), hint="rebuild it with `cutover report --run RUN`, then sign")
    fp = fingerprint(key.public_key())
    report["signature"] = {"algorithm": _ALGORITHM, "public_key_fingerprint": fp, "signed_at": iso_utc(),
                           "signer": signer or report.get("lead")}
    html_path = base / "report.html"
    if "report.html" in (report.get("artifacts") or {}):
        monitor = base / "monitor.jsonl"
        html = render_html(report, monitor_path=monitor if monitor.exists() else None)
        html_path.write_text(html, "utf-8")
        report["artifacts"]["report.html"] = sha256_file(html_path)
        report.setdefault("artifact_sizes", {})["report.html"] = html_path.stat().st_size
    _write_json(report_path, report)
    payload = canonical(report)
    sig = {
        "algorithm": _ALGORITHM,
        "public_key": base64.b64encode(_raw_public(key.public_key())).decode(),
        "public_key_fingerprint": fp,
        "signature": base64.b64encode(key.sign(payload)).decode(),
        "signed_file": report_path.name,
        "file_sha256": sha256_file(report_path),
        "parts": part_digests(report),
    }
    _write_json(report_path.with_name(report_path.name + SIG_SUFFIX), sig)
    return sig


@dataclass
class Verification:
    """The outcome of ``verify``: ok, the signer's fingerprint, and every problem found."""

    ok: bool
    fingerprint: str | None
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)


def verify_report(report_path: Path, *, pubkey: Path | None = None) -> Verification:
    """Check the signature of ``report_path`` and the sha256 of every artefact it lists."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    name = report_path.name
    problems: list[str] = []
    sig_path = report_path.with_name(name + SIG_SUFFIX)
    try:
        raw = report_path.read_bytes()
    except OSError as exc:
        return Verification(False, None, [f"{name}: cannot read ({exc.strerror})"])
    try:
        report = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return Verification(False, None, [f"{name}: not valid JSON any more ({exc.__class__.__name__}: {exc})"])
    if not sig_path.exists():
        return Verification(False, None, [f"{sig_path.name}: missing: the report is not signed"])
    try:
        sig = json.loads(sig_path.read_text("utf-8"))
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(sig["public_key"]))
        signature = base64.b64decode(sig["signature"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Verification(False, None, [f"{sig_path.name}: unreadable ({exc.__class__.__name__})"])
    fp = fingerprint(public)
    if pubkey is not None:
        trusted = fingerprint(load_public_key(pubkey))
        if trusted != fp:
            problems.append(f"{sig_path.name}: signed by key {fp}, not by the trusted key {trusted} ({pubkey})")
    recorded = (report.get("signature") or {}).get("public_key_fingerprint")
    if recorded != fp:
        problems.append(f"{name}: records signer fingerprint {recorded}, but the signature's key is {fp}")
    try:
        public.verify(signature, canonical(report))
        content_ok = True
    except InvalidSignature:
        content_ok = False
        old_parts = sig.get("parts") or {}
        new_parts = part_digests(report)
        changed = sorted(k for k in set(old_parts) | set(new_parts) if old_parts.get(k) != new_parts.get(k))
        if any(k.startswith("stages.") for k in changed):
            changed = [k for k in changed if k != "stages"]  # name the stage, not the whole list
        what = ", ".join(changed) if changed else "content"
        problems.append(f"{name}: signature does not match its content; changed: {what}")
    if sha256_file(report_path) != sig.get("file_sha256"):
        if content_ok:
            problems.append(f"{name}: bytes changed since signing (formatting only: the signed content still matches)")
        elif not problems or not problems[-1].startswith(name):
            problems.append(f"{name}: bytes changed since signing")
    problems.extend(_artifact_problems(report, report_path.parent))
    checked = [name, *sorted(report.get("artifacts") or {})]
    return Verification(not problems, fp, problems, checked)
