"""The agent's tiny certificate reader agrees with cryptography."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent._der import cert_info, pem_to_der
from tests.agent.certs import self_signed


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
