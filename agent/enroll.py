"""``fleet agent enroll``: trade a one-time token for a certificate.

Order matters.  By default the server's CA is fetched without verification and
checked against the pin the operator was given; then a connection is opened
whose TLS that CA verifies.  If that CA did not sign the server's certificate
(the server presents one from the company's PKI), the system trust store may
verify it instead; with ``--ca-file`` that bundle does, from the start.  Over the
verified connection the control plane's own CA is fetched again and checked
against the pin, and only then is the token sent.  The trust mode is recorded so
that ``fleet agent run`` verifies the channel the same way (:mod:`agent.tls`).
The key is made here and never leaves the host; the control plane signs a CSR.
"""

from __future__ import annotations

import dataclasses
import hmac
import http.client
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import (
    ConfigError,
    EnrollError,
    PinMismatch,
    ServerUnreachable,
    TLSRefused,
    TokenRejected,
)
from agent.https import Connection, ProxyError, Response, Target, peer_certificate, unverified
from agent.keys import csr_pem, generate_key_pem
from agent.state import RENEWAL_FILES, Identity, save_identity
from agent.tls import CHAIN_CODES, TrustMode, client_context, explain_tls_failure
from agent.versions import Versions
from fleet import __version__
from fleet.files import write_private, write_public
from fleet.pins import check_pin_text, spki_pin
from fleet.protocol import RELEASE_KEY_PREFIX
from fleet.units import check_name

__all__ = ["EnrollRequest", "agent_name", "enroll", "read_token"]

log = logging.getLogger("agent.enroll")

_TOKEN_ENV = "FLEET_ENROLL_TOKEN"  # noqa: S105 - a variable name, not a secret


@dataclass(frozen=True)
class EnrollRequest:
    """What ``fleet agent enroll`` was asked to do."""

    server: str
    ca_pin: str
    token: str
    state_dir: Path
    name: str | None = None
    force: bool = False
    ca_file: Path | None = None
    """Verify the server's TLS with this CA bundle (the company's PKI), not the pinned CA."""
    extra_ca_file: Path | None = None
    """More CAs to trust for TLS (an SSL-inspecting proxy the security team allows)."""


def agent_name(given: str | None, host_name: str | None = None) -> str:
    """The name to enroll with: ``given`` (``--name``), else this host's name.

    Raises:
        ConfigError: the host name breaks the name rule (:func:`fleet.units.check_name`);
            the message says to pass ``--name NAME``.
    """
    if given is not None:
        return check_name("agent", given)
    host = host_name if host_name is not None else socket.gethostname()
    try:
        return check_name("agent", host)
    except ValueError as exc:
        raise ConfigError(
            f"this host's name cannot be the agent's name ({exc}); "
            "pass --name NAME with a name that follows that rule"
        ) from None


def read_token(token_file: Path | None, env: dict[str, str] | os._Environ[str]) -> str:
    """The enrollment token from ``token_file``, else from ``FLEET_ENROLL_TOKEN``.

    Raises:
        EnrollError: neither gives a token.
    """
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise EnrollError(f"cannot read the token file {token_file}: {exc.strerror}") from None
        if not token:
            raise EnrollError(f"the token file {token_file} is empty")
        return token
    token = env.get(_TOKEN_ENV, "").strip()
    if not token:
        raise EnrollError(
            f"no enrollment token: pass --token-file PATH or set {_TOKEN_ENV} "
            "(never on the command line, where other users can read it)"
        )
    return token


def _unreachable(server: str, exc: Exception) -> ServerUnreachable:
    return ServerUnreachable(
        f"cannot reach the control plane at {server}: {exc.__class__.__name__}: {exc}. "
        "Check the URL, DNS, the firewall, and HTTPS_PROXY/NO_PROXY if a proxy is needed."
    )


def _explain(target: Target, exc: ssl.SSLCertVerificationError, cas: list[str], trust: str) -> str:
    """Why the handshake was refused, from the certificate read again unverified."""
    try:
        leaf = peer_certificate(target)
    except OSError:
        text = f"TLS verification of {target.host} failed ({exc.verify_message or exc})"
    else:
        text = explain_tls_failure(leaf, target.host, cas, exc, trust=trust)
    return f"{text} The token was NOT sent."


