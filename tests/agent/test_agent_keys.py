"""Key, CSR, proof-of-possession signature and CA pin."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.keys import (
    csr_pem,
    generate_key_pem,
    rekey_isolated,
    sign_isolated,
    sign_nonce,
    verify_release,
    verify_release_isolated,
)
from fleet.pins import spki_pin
from fleet.protocol import AUTH_CONTEXT, RELEASE_KEY_PREFIX, release_message
from tests.agent.certs import self_signed


def _public(key_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)
    return key.public_key()


def test_signature_verifies_over_prefix_and_nonce_only():
    key_pem = generate_key_pem()
    signature = base64.b64decode(sign_nonce(key_pem, "ab12"))
    public = _public(key_pem)
    public.verify(signature, (AUTH_CONTEXT + "ab12").encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(signature, (AUTH_CONTEXT + "ab13").encode(), ec.ECDSA(hashes.SHA256()))


def test_csr_names_the_agent_and_carries_its_key():
    key_pem = generate_key_pem()
    csr = x509.load_pem_x509_csr(csr_pem(key_pem, "build-07").encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=build-07"
    assert csr.public_key() == _public(key_pem)


def test_pin_is_sha256_of_the_subject_public_key_info():
    issued = self_signed("fleet CA")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_pin(issued.cert_pem) == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert spki_pin(issued.cert_pem) != spki_pin(self_signed("fleet CA").cert_pem)


async def test_isolated_operations_run_in_a_child_process(tmp_path):
    key_pem = generate_key_pem()
    key_path = tmp_path / "key.pem"
    key_path.write_bytes(key_pem)
    signature = base64.b64decode(await sign_isolated(key_path, "n0nce"))
    _public(key_pem).verify(signature, (AUTH_CONTEXT + "n0nce").encode(), ec.ECDSA(hashes.SHA256()))
    # A renewal's key: made in the child, written beside key.pem (0600), which stays.
    new_key = tmp_path / "key.pem.new"
    csr = x509.load_pem_x509_csr((await rekey_isolated(new_key, "edge-1")).encode())
    assert csr.subject.rfc4514_string() == "CN=edge-1" and csr.is_signature_valid
    assert new_key.stat().st_mode & 0o777 == 0o600
    assert csr.public_key() == _public(new_key.read_bytes()) != _public(key_pem)
    assert key_path.read_bytes() == key_pem


async def test_isolated_failure_is_reported(tmp_path):
    bad = tmp_path / "key.pem"
    bad.write_text("not a key")
    with pytest.raises(RuntimeError, match="key operation sign failed"):
        await sign_isolated(bad, "n")


def _release_key() -> tuple[str, Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return RELEASE_KEY_PREFIX + base64.b64encode(raw).decode(), private


async def test_a_release_is_checked_for_size_hash_and_signature_in_the_key_child(tmp_path):
    public, private = _release_key()
    key_file = tmp_path / "release.pub"
    key_file.write_text(public + "\n")
    release = tmp_path / "r.whl"
    release.write_bytes(b"wheel bytes" * 100)
    size = release.stat().st_size
    sha = hashlib.sha256(release.read_bytes()).hexdigest()
    signature = base64.b64encode(private.sign(release_message("0.2.0", sha, size))).decode()

    assert await verify_release_isolated(key_file, release, "0.2.0", sha, size, signature) is None
    # The signature binds the version: the same file offered as another one is refused.
    other = await verify_release_isolated(key_file, release, "0.2.1", sha, size, signature)
    assert other is not None and other.startswith("bad signature")
    for facts, said in [
        ((sha, size + 1), "size mismatch"),
        (("0" * 64, size), "hash mismatch"),
    ]:
        why = verify_release(public, release, "0.2.0", facts[0], facts[1], signature)
        assert why is not None and why.startswith(said), why
    stranger, _ = _release_key()
    said = verify_release(stranger, release, "0.2.0", sha, size, signature)
    assert said is not None and said.startswith("bad signature")
    assert verify_release(public, release, "0.2.0", sha, size, "not base64!") is not None
