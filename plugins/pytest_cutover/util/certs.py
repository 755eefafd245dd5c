"""Reading an X.509 certificate's expiry, for the runbook's "SSL certificates valid" check.

Why here: the precutover TLS check reads the certificates endpoints present, and the rehearsal's
throwaway CA reports the expiry of what it issued; both read dates the same way.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

__all__ = ["cert_not_after", "days_left"]


def cert_not_after(pem_or_der: bytes | Path) -> dt.datetime:
    """The expiry (UTC) of a certificate given as a PEM file path, PEM bytes or DER bytes (``getpeercert(True)``)."""
    from cryptography import x509

    data = pem_or_der.read_bytes() if isinstance(pem_or_der, Path) else pem_or_der
    cert = (x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----BEGIN")
            else x509.load_der_x509_certificate(data))
    return cert.not_valid_after_utc


def days_left(not_after: dt.datetime, now: dt.datetime | None = None) -> float:
    """Days until ``not_after`` (negative once expired)."""
    return (not_after - (now or dt.datetime.now(dt.UTC))).total_seconds() / 86400.0
