"""The control plane's certificate authority: its own CA, server and agent certificates.

The CA is made on first start and lives in the data directory (key 0600). Agents
send a CSR at enrollment and renewal; the CA signs short-lived client
certificates whose serial numbers the store records, so that a revoked serial is
refused on the channel.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fleet.files import write_private, write_public
from fleet.pins import spki_der, spki_pin
from fleet.protocol import AUTH_CONTEXT

from .errors import BadRequest, Unauthenticated

__all__ = ["CertificateAuthority", "IssuedCert"]

BACKDATE = dt.timedelta(minutes=5)
"""NotBefore is set this far in the past so that an agent whose clock runs a little
behind can still use a certificate it was just given."""


@dataclass(frozen=True)
class IssuedCert:
    serial: str
    pem: str
    not_after: float
    key_der: bytes = b""
    """The certified public key (DER SubjectPublicKeyInfo)."""


class AgentProof(NamedTuple):
    """What an agent's certificate and proof of possession established."""

    agent_id: str
    serial: str
    """The certificate's serial, in hex."""
    not_after: float
    key_der: bytes
    """The key that signed the nonce (DER SubjectPublicKeyInfo)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertificateAuthority:
    """A CA kept in a directory: ``ca.pem``, ``ca.key`` (0600), ``server.pem``, ``server.key``."""

    def __init__(self, directory: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.directory = directory
        self.cert = cert
        self._key = key
        self.pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        self.pin = spki_pin(cert.public_bytes(serialization.Encoding.DER))

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """Load the CA from ``directory`` or make a new one (its key 0600).

        The server certificate is not touched here: :mod:`controlplane.server_cert`
        decides whether it must be (re)issued.
        """
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        ca_pem, ca_key = directory / "ca.pem", directory / "ca.key"
        if ca_pem.exists() and ca_key.exists():
            cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
            key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise RuntimeError(f"{ca_key} is not an EC private key")
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet control plane CA")])
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - BACKDATE)
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            write_private(
                ca_key,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            ca_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        ca = cls(directory, cert, key)
        write_public(directory / "ca.pin", (ca.pin + "\n").encode())
        return ca

    def issue_server_cert(self, names: list[str]) -> x509.Certificate:
        """Issue a new server certificate (and key) for ``names``, signed by this CA.

        Args:
            names: DNS names and IP addresses, already checked
                (:func:`controlplane.server_cert.check_san`).
        """
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in dict.fromkeys(names):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet control plane")])
            )
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        write_private(
            self.directory / "server.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        (self.directory / "server.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self.pem.encode()
        )
        return cert

    @property
    def server_cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_file(self) -> Path:
        return self.directory / "server.key"

    def sign_csr(self, csr_pem: str, agent_id: str, lifetime: dt.timedelta) -> IssuedCert:
        """Sign an agent's CSR.  The subject is ours (CN = agent id), not the CSR's."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise BadRequest(
                "csr_pem is not a PEM certificate signing request; "
                "send the CSR the agent made for its own key"
            ) from None
        if not csr.is_signature_valid:
            raise BadRequest("the CSR's signature does not match its public key")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise BadRequest("only EC (P-256) agent keys are accepted")
        now = _now()
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return IssuedCert(
            serial=format(serial, "x"),
            pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            not_after=cert.not_valid_after_utc.timestamp(),
            key_der=spki_der(public_key),
        )

    def verify_agent(self, cert_pem: str, nonce: str, signature: bytes) -> AgentProof:
        """Check an agent's certificate and its proof of possession.

        Returns:
            the agent id from the CN, the serial, the expiry and the agent's key.

        Raises:
            Unauthenticated: with ``expired=True`` when only the expiry is wrong.
        """
        try:
            cert = x509.load_pem_x509_certificate(cert_pem.encode())
        except ValueError:
            raise Unauthenticated("the certificate is not valid PEM") from None
        if cert.issuer != self.cert.subject:
            raise Unauthenticated("the certificate was not issued by this control plane's CA")
        ca_key = self._key.public_key()
        try:
            ca_key.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                ec.ECDSA(cert.signature_hash_algorithm or hashes.SHA256()),
            )
        except InvalidSignature:
            raise Unauthenticated("the certificate's CA signature is invalid") from None
        agent_key = cert.public_key()
        if not isinstance(agent_key, ec.EllipticCurvePublicKey):
            raise Unauthenticated("the certificate does not hold an EC key")
        try:
            agent_key.verify(signature, (AUTH_CONTEXT + nonce).encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Unauthenticated(
                "the nonce signature does not match the certificate's key"
            ) from None
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        agent_id = str(cns[0].value) if cns else ""
        now = _now()
        if now < cert.not_valid_before_utc:
            raise Unauthenticated("the certificate is not valid yet: check the agent's clock")
        if now > cert.not_valid_after_utc:
            raise Unauthenticated(
                "the certificate expired at "
                f"{cert.not_valid_after_utc.isoformat()}: enroll the agent again",
                expired=True,
            )
        return AgentProof(
            agent_id,
            format(cert.serial_number, "x"),
            cert.not_valid_after_utc.timestamp(),
            spki_der(agent_key),
        )
