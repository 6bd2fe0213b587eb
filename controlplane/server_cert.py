"""The certificate the control plane presents: its own, or one from the company's PKI.

Its own server certificate is signed by the control plane's CA and carries the
names agents dial: ``localhost``, ``127.0.0.1``, ``::1``, the ``--host`` (unless it
is a wildcard address) and every ``--san``.  The ``--san`` set is remembered in
``DATA/pki/sans.json``, so a later start without ``--san`` keeps it.  The
certificate is re-issued, by the same CA (agents' pins stay valid), only when the
set of names changes, it nears its end, or it is missing or damaged.

With ``--tls-cert`` and ``--tls-key`` the control plane presents that certificate
instead (on the API port and on the agents' port); its own CA still signs agents'
certificates, and its pin is still what agents check.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from fleet.files import write_private
from fleet.pins import spki_der

from .pki import CertificateAuthority

__all__ = [
    "DEFAULT_NAMES",
    "TLS12_CIPHERS",
    "ServerCertError",
    "ServerTLS",
    "certificate_names",
    "check_san",
    "external_server_tls",
    "own_server_tls",
]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
"""Names the control plane's own certificate always carries."""

SANS_FILE = "sans.json"
RENEW_BEFORE = dt.timedelta(days=30)
"""The own server certificate (a year long) is re-issued at a start this close to its end."""

_WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # noqa: S104 - addresses compared, not bound
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class ServerCertError(OSError):
    """The server's TLS certificate or key is unusable; the message says what to do.

    An :class:`OSError` so that ``fleet server`` reports it as "cannot start".
    """


def check_san(text: str) -> str:
    """Check one ``--san`` value and return it normalised (lower case, canonical IP).

    Raises:
        ValueError: with what is wrong and what a valid name looks like.
    """
    name = text.strip().lower().rstrip(".")
    if not name:
        raise ValueError("an empty name; give a DNS name (cp.example.com) or an IP address")
    if "://" in name or "/" in name:
        raise ValueError(f"{text!r} is a URL; give the host name alone, e.g. --san cp.example.com")
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        pass
    else:
        if address.is_unspecified:
            raise ValueError(f"{text!r} is a wildcard address no agent can dial; give its real IP")
        return str(address)
    if ":" in name:
        raise ValueError(
            f"{text!r} is not a DNS name or an IP address (a port does not belong in a "
            "certificate name; give the host alone)"
        )
    labels = name.split(".")
    wildcard = labels[0] == "*" and len(labels) > 2
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels[int(wildcard) :]):
        raise ValueError(
            f"{text!r} is not a valid DNS name: labels of letters, digits and '-' "
            "(at most 63 each) separated by dots, optionally starting with '*.' "
            "(e.g. cp.example.com, *.fleet.example.com), or an IP address"
        )
    return name


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses in ``cert``'s subjectAltName, in its order."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for general in ext:
        if isinstance(general, x509.DNSName):
            names.append(general.value.lower())
        elif isinstance(general, x509.IPAddress):
            names.append(str(general.value))
    return names


@dataclass(frozen=True)
class ServerTLS:
    """The certificate the control plane presents, for the listeners and the banner.

    Attributes:
        cert_file: PEM chain, leaf first.
        key_file: its private key.
        names: the names the leaf carries.
        issuer: the leaf's issuer (RFC 4514).
        not_after: end of validity.
        how: what happened at this start, for the banner ("kept", "issued", ...).
        own: the control plane's own certificate (not one from ``--tls-cert``).
    """

    cert_file: Path
    key_file: Path
    names: list[str]
    issuer: str
    not_after: dt.datetime
    how: str
    own: bool = True

    def context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting this certificate.

        TLS 1.2 and 1.3 only; on TLS 1.2 only the AEAD suites (:data:`TLS12_CIPHERS`).
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        # Agents never resume TLS sessions (each channel is one long connection), so
        # the two TLS 1.3 session tickets OpenSSL would mint per handshake are work
        # wasted, 20,000 of them in a restart storm of 10,000 agents.
        ctx.num_tickets = 0
        return ctx


TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""The TLS 1.2 suites both ports accept: forward-secret AEAD only (no CBC, no RSA key
exchange).  TLS 1.3 suites are all AEAD and are not affected by this string."""


def _wanted(host: str, sans: list[str]) -> list[str]:
    try:
        extra = [] if host.strip("[]") in _WILDCARD_HOSTS else [check_san(host)]
    except ValueError:
        extra = []  # not a name agents could dial; binding to it will say more
    return list(dict.fromkeys([*DEFAULT_NAMES, *extra, *sans]))


def _remembered(pki_dir: Path) -> list[str]:
    path = pki_dir / SANS_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ServerCertError(
            f"{path} is unreadable ({exc}); delete it and pass every --san again"
        ) from None
    names = doc.get("sans") if isinstance(doc, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ServerCertError(f"{path} has no list of names; delete it and pass --san again")
    try:
        return [check_san(n) for n in names]
    except ValueError as exc:
        raise ServerCertError(f"{path}: {exc}; delete it and pass --san again") from None


def _usable(ca: CertificateAuthority, names: list[str]) -> x509.Certificate | None:
    """The existing server certificate, if it is ours, for ``names``, and not near its end."""
    try:
        cert = x509.load_pem_x509_certificate(ca.server_cert_file.read_bytes())
        key = serialization.load_pem_private_key(ca.server_key_file.read_bytes(), None)
        cert.verify_directly_issued_by(ca.cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    if spki_der(cert.public_key()) != spki_der(key.public_key()):
        return None
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc - now < RENEW_BEFORE or cert.not_valid_before_utc > now:
        return None
    return cert if set(certificate_names(cert)) == set(names) else None


def own_server_tls(ca: CertificateAuthority, host: str, sans: list[str] | None) -> ServerTLS:
    """The control plane's own server certificate, (re)issued only when needed.

    Args:
        ca: the control plane's CA, which signs it.
        host: the ``--host`` the API listens on (included unless a wildcard).
        sans: the ``--san`` names; None keeps the remembered ones.

    Raises:
        ServerCertError: a name is invalid, or the remembered set is unreadable.
    """
    try:
        asked = None if sans is None else [check_san(name) for name in sans]
        names = _wanted(host, asked if asked is not None else _remembered(ca.directory))
    except ValueError as exc:
        raise ServerCertError(f"--san: {exc}") from None
    if asked is not None:
        write_private(
            ca.directory / SANS_FILE, (json.dumps({"sans": asked}, indent=2) + "\n").encode()
        )
    cert = _usable(ca, names)
    how = "kept"
    if cert is None:
        cert = ca.issue_server_cert(names)
        how = "issued by the fleet CA"
    return ServerTLS(
        cert_file=ca.server_cert_file,
        key_file=ca.server_key_file,
        names=certificate_names(cert),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        how=how,
    )


def _load_key(path: Path) -> PrivateKeyTypes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServerCertError(f"cannot read --tls-key {path}: {exc.strerror or exc}") from None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ServerCertError(
            f"--tls-key {path} is encrypted; give the key unencrypted, in a file only the "
            "server's user can read (chmod 600)"
        ) from None
    except ValueError:
        raise ServerCertError(f"--tls-key {path} is not a PEM private key") from None


def external_server_tls(cert_file: Path, key_file: Path) -> ServerTLS:
    """Check a certificate and key from the company's PKI and describe them.

    Raises:
        ServerCertError: unreadable, not PEM, the key does not match the
            certificate, or the certificate is not valid now.
    """
    try:
        data = cert_file.read_bytes()
    except OSError as exc:
        raise ServerCertError(
            f"cannot read --tls-cert {cert_file}: {exc.strerror or exc}"
        ) from None
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ServerCertError(
            f"--tls-cert {cert_file} holds no PEM certificate; give the server certificate "
            "followed by its intermediates, in PEM"
        ) from None
    leaf = chain[0]
    key = _load_key(key_file)
    if spki_der(leaf.public_key()) != spki_der(key.public_key()):
        raise ServerCertError(
            f"--tls-key {key_file} does not match --tls-cert {cert_file} (the first "
            "certificate in the file must be the one issued for this key)"
        )
    now = dt.datetime.now(dt.UTC)
    if now > leaf.not_valid_after_utc:
        raise ServerCertError(
            f"--tls-cert {cert_file} expired at {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "get a new certificate from your PKI"
        )
    if now < leaf.not_valid_before_utc:
        raise ServerCertError(
            f"--tls-cert {cert_file} is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check this host's clock"
        )
    tls = ServerTLS(
        cert_file=cert_file,
        key_file=key_file,
        names=certificate_names(leaf),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        how=f"from {cert_file}",
        own=False,
    )
    try:
        tls.context()
    except ssl.SSLError as exc:
        raise ServerCertError(
            f"--tls-cert {cert_file} and --tls-key {key_file} do not load together ({exc})"
        ) from None
    return tls
