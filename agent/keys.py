"""The agent's key operations: key, CSR, proof-of-possession signature.

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
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from agent._child import run_module
from fleet.files import write_private
from fleet.protocol import AUTH_CONTEXT

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = [
    "csr_pem",
    "generate_key_pem",
    "new_key_csr",
    "rekey_isolated",
    "sign_isolated",
    "sign_nonce",
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


async def rekey_isolated(new_key_path: Path, name: str) -> str:
    """:func:`new_key_csr` in a child process: the key goes to the file, the CSR comes back."""
    return await _child("rekey", str(new_key_path), name) + "\n"


def main(argv: list[str]) -> int:
    """``python -m agent.keys sign KEY`` (nonce on stdin) or ``rekey NEW_KEY NAME``."""
    if argv[:1] == ["sign"] and len(argv) == 2:
        print(sign_nonce(Path(argv[1]).read_bytes(), sys.stdin.read()))
        return 0
    if argv[:1] == ["rekey"] and len(argv) == 3:
        print(new_key_csr(Path(argv[1]), argv[2]), end="")
        return 0
    print("usage: python -m agent.keys sign KEY < nonce | rekey NEW_KEY NAME", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
