"""The CA pin: ``sha256:`` + hex SHA-256 of a certificate's SubjectPublicKeyInfo.

The one definition for every side: the control plane prints it, the agent and
``fleet agent doctor`` check the CA against it, the dashboard and ``fleet login
--ca-pin`` check ``GET /v1/ca`` against it.  ``cryptography`` (in the base
install) is imported inside the functions, so importing this module costs the
long-running agent nothing; the agent computes pins only in one-shot commands.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = ["PIN_FORM", "check_pin_text", "pins_equal", "spki_der", "spki_pin"]

PIN_FORM = "sha256:<64 hex digits>"
"""How a pin is written, for messages."""

_PIN_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def spki_der(public_key: PublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo of ``public_key`` (what the pin hashes)."""
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_pin(cert: str | bytes) -> str:
    """The pin of a certificate given as PEM (text or bytes) or DER bytes.

    Raises:
        ValueError: ``cert`` is not a certificate.
    """
    from cryptography import x509

    if isinstance(cert, str):
        cert = cert.encode("ascii", errors="replace")
    if cert.lstrip().startswith(b"-----"):
        parsed = x509.load_pem_x509_certificate(cert)
    else:
        parsed = x509.load_der_x509_certificate(cert)
    return "sha256:" + hashlib.sha256(spki_der(parsed.public_key())).hexdigest()


def check_pin_text(text: str, flag: str = "--ca-pin") -> str:
    """``text`` as a pin (trimmed, lower case).

    Raises:
        ValueError: it is not ``sha256:`` and 64 hex digits; the message names ``flag``.
    """
    pin = text.strip().lower()
    if not _PIN_RE.match(pin):
        raise ValueError(f"{flag} must look like {PIN_FORM}, not {text!r}")
    return pin


def pins_equal(a: str, b: str) -> bool:
    """Whether two pins name the same key (case and surrounding space ignored)."""
    return a.strip().lower() == b.strip().lower()
