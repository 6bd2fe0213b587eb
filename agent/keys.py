"""The agent's key operations: key, CSR, proof-of-possession signature, and the
check of a release (its hash, and the release key's Ed25519 signature).

The CA pin is :func:`fleet.pins.spki_pin`, the one definition every side uses.

``cryptography`` is imported inside each function, never at module level.  The
long-running agent does not call these functions in its own process: it runs
them in a short-lived child (``python -m agent.keys sign|rekey``, no shell) through
:func:`sign_isolated` and :func:`rekey_isolated`, so its resident memory never
carries ``cryptography`` (about 10 MB).  Enrollment, a one-shot command, calls
them directly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent._child import run_module
from fleet.files import write_private
from fleet.protocol import (
    AUTH_CONTEXT,
    RELEASE_KEY_PREFIX,
    KeyEndorsement,
    release_key_message,
    release_message,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = [
    "csr_pem",
    "generate_key_pem",
    "new_key_csr",
    "rekey_isolated",
    "sign_isolated",
    "sign_nonce",
    "verify_release",
    "verify_release_isolated",
]


_CHILD_TIMEOUT_S = 30.0


def generate_key_pem() -> bytes:
    """A new ECDSA P-256 private key as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(key_pem: bytes) -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the agent key is not an EC key")
    return key


def csr_pem(key_pem: bytes, name: str) -> str:
    """A PEM certificate signing request with CN = ``name``, signed by the key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = _load_key(key_pem)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def new_key_csr(new_key_path: Path, name: str) -> str:
    """A new key written to ``new_key_path`` (0600, atomically); the CSR for it.

    A renewal's key: the current ``key.pem`` stays untouched until the certificate
    for the new one is installed (:func:`agent.state.install_renewal`).
    """
    key_pem = generate_key_pem()
    write_private(new_key_path, key_pem)
    return csr_pem(key_pem, name)


def sign_nonce(key_pem: bytes, nonce: str) -> str:
    """Base64 of the ECDSA P-256 SHA-256 signature over ``AUTH_CONTEXT + nonce``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = _load_key(key_pem)
    signature: bytes = key.sign((AUTH_CONTEXT + nonce).encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def verify_release(
    release_key: str, path: Path, version: str, sha256: str, size: int, signature: str
) -> str | None:
    """Why the release file at ``path`` must not be used, or None when it may.

    Checks its size and sha256 against the command's, then the release key's
    Ed25519 signature over :func:`fleet.protocol.release_message` of the three.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    actual = path.stat().st_size
    if actual != size:
        return f"size mismatch: the file has {actual} bytes, the release {size}"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return f"hash mismatch: the file's sha256 is {digest.hexdigest()}, the release's {sha256}"
    if not release_key.startswith(RELEASE_KEY_PREFIX):
        return f"the kept release key is not {RELEASE_KEY_PREFIX}BASE64"
    try:
        key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(release_key.removeprefix(RELEASE_KEY_PREFIX), validate=True)
        )
        key.verify(
            base64.b64decode(signature, validate=True), release_message(version, sha256, size)
        )
    except (InvalidSignature, ValueError):
        return "bad signature: the release key this agent keeps did not sign this release"
    return None


def follow_release_key(kept: str, chain: Sequence[KeyEndorsement]) -> str:
    """The newest release key that ``kept`` leads to through ``chain`` (oldest first),
    each endorsed by the key before it; ``kept`` itself when it leads nowhere.

    An endorsement that does not verify ends the walk: a control plane cannot make an
    agent trust a key its kept key never endorsed.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    current = kept
    for endorsement in chain:
        if endorsement.key == current:
            continue  # the chain's earlier links, up to the kept key
        try:
            key = Ed25519PublicKey.from_public_bytes(
                base64.b64decode(current.removeprefix(RELEASE_KEY_PREFIX), validate=True)
            )
            key.verify(
                base64.b64decode(endorsement.signature, validate=True),
                release_key_message(endorsement.key),
            )
        except (InvalidSignature, ValueError):
            continue  # not endorsed by the current key: maybe a link before it
        current = endorsement.key
    return current


async def verify_release_isolated(
    key_file: Path, path: Path, version: str, sha256: str, size: int, signature: str
) -> str | None:
    """:func:`verify_release` with the kept key file, in a child process."""
    facts = {"version": version, "sha256": sha256, "size": size, "signature": signature}
    verdict = await _child("verify-release", str(key_file), str(path), stdin=json.dumps(facts))
    return None if verdict == "ok" else verdict.removeprefix("refused: ")


async def _child(*args: str, stdin: str = "") -> str:
    try:
        code, out, err = await run_module(
            "agent.keys", *args, stdin=stdin.encode("utf-8"), timeout_s=_CHILD_TIMEOUT_S
        )
    except TimeoutError:
        raise RuntimeError(f"key operation {args[0]} timed out") from None
    if code != 0:
        detail = err.decode("utf-8", errors="replace").strip().splitlines()
        raise RuntimeError(f"key operation {args[0]} failed: {detail[-1] if detail else '?'}")
    return out.decode("ascii").strip()


async def sign_isolated(key_path: Path, nonce: str) -> str:
    """:func:`sign_nonce` with the key file, in a child process."""
    return await _child("sign", str(key_path), stdin=nonce)


async def follow_release_key_isolated(kept: str, chain: Sequence[KeyEndorsement]) -> str:
    """:func:`follow_release_key` in a child process (cryptography stays out of the
    agent's own memory)."""
    links = [{"key": e.key, "signature": e.signature} for e in chain]
    return await _child("follow-release-key", kept, stdin=json.dumps(links))


async def rekey_isolated(new_key_path: Path, name: str) -> str:
    """:func:`new_key_csr` in a child process: the key goes to the file, the CSR comes back."""
    return await _child("rekey", str(new_key_path), name) + "\n"


def main(argv: list[str]) -> int:
    """``python -m agent.keys sign KEY`` (nonce on stdin), ``rekey NEW_KEY NAME``,
    ``follow-release-key KEPT`` (the chain as JSON on stdin: prints the key it leads
    to), or ``verify-release KEYFILE FILE`` (version, sha256, size, signature as JSON on
    stdin: prints ``ok`` or ``refused: WHY``)."""
    if argv[:1] == ["sign"] and len(argv) == 2:
        print(sign_nonce(Path(argv[1]).read_bytes(), sys.stdin.read()))
        return 0
    if argv[:1] == ["rekey"] and len(argv) == 3:
        print(new_key_csr(Path(argv[1]), argv[2]), end="")
        return 0
    if argv[:1] == ["follow-release-key"] and len(argv) == 2:
        links = json.loads(sys.stdin.read())
        chain = [KeyEndorsement(key=str(e["key"]), signature=str(e["signature"])) for e in links]
        print(follow_release_key(argv[1], chain))
        return 0
    if argv[:1] == ["verify-release"] and len(argv) == 3:
        facts = json.loads(sys.stdin.read())
        why = verify_release(
            Path(argv[1]).read_text(encoding="ascii").strip(),
            Path(argv[2]),
            str(facts["version"]),
            str(facts["sha256"]),
            int(facts["size"]),
            str(facts["signature"]),
        )
        print("ok" if why is None else f"refused: {why}")
        return 0
    print(
        "usage: python -m agent.keys sign KEY < nonce | rekey NEW_KEY NAME "
        "| follow-release-key KEPT < chain.json | verify-release KEYFILE FILE < facts.json",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