def _open(target: Target, context: ssl.SSLContext, server: str) -> Connection:
    """A connection whose handshake completed; TLS verification errors pass through."""
    conn = Connection(target, context)
    try:
        conn.open()
    except ssl.SSLCertVerificationError:
        conn.close()
        raise
    except ssl.SSLError as exc:
        conn.close()
        raise EnrollError(
            f"the TLS handshake with {target.describe()} failed ({exc.reason or exc}); "
            f"is {server} the control plane's https:// URL (not a plain-HTTP port)?"
        ) from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise _unreachable(server, exc) from None
    return conn


def _verified(
    target: Target, context: ssl.SSLContext, server: str, cas: list[str], trust: str
) -> Connection:
    try:
        return _open(target, context, server)
    except ssl.SSLCertVerificationError as exc:
        raise TLSRefused(_explain(target, exc, cas, trust)) from None


def _pinned_or_system(
    target: Target, server: str, ca_pem: str, extra: list[str], extra_file: Path | None
) -> tuple[Connection, TrustMode]:
    """TLS verified by the pinned CA; else, when it did not sign the chain, the system store."""
    try:
        return _open(
            target, client_context("pinned", ca_pem=ca_pem, extra_ca_file=extra_file), server
        ), "pinned"
    except ssl.SSLCertVerificationError as exc:
        pinned_exc = exc
    if pinned_exc.verify_code in CHAIN_CODES:
        try:
            conn = _open(target, client_context("system", extra_ca_file=extra_file), server)
        except ssl.SSLCertVerificationError as system_exc:
            if system_exc.verify_code not in CHAIN_CODES:
                # The system store vouches for the chain: the name or dates are wrong.
                trust = "the system trust store"
                raise TLSRefused(_explain(target, system_exc, [], trust)) from None
        else:
            log.info("the server's certificate is from a CA the system trusts (PKI mode)")
            return conn, "system"
    trust = "the pinned fleet CA, the system trust store"
    if extra_file is not None:
        trust += f", --extra-ca-file {extra_file}"
    raise TLSRefused(_explain(target, pinned_exc, [ca_pem, *extra], trust))


def _get_ca(conn: Connection, server: str) -> str:
    try:
        response = conn.request("GET", "/v1/ca")
    except (OSError, http.client.HTTPException) as exc:
        raise _unreachable(server, exc) from None
    if response.status != 200 or "BEGIN CERTIFICATE" not in response.text:
        raise EnrollError(
            f"{server}/v1/ca answered {response.status} without a CA certificate; "
            "is this a fleet control plane URL?"
        )
    return response.text


def _check_pin(ca_pem: str, pin: str) -> None:
    try:
        actual = spki_pin(ca_pem)
    except ValueError as exc:
        raise EnrollError(f"the server's CA certificate is unreadable: {exc}") from None
    if not hmac.compare_digest(actual, pin):
        raise PinMismatch(
            f"the server's CA key is {actual}, but the pin given is {pin}. "
            "The token was NOT sent. Check that --server and --ca-pin come from the same "
            "control plane (`fleet token create` prints both); if they do, something "
            "between this host and the server is intercepting TLS."
        )


def _post_enroll(conn: Connection, req: EnrollRequest, csr: str, name: str) -> dict[str, Any]:
    body = {"token": req.token, "csr_pem": csr, "name": name, "version": __version__}
    try:
        response = conn.request("POST", "/v1/enroll", body)
    except (OSError, http.client.HTTPException) as exc:
        raise _unreachable(req.server, exc) from None
    detail = _detail(response)
    if response.status == 401:
        raise TokenRejected(
            f"the control plane refused the token: {detail}. "
            "Ask an admin for a new enrollment token (`fleet token create --pool POOL`); "
            "tokens expire (30 min by default) and are single-use unless made otherwise."
        )
    if response.status != 201:
        raise EnrollError(f"enrollment failed ({response.status}): {detail}")
    try:
        doc = response.json()
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        for key in ("agent_id", "name", "pool", "certificate_pem", "ca_pem"):
            if not isinstance(doc.get(key), str):
                raise ValueError(key)
        port = doc.get("channel_port")
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError("channel_port")
    except ValueError as exc:
        raise EnrollError(f"the enrollment answer is malformed ({exc})") from None
    return dict(doc)


def _detail(response: Response) -> str:
    try:
        doc = response.json()
        detail = doc.get("detail") if isinstance(doc, dict) else None
    except ValueError:
        detail = None
    return str(detail) if detail else response.text[:200] or response.reason


