"""The release key: Ed25519, kept with the CA (``pki/release.key``, 0600).

It signs every agent release the control plane stores (:func:`fleet.protocol.release_message`);
agents receive its public half at enrollment and refuse a release it did not sign.

It can be rotated (``fleet server --rotate-release-key``): the old key signs the new
one (:func:`fleet.protocol.release_key_message`), the endorsement is appended to
``release.chain`` (JSON, beside the key), and the old private key is gone. Agents
follow the chain from the key they keep to the one the control plane sends, so none
has to enroll again; the stored releases are signed again with the new key at the
next start.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.files import check_private, write_private, write_public
from fleet.protocol import RELEASE_KEY_PREFIX, KeyEndorsement, release_key_message

__all__ = ["CHAIN_FILE", "ReleaseKey", "ReleaseKeyError"]

CHAIN_FILE = "release.chain"
"""The endorsements of every rotation, oldest first (JSON: a list of {key, signature})."""


class ReleaseKeyError(ValueError):
    """The release key or its chain cannot be used; the message says what to do."""


class ReleaseKey:
    """Signs releases; :attr:`public` is what agents keep."""

    def __init__(self, key: Ed25519PrivateKey, chain: list[KeyEndorsement] | None = None) -> None:
        self._key = key
        self.chain = list(chain or [])
        """The endorsements since the first key, oldest first (its last key is this one)."""
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
                raise ReleaseKeyError(
                    f"{path} is not an Ed25519 private key; move it away to make one"
                )
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
        release_key = cls(key, _read_chain(directory / CHAIN_FILE))
        if release_key.chain and release_key.chain[-1].key != release_key.public:
            raise ReleaseKeyError(
                f"{directory / CHAIN_FILE} does not end with the key in {path}: a rotation "
                "was cut short, or the files come from different data directories; "
                "restore both from the same copy"
            )
        write_public(directory / "release.pub", (release_key.public + "\n").encode())
        return release_key

    @classmethod
    def rotate(cls, directory: Path) -> tuple[ReleaseKey, ReleaseKey]:
        """Make a new release key endorsed by the current one; returns (old, new).

        The chain is written before the key: a rotation cut between the two leaves a
        chain that names a key nobody holds, refused at the next start with what to do.
        """
        old = cls.load_or_create(directory)
        new_key = Ed25519PrivateKey.generate()
        new = cls(new_key)
        endorsement = KeyEndorsement(
            key=new.public, signature=old.sign(release_key_message(new.public))
        )
        new.chain = [*old.chain, endorsement]
        body = [{"key": e.key, "signature": e.signature} for e in new.chain]
        write_public(directory / CHAIN_FILE, (json.dumps(body, indent=1) + "\n").encode())
        write_private(
            directory / "release.key",
            new_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        write_public(directory / "release.pub", (new.public + "\n").encode())
        return old, new

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


def _read_chain(path: Path) -> list[KeyEndorsement]:
    if not path.exists():
        return []
    try:
        return [
            KeyEndorsement(key=e["key"], signature=e["signature"])
            for e in json.loads(path.read_text())
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseKeyError(f"{path} cannot be read ({exc}); restore it from a backup") from None
