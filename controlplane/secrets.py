"""Token values: made here, shown once, stored only as hashes.

Tokens carry 238 bits of randomness, so a plain SHA-256 is the right hash (a slow
password hash buys nothing against a value that cannot be guessed, and would cost
CPU on every API call).  Comparisons go through ``hmac.compare_digest``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

__all__ = ["API_PREFIX", "ENROLL_PREFIX", "hash_token", "looks_like", "new_token", "same_hash"]

ENROLL_PREFIX = "flte_"
"""Enrollment tokens: a recognisable prefix so secret scanners can find leaks."""
API_PREFIX = "flta_"
"""Operators' API tokens."""

_ALPHABET = string.ascii_letters + string.digits
_BODY = 40
_SHAPE = re.compile(r"flt[ea]_[A-Za-z0-9]{40}")


def new_token(prefix: str) -> str:
    """A fresh token: ``prefix`` + 40 base62 characters."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY))


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def looks_like(value: str, prefix: str) -> bool:
    """True when ``value`` has the shape of a token with ``prefix``."""
    return value.startswith(prefix) and _SHAPE.fullmatch(value) is not None
