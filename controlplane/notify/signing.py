"""Signing of webhook bodies, and the check a receiver makes (docs/server.md, "Webhooks").

Each request carries ``X-Fleet-Timestamp`` (epoch seconds, an integer) and
``X-Fleet-Signature: sha256=<hex>``, the HMAC-SHA256 with the receiver's secret of
``timestamp + "." + body``.  Signing the timestamp with the body lets a receiver
refuse a captured request replayed later: :func:`verify_signature` refuses one
whose timestamp is further than ``tolerance_s`` from its own clock.  This module
imports only the standard library, so a receiver can copy it.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify_signature"]

TIMESTAMP_HEADER = "X-Fleet-Timestamp"
SIGNATURE_HEADER = "X-Fleet-Signature"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Fleet-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance_s: float = 300.0,
) -> bool:
    """True when ``signature`` is ours for ``timestamp`` and ``body``, and fresh.

    Args:
        secret: the receiver's secret (the bytes of its secret file, stripped).
        timestamp: the ``X-Fleet-Timestamp`` header.
        body: the request body, exactly as received (before any JSON parsing).
        signature: the ``X-Fleet-Signature`` header.
        now: the receiver's clock, epoch seconds (``time.time()``).
        tolerance_s: how far the timestamp may be from ``now``; older (a replay) or
            newer is refused.  Keep the clocks within it (NTP).

    Constant-time comparison; a malformed header is refused, never raised on.
    """
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature.strip())
