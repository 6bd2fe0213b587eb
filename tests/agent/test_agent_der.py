"""The agent's tiny certificate reader agrees with cryptography."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from agent._der import cert_info, csr_public_key, pem_to_der
from agent.keys import csr_pem, generate_key_pem
from tests.agent.certs import self_signed

_CSR_HEAD = "-----BEGIN CERTIFICATE REQUEST-----\n"
_CSR_TAIL = "\n-----END CERTIFICATE REQUEST-----\n"


def test_reads_validity_and_subject_of_a_utctime_certificate():
    issued = self_signed("db.internal", org="Acme", lifetime=dt.timedelta(minutes=90))
    info = cert_info(pem_to_der(issued.cert_pem.decode()))
    assert info.not_before == issued.not_before.timestamp()
    assert info.not_after == issued.not_after.timestamp()
    assert info.subject == "CN=db.internal,O=Acme"


def test_reads_generalized_time_after_2049():
    start = dt.datetime(2049, 6, 1, tzinfo=dt.UTC)
    issued = self_signed(not_before=start, lifetime=dt.timedelta(days=3650))
    info = cert_info(pem_to_der(issued.cert_pem.decode()))
    assert info.not_before == start.timestamp()  # UTCTime "49..." is 2049
    assert info.not_after == (start + dt.timedelta(days=3650)).timestamp()  # GeneralizedTime


def _spki(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_reads_the_certified_key_and_the_key_of_a_csr_as_cryptography_does():
    # A renewed certificate is installed only if it certifies the CSR's key.
    issued = self_signed("edge-1")
    cert = x509.load_pem_x509_certificate(issued.cert_pem)
    assert cert_info(pem_to_der(issued.cert_pem.decode())).public_key == _spki(cert.public_key())
    csr = csr_pem(generate_key_pem(), "edge-1")
    assert csr_public_key(csr) == _spki(x509.load_pem_x509_csr(csr.encode()).public_key())
    assert csr_public_key(csr) != csr_public_key(csr_pem(generate_key_pem(), "edge-1"))


@pytest.mark.parametrize(
    "text", ["", _CSR_HEAD + "AAAA" + _CSR_TAIL, _CSR_HEAD + "MAA=" + _CSR_TAIL]
)
def test_a_bad_csr_is_a_value_error(text):
    with pytest.raises(ValueError):
        csr_public_key(text)


@pytest.mark.parametrize("data", [b"", b"\x30\x82\xff\xff", b"\x30\x03\x02\x01\x01"])
def test_garbage_is_a_value_error(data):
    with pytest.raises(ValueError):
        cert_info(data)


def test_pem_without_certificate_is_a_value_error():
    with pytest.raises(ValueError, match="no PEM certificate"):
        pem_to_der("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


@given(st.binary(max_size=400))
@settings(max_examples=500, deadline=None)
def test_any_bytes_give_info_or_value_error(data):
    with contextlib.suppress(ValueError):
        cert_info(data)


@given(st.integers(min_value=0, max_value=1000), st.binary(min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_corrupted_real_certificates_give_info_or_value_error(position, junk):
    der = bytearray(pem_to_der(_CERT.cert_pem.decode()))
    position %= len(der)
    der[position : position + len(junk)] = junk
    with contextlib.suppress(ValueError):
        cert_info(bytes(der))


_CERT = self_signed("fuzz.internal", org="Acme")


_CSR_DER = pem_to_der(
    csr_pem(generate_key_pem(), "fuzz").replace("CERTIFICATE REQUEST", "CERTIFICATE")
)


@given(st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_corrupted_csrs_give_a_key_or_value_error(position, junk):
    der = bytearray(_CSR_DER)
    position %= len(der)
    der[position : position + len(junk)] = junk
    pem = _CSR_HEAD + base64.b64encode(bytes(der)).decode() + _CSR_TAIL
    with contextlib.suppress(ValueError):
        csr_public_key(pem)
