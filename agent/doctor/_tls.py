"""Step 4: TLS to each port (chain, name, dates) and the control plane's CA pin.

The chain is checked as ``fleet agent run`` checks it: against the agent's
``ca.pem`` and ``extra_ca_file``, with the host name of the server URL.  On a
failure the presented certificate is fetched again without verification, to say
which check failed (:func:`agent.tls.check_tls`, the analysis enrollment and
``fleet agent run`` give too).

The pin: the control plane serves its CA at ``GET /v1/ca``; its public key must
be the one the agent enrolled with (the SPKI pin of ``STATE/ca.pem``, which
enrollment checked against the pin the operator gave).  A different key means
another control plane, or one whose data directory was recreated.
"""

from __future__ import annotations

import email.utils
import http.client
import ssl
import time
from dataclasses import dataclass

from agent.config import AgentConfig
from agent.state import Identity
from agent.tls import check_tls as analyse
from agent.tls import client_context, trusted_pems
from fleet.pins import spki_pin

from ._net import DialError, Endpoint, dial
from ._report import Report

__all__ = ["HttpDate", "agent_ssl_context", "check_pin", "check_tls", "trusted_ca_pems"]


@dataclass(frozen=True)
class HttpDate:
    """The server's ``Date`` header and when the request was sent and answered.

    Attributes:
        server: the header's time (whole seconds, truncated by the server).
        sent: local time the request left.
        received: local time the answer came.
    """

    server: float
    sent: float
    received: float


def trusted_ca_pems(identity: Identity, config: AgentConfig) -> list[str]:
    """The PEM texts the agent trusts, as ``fleet agent run`` does (its trust mode)."""
    return trusted_pems(identity.trust_file, config.extra_ca_file)


def agent_ssl_context(identity: Identity, config: AgentConfig) -> ssl.SSLContext:
    """The TLS settings of ``fleet agent run``: :func:`agent.tls.client_context`."""
    return client_context(
        identity.tls_trust, ca_file=identity.trust_file, extra_ca_file=config.extra_ca_file
    )


def _unverified_context() -> ssl.SSLContext:
    # Only to read what the server presents, or to fetch a CA the pin then judges.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _open(ep: Endpoint, context: ssl.SSLContext, timeout_s: float) -> ssl.SSLSocket:
    sock, _ = dial(ep, timeout_s)
    try:
        return context.wrap_socket(sock, server_hostname=ep.host)
    except BaseException:
        sock.close()
        raise


def _presented_leaf(ep: Endpoint, timeout_s: float) -> bytes | None:
    try:
        with _open(ep, _unverified_context(), timeout_s) as tls:
            return tls.getpeercert(binary_form=True)
    except (DialError, OSError):
        return None


def check_tls(
    report: Report, ep: Endpoint, identity: Identity, config: AgentConfig, timeout_s: float
) -> bool:
    """Handshake with ``ep`` as the agent does; explain a failure. Returns success."""
    try:
        with _open(ep, agent_ssl_context(identity, config), timeout_s) as tls:
            leaf = tls.getpeercert(binary_form=True)
            version = tls.version()
        error: BaseException | None = None
    except DialError as exc:
        report.fail("tls", str(exc), exc.fix)
        return False
    except (ssl.SSLError, OSError) as exc:
        error, leaf, version = exc, _presented_leaf(ep, timeout_s), None
    if leaf is None:
        report.fail(
            "tls",
            f"{ep.where} ({ep.label} port): no TLS handshake ({error})",
            "check that this port serves the control plane over TLS and that nothing on "
            "the path (proxy, load balancer) ends or alters TLS",
        )
        return False
    try:
        finding = analyse(leaf, ep.host, trusted_ca_pems(identity, config), error)
    except ValueError as exc:
        report.fail(
            "tls",
            f"{ep.where} ({ep.label} port): the certificate presented is unreadable ({exc})",
            "check that this port serves the control plane over TLS",
        )
        return False
    if error is None:  # OpenSSL verified chain, dates and name (intermediates included)
        via = "" if _issued_by_enrolled(finding.issuer, identity) else " through extra_ca_file"
        report.ok(
            "tls",
            f"{ep.where} ({ep.label} port): {version}, chain from '{finding.issuer}'{via}, "
            f"name {ep.host} in the certificate",
        )
        return True
    for problem in finding.problems:
        report.fail("tls", f"{ep.where} ({ep.label} port): {problem.detail}", problem.fix)
    return False


def _issued_by_enrolled(issuer: str, identity: Identity) -> bool:
    """Whether the CAs of the agent's trust mode (not extra_ca_file) issued the certificate."""
    from cryptography import x509

    if identity.trust_file is None:
        return True  # the system trust store: OpenSSL's verdict is all there is
    cas = x509.load_pem_x509_certificates(identity.trust_file.read_bytes())
    return any(ca.subject.rfc4514_string() == issuer for ca in cas)


def _get_ca(ep: Endpoint, timeout_s: float) -> tuple[int, str, HttpDate | None]:
    with _open(ep, _unverified_context(), timeout_s) as tls:
        sent = time.time()
        host = ep.where if ep.port != 443 else ep.host
        request = f"GET /v1/ca HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode("ascii"))
        response = http.client.HTTPResponse(tls)
        response.begin()
        body = response.read(1 << 20).decode("ascii", errors="replace")
        received = time.time()
        date_header = response.getheader("Date")
    date = None
    if date_header:
        try:
            date = HttpDate(
                email.utils.parsedate_to_datetime(date_header).timestamp(), sent, received
            )
        except (TypeError, ValueError):
            date = None
    return response.status, body, date


def check_pin(
    report: Report, ep: Endpoint, identity: Identity, timeout_s: float
) -> HttpDate | None:
    """Compare the control plane's CA with the one the agent enrolled with.

    Returns:
        The answer's ``Date``, for the clock check when the channel gives none.
    """
    enrolled = spki_pin(identity.ca_path.read_bytes())
    try:
        status, body, date = _get_ca(ep, timeout_s)
    except DialError as exc:
        report.fail("pin", str(exc), exc.fix)
        return None
    except (OSError, http.client.HTTPException) as exc:
        report.fail(
            "pin",
            f"GET {ep.where}/v1/ca failed: {exc.__class__.__name__}: {exc}",
            "check that the server URL is the control plane's API port",
        )
        return None
    if status != 200 or "BEGIN CERTIFICATE" not in body:
        report.fail(
            "pin",
            f"GET {ep.where}/v1/ca answered {status} without a CA certificate",
            "check that agent.json's server (or the server setting) is the control plane's "
            "API URL; a proxy in between may be answering instead",
        )
        return date
    try:
        served = spki_pin(body)
    except ValueError as exc:
        report.fail("pin", f"the CA served at /v1/ca is unreadable: {exc}", "as above")
        return date
    if served != enrolled:
        report.fail(
            "pin",
            f"the control plane's CA is {served[:19]}..., but this agent enrolled with "
            f"{enrolled[:19]}...: another control plane, or its data directory was recreated",
            "if the control plane was rebuilt on purpose, enroll again with a new token "
            "and the new pin (`fleet agent enroll --force ...`); otherwise find out what "
            "answers at this address",
        )
        return date
    report.ok("pin", f"the control plane's CA matches the enrolled CA ({enrolled[:19]}...)")
    return date
