"""The release key: Ed25519, kept with the CA (``pki/release.key``, 0600).

It signs every agent release the control plane stores (:func:`fleet.protocol.release_message`);
agents receive its public half at enrollment and refuse a release it did not sign.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.files import check_private, write_private, write_public
from fleet.protocol import RELEASE_KEY_PREFIX

__all__ = ["ReleaseKey"]


class ReleaseKey:
    """Signs releases; :attr:`public` is what agents keep."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public = RELEASE_KEY_PREFIX + base64.b64encode(raw).decode()
        """``ed25519:BASE64`` of the 32-byte public key."""

    @classmethod
    def load_or_create(cls, directory: Path) -> ReleaseKey:
        """Load ``directory/release.key`` or make it (0600), with ``release.pub`` beside it.

        Raises:
            PermissionError: the key file may be read by others (says the ``chmod``).
            ValueError: the file holds something other than an Ed25519 key.
        """
        path = directory / "release.key"
        if path.exists():
            check_private(path)
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key; move it away to make one")
        else:
            key = Ed25519PrivateKey.generate()
            write_private(
                path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
        release_key = cls(key)
        write_public(directory / "release.pub", (release_key.public + "\n").encode())
        return release_key

    def token_key(self) -> bytes:
        """A MAC key for download tokens, derived from this key (so every replica with
        a copy of the data directory checks the others' tokens), and never the key
        itself: a token can be no release's signature."""
        raw = self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return hashlib.sha256(b"fleet download tokens\x00" + raw).digest()

    def sign(self, message: bytes) -> str:
        """Base64 of the signature over ``message``."""
        return base64.b64encode(self._key.sign(message)).decode()
