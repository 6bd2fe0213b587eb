"""Why a TLS connection to the control plane failed: the one analysis doctor uses.

:func:`explain_tls_failure` is a pure function of what the agent saw (the leaf
certificate the server presented, the host it dialed, the CAs it trusts and the
``ssl`` error, if any), so enrollment and ``fleet agent run`` can give the same
explanation.  It names each check that failed: the chain (with the issuer that
was presented: that is how an SSL-inspecting proxy shows itself), the name (with
the names the certificate has, and how to add one) and the validity dates.

It uses ``cryptography``, imported when called: doctor and enrollment are
one-shot commands, and the long-running agent never calls it.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["TlsFinding", "TlsProblem", "explain_tls_failure"]

# OpenSSL X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code.
_NOT_YET_VALID = 9
_EXPIRED = 10
_CHAIN_CODES = frozenset({2, 18, 19, 20, 21})
_NAME_CODES = frozenset({62, 64})


@dataclass(frozen=True)
class TlsProblem:
    """One failed check.

    Attributes:
        check: ``chain``, ``name``, ``validity`` or ``handshake``.
        detail: what was seen.
        fix: what to do.
    """

    check: str
    detail: str
    fix: str


@dataclass(frozen=True)
class TlsFinding:
    """What the analysis found.

    Attributes:
        issuer: the presented certificate's issuer (``CN=...,O=...``).
        names: the names the certificate is valid for (DNS names and addresses).
        not_after: end of the certificate's validity, UNIX seconds.
        trusted_issuer: whether a trusted CA issued the certificate directly.
        problems: each failed check; empty when the connection may be trusted.
    """

    issuer: str
    names: tuple[str, ...]
    not_after: float
    trusted_issuer: bool
    problems: tuple[TlsProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not self.problems


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    from cryptography import x509

    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = [str(n) for n in sans.get_values_for_type(x509.DNSName)]
    ips = [str(a) for a in sans.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _name_matches(host: str, names: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for name in names:
        if address is not None:
            try:
                if ipaddress.ip_address(name) == address:
                    return True
            except ValueError:
                continue
            continue
        wanted, pattern = host.lower().rstrip("."), name.lower().rstrip(".")
        if pattern == wanted:
            return True
        # RFC 6125: a wildcard stands for exactly one left-most label.
        if pattern.startswith("*.") and wanted.partition(".")[2] == pattern[2:]:
            return True
    return False


def _issued_by(leaf: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    from cryptography.exceptions import InvalidSignature

    for ca in cas:
        if ca.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


def _load_cas(pems: Sequence[str]) -> list[x509.Certificate]:
    from cryptography import x509

    cas: list[x509.Certificate] = []
    for pem in pems:
        try:
            cas.extend(x509.load_pem_x509_certificates(pem.encode("ascii")))
        except ValueError:
            continue
    return cas


def _name_problem(host: str, names: Sequence[str]) -> TlsProblem:
    listed = ", ".join(names) if names else "no names at all"
    return TlsProblem(
        "name",
        f"{host} is not a name in the server's certificate (it has: {listed})",
        f"add the name on the control plane: `fleet server --san {host}` (the same CA "
        "re-issues the certificate, so agents' pins stay valid), or point the agent at "
        "one of the names it has",
    )


def _chain_problem(host: str, issuer: str, trusted: Sequence[x509.Certificate]) -> TlsProblem:
    from cryptography.x509.oid import NameOID

    def cn(cert: x509.Certificate) -> str:
        values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(values[0].value) if values else cert.subject.rfc4514_string()

    known = ", ".join(f"'{cn(c)}'" for c in trusted) or "none"
    return TlsProblem(
        "chain",
        f"the certificate presented for {host} was issued by '{issuer}', not by a CA "
        f"this agent trusts ({known}): an SSL-inspecting proxy, or another server, is "
        "answering in the control plane's place",
        "if your security team runs that inspection and allows it, put its CA in a PEM "
        "file and set extra_ca_file in agent.toml (the pin still guards the control "
        "plane's CA); better, exempt the control plane's host from inspection",
    )


def explain_tls_failure(
    leaf_der: bytes,
    host: str,
    trusted_ca_pems: Sequence[str],
    exc: BaseException | None,
    *,
    now: float | None = None,
) -> TlsFinding:
    """Explain what is wrong with the server's certificate, check by check.

    Args:
        leaf_der: the certificate the server presented (DER).
        host: the host name or address the agent dialed.
        trusted_ca_pems: PEM texts of the CAs the agent trusts (its ``ca.pem``,
            then ``extra_ca_file``); bundles allowed.
        exc: the error the verifying handshake raised, or ``None`` if it passed.
        now: the current time (UNIX seconds); a seam for tests.

    Returns:
        The certificate's issuer, names and expiry, and every failed check.
    """
    from cryptography import x509

    now = time.time() if now is None else now
    leaf = x509.load_der_x509_certificate(leaf_der)
    issuer = leaf.issuer.rfc4514_string()
    names = _names(leaf)
    cas = _load_cas(trusted_ca_pems)
    not_before = leaf.not_valid_before_utc.timestamp()
    not_after = leaf.not_valid_after_utc.timestamp()
    trusted_issuer = _issued_by(leaf, cas)
    if exc is None:  # OpenSSL verified chain, name and dates
        return TlsFinding(issuer, names, not_after, trusted_issuer)
    code = exc.verify_code if isinstance(exc, ssl.SSLCertVerificationError) else None
    problems: list[TlsProblem] = []
    # OpenSSL builds the chain before it checks dates and names: an error about those
    # means the chain was good, even when its intermediates were not shown to us.
    chain_verified = code in _NAME_CODES or code in (_NOT_YET_VALID, _EXPIRED)
    if code in _CHAIN_CODES or (not chain_verified and not trusted_issuer):
        problems.append(_chain_problem(host, issuer, cas))
    if code in _NAME_CODES or not _name_matches(host, names):
        problems.append(_name_problem(host, names))
    if code == _NOT_YET_VALID or now < not_before:
        problems.append(
            TlsProblem(
                "validity",
                f"the server's certificate is not valid before {_iso(not_before)}",
                "check this host's clock (timedatectl; chrony or ntpd must be running)",
            )
        )
    if code == _EXPIRED or now > not_after:
        problems.append(
            TlsProblem(
                "validity",
                f"the server's certificate expired at {_iso(not_after)}",
                "renew the control plane's certificate (with --tls-cert, at your PKI); "
                "if that date is not in the past, check this host's clock",
            )
        )
    if not problems:
        problems.append(
            TlsProblem(
                "handshake",
                f"the TLS handshake with {host} failed: {exc}",
                "check that the port serves the control plane's TLS and that nothing on "
                "the path (proxy, load balancer) terminates or alters it",
            )
        )
    return TlsFinding(issuer, names, not_after, trusted_issuer, tuple(problems))
