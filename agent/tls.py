"""How the agent trusts the control plane's TLS, and why a handshake was refused.

Trust modes (recorded at enrollment in ``agent.json`` as ``tls_trust``)::

    pinned    the server's certificate is signed by the control plane's own CA,
              whose key matched the pin (the default)
    ca-file   the server presents a certificate from the company's PKI, checked
              against the CA bundle given with --ca-file (kept as server-ca.pem)
    system    the same, checked against the system trust store

In every mode the control plane's own CA is checked against the pin before the
enrollment token is sent.  ``--extra-ca-file`` adds CAs to any mode (an
SSL-inspecting proxy the security team allows).

When a handshake fails, :func:`check_tls` looks at the certificate the server
presented (read again, unverified) and says which check failed: the chain (and
the issuer presented: that is how SSL inspection shows itself), the dates, or
the name.  ``cryptography`` is imported only there; the long-running agent runs
it in a short-lived child (:func:`explain_isolated`) to keep its memory small.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CHAIN_CODES",
    "TRUST_MODES",
    "TLSCheck",
    "TLSProblem",
    "TrustMode",
    "check_tls",
    "client_context",
    "describe_trust",
    "explain_isolated",
    "explain_tls_failure",
    "trusted_pems",
]

TrustMode = Literal["pinned", "ca-file", "system"]
TRUST_MODES: tuple[TrustMode, ...] = ("pinned", "ca-file", "system")

# OpenSSL verify codes (X509_V_ERR_*), grouped by the check that failed.
CHAIN_CODES = frozenset({2, 7, 18, 19, 20, 21, 24, 26, 27, 28, 32})
"""Verify codes that mean the chain does not lead to a trusted CA."""
_CHILD_TIMEOUT_S = 30.0


def client_context(
    mode: TrustMode,
    *,
    ca_pem: str | None = None,
    ca_file: Path | None = None,
    extra_ca_file: Path | str | None = None,
) -> ssl.SSLContext:
    """A verifying client context for ``mode``.

    Args:
        mode: ``pinned`` (trust ``ca_pem``, or ``ca_file`` holding it), ``ca-file``
            (trust ``ca_file``) or ``system`` (the system store).
        extra_ca_file: more CAs to trust, in any mode.

    Raises:
        OSError: a CA file cannot be read.
        ssl.SSLError: a CA file holds no usable certificate.
    """
    if mode == "system":
        context = ssl.create_default_context()
    elif ca_pem is not None:
        context = ssl.create_default_context(cadata=ca_pem)
    elif ca_file is not None:
        context = ssl.create_default_context(cafile=str(ca_file))
    else:
        raise ValueError(f"trust mode {mode} needs a CA")
    if extra_ca_file:
        context.load_verify_locations(cafile=str(extra_ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def trusted_pems(ca_file: Path | None, extra_ca_file: Path | str | None) -> list[str]:
    """The PEM texts a client context of :func:`client_context` trusts (empty: the system's).

    Raises:
        OSError: a file cannot be read.
    """
    paths = (ca_file, extra_ca_file)
    return [Path(p).read_text(encoding="ascii", errors="replace") for p in paths if p]


def describe_trust(mode: TrustMode, ca_file: Path | None, extra_ca_file: object) -> str:
    """How the trusted CAs are named in a message: ``trust=`` of :func:`check_tls`."""
    trust = {
        "pinned": "the pinned fleet CA",
        "ca-file": f"the CA bundle given at enrollment ({ca_file})",
        "system": "the system trust store",
    }[mode]
    return trust + (" and --extra-ca-file" if extra_ca_file else "")


@dataclass(frozen=True)
class TLSProblem:
    """One check that failed.

    Attributes:
        check: ``chain``, ``validity``, ``name`` or ``other``.
        detail: what was seen.
        fix: what to do.
    """

    check: str
    detail: str
    fix: str

    @property
    def text(self) -> str:
        """The problem as one sentence of :attr:`TLSCheck.message`."""
        head = self.detail if self.check == "other" else f"{self.check}: {self.detail}"
        return f"{head}. {self.fix}"


@dataclass(frozen=True)
class TLSCheck:
    """What the certificate a server presented says, check by check.

    Enrollment and ``fleet agent run`` print :attr:`message`; ``fleet agent doctor``
    prints each of :attr:`problems` with its fix.

    Attributes:
        host: the name the agent dialled.
        problems: the checks that failed, in the order chain, validity, name
            (empty: all passed).
        subject: the certificate's subject (RFC 4514).
        issuer: who issued it (RFC 4514); an inspecting proxy shows up here.
        names: the DNS names and IP addresses it carries.
        not_before: start of validity (UTC).
        not_after: end of validity (UTC).
    """

    host: str
    problems: tuple[TLSProblem, ...]
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def ok(self) -> bool:
        """No check failed."""
        return not self.problems

    @property
    def failed(self) -> tuple[str, ...]:
        """The names of the checks that failed."""
        return tuple(p.check for p in self.problems)

    @property
    def message(self) -> str:
        """One paragraph saying what failed and what to do."""
        if not self.problems:
            return "the TLS checks passed"
        said = "; ".join(p.text for p in self.problems)
        return f"TLS verification of {self.host} failed. {said}."


def _names(cert: object) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    assert isinstance(cert, x509.Certificate)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        ext = None
    names: list[str] = []
    for general in ext or []:
        if isinstance(general, x509.DNSName):
            names.append(general.value.lower())
        elif isinstance(general, x509.IPAddress):
            names.append(str(general.value))
    if not any(not _is_ip(n) for n in names):
        # Without DNS names, OpenSSL falls back to the subject's CN.
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if isinstance(attr.value, str) and attr.value not in names and not _is_ip(attr.value):
                names.append(attr.value.lower())
    return names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _name_matches(host: str, names: list[str]) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if _is_ip(host):
        address = ipaddress.ip_address(host)
        return any(_is_ip(n) and ipaddress.ip_address(n) == address for n in names)
    for name in names:
        if name == host:
            return True
        # A wildcard covers exactly one left-most label.
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
    return False


def _load_cas(ca_pems: list[str]) -> list[x509.Certificate]:
    """Every certificate in the PEM texts; a text that holds none is passed over."""
    from cryptography import x509

    cas: list[x509.Certificate] = []
    for pem in ca_pems:
        try:
            cas.extend(x509.load_pem_x509_certificates(pem.encode("ascii")))
        except ValueError:
            continue
    return cas


def _issued_by_any(leaf: object, ca_pems: list[str]) -> bool:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    assert isinstance(leaf, x509.Certificate)
    for ca in _load_cas(ca_pems):
        if ca.subject != leaf.issuer:
            continue
        try:
            leaf.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


def _fmt(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _trusted_names(ca_pems: list[str]) -> str:
    from cryptography.x509.oid import NameOID

    names: list[str] = []
    for ca in _load_cas(ca_pems):
        cns = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names.append(f"'{cns[0].value!s}'" if cns else f"'{ca.subject.rfc4514_string()}'")
    return ", ".join(names) or "none"


def _chain_problem(issuer: str, trust: str) -> TLSProblem:
    return TLSProblem(
        "chain",
        f"the server's certificate was issued by '{issuer}', which is not "
        f"trusted here (trusted: {trust})",
        "If a proxy on this network inspects TLS, that issuer is the proxy's: where the "
        "security team allows it, add its CA with --extra-ca-file FILE (extra_ca_file in "
        "agent.toml). If the server presents a certificate from your company's PKI, enroll "
        "with --ca-file FILE (that PKI's CA bundle)",
    )


def _validity_problem(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> TLSProblem:
    state = "is not yet valid" if now < start else "has expired"
    return TLSProblem(
        "validity",
        f"the server's certificate {state}: it is valid from {_fmt(start)} "
        f"to {_fmt(end)}, and this host's clock says {_fmt(now)}",
        "Check this host's clock (timedatectl; NTP) and the server's; if both are right, "
        "the server needs a new certificate",
    )


def _name_problem(host: str, names: list[str]) -> TLSProblem:
    listed = ", ".join(names) or "no names at all"
    return TLSProblem(
        "name",
        f"the server's certificate does not carry '{host}' (the host in --server); "
        f"it carries {listed}",
        "Dial one of those names, or add this one on the server: "
        f"`fleet server --san {host.strip('[]')} ...` (repeat --san for every name), then "
        "restart it; the CA and every agent's pin stay the same (a certificate from "
        "your PKI, --tls-cert, must be re-issued with that name)",
    )


def check_tls(
    leaf_der: bytes,
    host: str,
    trusted_ca_pems: list[str],
    exc: BaseException | None = None,
    *,
    trust: str | None = None,
    now: dt.datetime | None = None,
) -> TLSCheck:
    """Check the certificate a server presented against a host name and CAs.

    Args:
        leaf_der: the server's certificate (``getpeercert(binary_form=True)``).
        host: the name the agent dialled (the host of ``--server``).
        trusted_ca_pems: PEM CAs the agent trusts; empty means the system store,
            whose verdict comes from ``exc`` alone.
        exc: the error of the handshake, when there was one: the OpenSSL code of
            an ``ssl.SSLCertVerificationError`` decides the chain check (it also
            sees intermediates).
        trust: how the trusted CAs are named in the message (default: their names).
        now: the time to check validity at (default: this host's clock).

    Raises:
        ValueError: ``leaf_der`` is not a certificate.
    """
    from cryptography import x509

    leaf = x509.load_der_x509_certificate(leaf_der)
    now = now or dt.datetime.now(dt.UTC)
    names = _names(leaf)
    subject, issuer = leaf.subject.rfc4514_string(), leaf.issuer.rfc4514_string()
    code = getattr(exc, "verify_code", None) if exc is not None else None
    problems: list[TLSProblem] = []

    if code is not None and code in CHAIN_CODES:
        chain_ok = False
    elif code is not None or not trusted_ca_pems:
        chain_ok = True  # OpenSSL got past the chain, or the system store's verdict is unknown
    else:
        chain_ok = _issued_by_any(leaf, trusted_ca_pems)
    if not chain_ok:
        problems.append(_chain_problem(issuer, trust or _trusted_names(trusted_ca_pems)))
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start or now > end:
        problems.append(_validity_problem(start, end, now))
    if not _name_matches(host, names):
        problems.append(_name_problem(host, names))
    if not problems and exc is not None:
        problems.append(
            TLSProblem(
                "other",
                f"TLS verification failed ({getattr(exc, 'verify_message', None) or exc}) "
                f"although the certificate's chain, dates and names look right; issuer "
                f"'{issuer}', names {', '.join(names) or 'none'}",
                "Check that this port serves the control plane's TLS and that nothing on "
                "the path (proxy, load balancer) ends or alters it",
            )
        )
    return TLSCheck(
        host=host,
        problems=tuple(problems),
        subject=subject,
        issuer=issuer,
        names=tuple(names),
        not_before=start,
        not_after=end,
    )


def explain_tls_failure(
    leaf_der: bytes,
    host: str,
    trusted_ca_pems: list[str],
    exc: ssl.SSLError | None,
    *,
    trust: str = "the pinned fleet CA",
) -> str:
    """:func:`check_tls`'s message, for an error the operator reads."""
    try:
        return check_tls(leaf_der, host, trusted_ca_pems, exc, trust=trust).message
    except ValueError as bad:
        detail = getattr(exc, "verify_message", None) or exc
        return (
            f"TLS verification of {host} failed ({detail}); its certificate is unreadable ({bad})"
        )


async def explain_isolated(
    leaf_der: bytes,
    host: str,
    trusted_ca_pems: list[str],
    exc: ssl.SSLCertVerificationError,
    *,
    trust: str,
) -> str:
    """:func:`explain_tls_failure` in a child process (``python -m agent.tls``).

    Keeps ``cryptography`` out of the long-running agent's memory.  If the child
    fails, the OpenSSL message is returned as it is.
    """
    request = {
        "leaf": base64.b64encode(leaf_der).decode("ascii"),
        "host": host,
        "cas": trusted_ca_pems,
        "verify_code": exc.verify_code,
        "verify_message": exc.verify_message,
        "trust": trust,
    }
    fallback = f"TLS verification of {host} failed ({exc.verify_message or exc})"
    from agent._child import run_module

    try:
        code, out, _ = await run_module(
            "agent.tls", stdin=json.dumps(request).encode("utf-8"), timeout_s=_CHILD_TIMEOUT_S
        )
    except (TimeoutError, OSError):
        return fallback
    text = out.decode("utf-8", errors="replace").strip()
    return text if code == 0 and text else fallback


def _main() -> int:
    """``python -m agent.tls`` with a JSON request on stdin; prints the explanation."""
    request = json.loads(sys.stdin.read())
    exc = ssl.SSLCertVerificationError(request.get("verify_message") or "verification failed")
    exc.verify_code = request.get("verify_code")
    exc.verify_message = request.get("verify_message")
    print(
        explain_tls_failure(
            base64.b64decode(request["leaf"]),
            request["host"],
            list(request.get("cas") or []),
            exc,
            trust=str(request.get("trust") or "the trusted CAs"),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main())
