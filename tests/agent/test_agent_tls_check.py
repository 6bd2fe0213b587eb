"""``agent.tls.check_tls``: which TLS check failed, from the certificate alone."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.tls import check_tls, explain_tls_failure
from tests.agent.certs import ca_and_leaf

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def leaf_for(ca_pem: bytes, ca_key_pem: bytes, names: list[str], days: int = 30) -> bytes:
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_all_checks_pass_for_a_name_and_ip_the_certificate_carries():
    ca, _ = ca_and_leaf("Fleet CA")
    der = leaf_for(ca.cert_pem, ca.key_pem, ["cp.example.com", "10.0.0.5", "*.fleet.example"])
    for host in ("cp.example.com", "CP.example.com", "10.0.0.5", "a.fleet.example"):
        check = check_tls(der, host, [ca.cert_pem.decode()], now=NOW)
        assert check.ok, (host, check.message)
        assert check.names == ("cp.example.com", "10.0.0.5", "*.fleet.example")
        assert check.issuer == "CN=Fleet CA"


def test_a_name_not_carried_lists_the_names_and_how_to_add_one():
    ca, _ = ca_and_leaf("Fleet CA")
    der = leaf_for(ca.cert_pem, ca.key_pem, ["localhost", "127.0.0.1", "*.fleet.example"])
    for host in ("cp.example.com", "a.b.fleet.example", "10.0.0.6"):
        check = check_tls(der, host, [ca.cert_pem.decode()], now=NOW)
        assert check.failed == ("name",), host
        assert "it carries localhost, 127.0.0.1, *.fleet.example" in check.message
        assert f"fleet server --san {host}" in check.message


def test_another_issuer_is_named_and_the_fixes_offered():
    ours, _ = ca_and_leaf("Fleet CA")
    proxy, _ = ca_and_leaf("Contoso Inspection CA")
    der = leaf_for(proxy.cert_pem, proxy.key_pem, ["cp.example.com"])
    check = check_tls(der, "cp.example.com", [ours.cert_pem.decode()], now=NOW)
    assert check.failed == ("chain",)
    assert "issued by 'CN=Contoso Inspection CA'" in check.message
    assert "--extra-ca-file" in check.message and "--ca-file" in check.message


def test_expired_and_not_yet_valid_give_the_dates_and_the_clock():
    ca, _ = ca_and_leaf("Fleet CA")
    der = leaf_for(ca.cert_pem, ca.key_pem, ["cp.example.com"], days=30)
    late = check_tls(der, "cp.example.com", [ca.cert_pem.decode()], now=NOW + dt.timedelta(days=31))
    assert late.failed == ("validity",) and "has expired" in late.message
    assert "valid from 2026-05-31 12:00:00 UTC to 2026-07-01 12:00:00 UTC" in late.message
    assert "this host's clock says 2026-07-02 12:00:00 UTC" in late.message
    early = check_tls(der, "cp.example.com", [ca.cert_pem.decode()], now=NOW - dt.timedelta(days=2))
    assert early.failed == ("validity",) and "is not yet valid" in early.message


def test_the_handshake_error_decides_the_chain_when_the_trust_is_the_system_store():
    proxy, _ = ca_and_leaf("Contoso Inspection CA")
    der = leaf_for(proxy.cert_pem, proxy.key_pem, ["cp.example.com"])
    exc = ssl.SSLCertVerificationError("verify failed")
    exc.verify_code = 20
    exc.verify_message = "unable to get local issuer certificate"
    assert check_tls(der, "cp.example.com", [], None, now=NOW).ok  # no verdict without exc
    check = check_tls(der, "cp.example.com", [], exc, trust="the system trust store", now=NOW)
    assert check.failed == ("chain",) and "trusted: the system trust store" in check.message
    # An error none of the three checks explains is still reported, with its text.
    odd = ssl.SSLCertVerificationError("verify failed")
    odd.verify_code = 50
    odd.verify_message = "application verification failure"
    other = check_tls(der, "cp.example.com", [proxy.cert_pem.decode()], odd, now=NOW)
    assert other.failed == ("other",) and "application verification failure" in other.message
    assert "unreadable" in explain_tls_failure(b"junk", "cp.example.com", [], exc)
