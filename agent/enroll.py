"""``fleet agent enroll``: trade a one-time token for a certificate.

Order matters: the server's CA is fetched without verification and checked
against the pin the operator was given; only then is the token sent, over TLS
verified against that CA.  The key is made here and never leaves the host; the
control plane signs a CSR.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import EnrollError, PinMismatch, ServerUnreachable, TokenRejected
from agent.keys import csr_pem, generate_key_pem, spki_pin
from agent.state import Identity, save_identity, write_private, write_public
from fleet import __version__

__all__ = ["EnrollRequest", "enroll", "read_token"]

log = logging.getLogger("agent.enroll")

_PIN_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TOKEN_ENV = "FLEET_ENROLL_TOKEN"  # noqa: S105 - a variable name, not a secret
_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class EnrollRequest:
    """What ``fleet agent enroll`` was asked to do."""

    server: str
    ca_pin: str
    token: str
    state_dir: Path
    name: str | None = None
    force: bool = False


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


def _fetch_ca(server: str) -> str:
    import httpx

    # Unverified on purpose: the pin, not the TLS chain, decides whether to trust it.
    try:
        with httpx.Client(verify=False, timeout=_TIMEOUT_S) as client:  # noqa: S501
            response = client.get(f"{server}/v1/ca")
    except httpx.HTTPError as exc:
        raise _unreachable(server, exc) from None
    if response.status_code != 200 or "BEGIN CERTIFICATE" not in response.text:
        raise EnrollError(
            f"{server}/v1/ca answered {response.status_code} without a CA certificate; "
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


def _post_enroll(req: EnrollRequest, ca_pem: str, csr: str, name: str) -> dict[str, Any]:
    import httpx

    context = ssl.create_default_context(cadata=ca_pem)
    body = {"token": req.token, "csr_pem": csr, "name": name, "version": __version__}
    try:
        with httpx.Client(verify=context, timeout=_TIMEOUT_S) as client:
            response = client.post(f"{req.server}/v1/enroll", json=body)
    except httpx.ConnectError as exc:
        if isinstance(exc.__context__, ssl.SSLError) or "CERTIFICATE" in str(exc).upper():
            raise EnrollError(
                f"the server's TLS certificate is not signed by the pinned CA ({exc}). "
                "The token was not accepted by anyone; check the server URL."
            ) from None
        raise _unreachable(req.server, exc) from None
    except httpx.HTTPError as exc:
        raise _unreachable(req.server, exc) from None
    detail = _detail(response)
    if response.status_code == 401:
        raise TokenRejected(
            f"the control plane refused the token: {detail}. "
            "Ask an admin for a new enrollment token (`fleet token create --pool POOL`); "
            "tokens expire (30 min by default) and are single-use unless made otherwise."
        )
    if response.status_code != 201:
        raise EnrollError(f"enrollment failed ({response.status_code}): {detail}")
    try:
        doc = response.json()
        for key in ("agent_id", "name", "pool", "certificate_pem", "ca_pem"):
            if not isinstance(doc.get(key), str):
                raise ValueError(key)
        port = doc.get("channel_port")
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError("channel_port")
    except ValueError as exc:
        raise EnrollError(f"the enrollment answer is malformed ({exc})") from None
    return dict(doc)


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else response.text[:200] or response.reason_phrase


def enroll(req: EnrollRequest) -> Identity:
    """Enroll with the control plane and write the state directory.

    Raises:
        EnrollError: with what happened and what to do.
    """
    if not _PIN_RE.match(req.ca_pin):
        raise EnrollError(f"--ca-pin must look like sha256:<64 hex digits>, not {req.ca_pin!r}")
    server = req.server.rstrip("/")
    if not server.startswith("https://"):
        raise EnrollError(f"--server must be an https:// URL, not {req.server!r}")
    state_dir = req.state_dir
    if (state_dir / "agent.json").exists() and not req.force:
        raise EnrollError(
            f"{state_dir} already holds an enrolled agent; use another --state-dir, "
            "or --force to replace its identity"
        )
    name = req.name or socket.gethostname()

    ca_pem = _fetch_ca(server)
    _check_pin(ca_pem, req.ca_pin)
    log.info("the server's CA matches the pin %s", req.ca_pin)

    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_pem = generate_key_pem()
    csr = csr_pem(key_pem, name)
    doc = _post_enroll(dataclasses.replace(req, server=server), ca_pem, csr, name)
    _check_pin(doc["ca_pem"], req.ca_pin)
    # The key is written only once the control plane accepted its CSR, so a failed
    # enrollment leaves no orphan key behind.
    write_private(state_dir / "key.pem", key_pem)
    write_public(state_dir / "cert.pem", doc["certificate_pem"].encode("ascii"))
    write_public(state_dir / "ca.pem", doc["ca_pem"].encode("ascii"))
    identity = Identity(
        state_dir=state_dir,
        agent_id=doc["agent_id"],
        name=doc["name"],
        pool=doc["pool"],
        server=server,
        channel_port=doc.get("channel_port"),
    )
    save_identity(identity)
    return identity
