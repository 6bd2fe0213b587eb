"""``fleet.pins``: the one CA pin, as the control plane prints it and clients check it."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from controlplane.pki import CertificateAuthority
from fleet.pins import check_pin_text, pins_equal, spki_pin


def test_the_control_planes_pin_is_the_one_every_client_computes(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    pem = (tmp_path / "ca.pem").read_text()
    assert spki_pin(pem) == spki_pin(pem.encode()) == ca.pin
    assert spki_pin(ssl.PEM_cert_to_DER_cert(pem)) == ca.pin
    assert (tmp_path / "ca.pin").read_text().strip() == ca.pin
    other = CertificateAuthority.load_or_create(tmp_path / "other")
    assert other.pin != ca.pin


def test_pin_text_is_checked_and_normalised() -> None:
    pin = "sha256:" + "ab" * 32
    assert check_pin_text(f"  {pin.upper().replace('SHA256', 'sha256')} ") == pin
    assert pins_equal(pin, pin.upper())
    for bad in ("ab" * 32, "sha256:abc", "sha1:" + "ab" * 20, "sha256:" + "zz" * 32):
        with pytest.raises(ValueError, match="--ca-pin must look like sha256:<64 hex digits>"):
            check_pin_text(bad)


def test_a_non_certificate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        spki_pin("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError):
        spki_pin(b"junk")