def _read_cas(path: Path | None, flag: str) -> list[str]:
    if path is None:
        return []
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnrollError(f"cannot read {flag} {path}: {exc}") from None
    try:
        ssl.create_default_context(cadata=text)
    except (ssl.SSLError, ValueError):
        raise EnrollError(f"{flag} {path} holds no usable PEM CA certificate") from None
    return [text]


def _connect(req: EnrollRequest, server: str) -> tuple[Connection, TrustMode, str | None]:
    """A TLS-verified connection to the server, its trust mode and (ca-file) the bundle."""
    try:
        target = Target.of(server)
    except ProxyError as exc:
        raise EnrollError(str(exc)) from None
    extra = _read_cas(req.extra_ca_file, "--extra-ca-file")
    if req.ca_file is not None:
        [bundle] = _read_cas(req.ca_file, "--ca-file")
        try:
            context = client_context(
                "ca-file", ca_file=req.ca_file, extra_ca_file=req.extra_ca_file
            )
        except (OSError, ssl.SSLError) as exc:
            raise EnrollError(f"cannot use --ca-file {req.ca_file}: {exc}") from None
        trust = f"--ca-file {req.ca_file}"
        if req.extra_ca_file is not None:
            trust += f", --extra-ca-file {req.extra_ca_file}"
        return _verified(target, context, server, [bundle, *extra], trust), "ca-file", bundle
    # Unverified on purpose: the pin, not the TLS chain, decides whether to trust it.
    with _unverified_open(target, server) as probe:
        ca_pem = _get_ca(probe, server)
    _check_pin(ca_pem, req.ca_pin)
    conn, mode = _pinned_or_system(target, server, ca_pem, extra, req.extra_ca_file)
    return conn, mode, None


def _unverified_open(target: Target, server: str) -> Connection:
    return _open(target, unverified(), server)


def enroll(req: EnrollRequest) -> Identity:
    """Enroll with the control plane and write the state directory.

    Raises:
        EnrollError: with what happened and what to do.
    """
    try:
        req = dataclasses.replace(req, ca_pin=check_pin_text(req.ca_pin))
    except ValueError as exc:
        raise EnrollError(str(exc)) from None
    server = req.server.rstrip("/")
    if not server.startswith("https://"):
        raise EnrollError(f"--server must be an https:// URL, not {req.server!r}")
    state_dir = req.state_dir
    if (state_dir / "agent.json").exists() and not req.force:
        raise EnrollError(
            f"{state_dir} already holds an enrolled agent; use another --state-dir, "
            "or --force to replace its identity"
        )
    name = agent_name(req.name)

    conn, mode, bundle = _connect(req, server)
    with conn:
        # Over the verified connection, whatever verified it: the control plane's own
        # CA must match the pin before the token goes (as Teleport does).
        _check_pin(_get_ca(conn, server), req.ca_pin)
        log.info("the server's CA matches the pin %s (TLS trust: %s)", req.ca_pin, mode)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_pem = generate_key_pem()
        csr = csr_pem(key_pem, name)
        doc = _post_enroll(conn, dataclasses.replace(req, server=server), csr, name)
    _check_pin(doc["ca_pem"], req.ca_pin)
    # The key is written only once the control plane accepted its CSR, so a failed
    # enrollment leaves no orphan key behind.  A renewal of the identity replaced
    # (--force) that a crash left half done must not be finished over this one.
    for leftover in RENEWAL_FILES:
        (state_dir / leftover).unlink(missing_ok=True)
    write_private(state_dir / "key.pem", key_pem)
    write_public(state_dir / "cert.pem", doc["certificate_pem"].encode("ascii"))
    write_public(state_dir / "ca.pem", doc["ca_pem"].encode("ascii"))
    if bundle is not None:
        write_public(state_dir / "server-ca.pem", bundle.encode("ascii"))
    release_key = doc.get("release_key")
    if isinstance(release_key, str) and release_key.startswith(RELEASE_KEY_PREFIX):
        # Kept for good: releases are verified with it (agent.upgrader).
        write_public(Versions(state_dir).release_key_file, (release_key + "\n").encode("ascii"))
    identity = Identity(
        state_dir=state_dir,
        agent_id=doc["agent_id"],
        name=doc["name"],
        pool=doc["pool"],
        server=server,
        channel_port=doc.get("channel_port"),
        tls_trust=mode,
    )
    save_identity(identity)
    return identity
