"""The agents' channel refuses a replayed authentication and certificates of another CA."""

from __future__ import annotations

import contextlib
import datetime as dt

import httpx
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.state import channel_url
from fleet.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    Hello,
    Welcome,
    dump,
    parse_server_message,
)
from fleet.simagent import Identity, enroll, sign_nonce
from tests.helpers.server import RunningServer


async def enrolled(server: RunningServer, name: str) -> Identity:
    token = server.enrollment_token()
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context()) as client:
        return await enroll(client, token, name)


async def authenticate(
    server: RunningServer, identity: Identity, certificate_pem: str, signed_nonce: str | None
) -> tuple[str, object, int | None, str]:
    """One channel attempt: (nonce of the hello, the answer, close code, close reason).

    ``signed_nonce`` is the nonce the signature covers (None: this hello's own).
    """
    url = channel_url(server.ws_url, identity.channel_port)
    async with websockets.connect(
        url, ssl=server.ssl_context(), max_size=MAX_FRAME_BYTES, proxy=None
    ) as ws:
        hello = parse_server_message(await ws.recv())
        assert isinstance(hello, Hello)
        auth = Auth(
            protocol_version=PROTOCOL_VERSION,
            agent_id=identity.agent_id,
            certificate_pem=certificate_pem,
            signature=sign_nonce(identity.key, signed_nonce or hello.nonce),
            version="1.0.0",
        )
        await ws.send(dump(auth))
        answer: object = None
        with contextlib.suppress(websockets.ConnectionClosed):
            answer = parse_server_message(await ws.recv())
            if isinstance(answer, Welcome):
                return hello.nonce, answer, None, ""
            await ws.recv()
        return hello.nonce, answer, ws.close_code, ws.close_reason or ""


def forged_certificate(server: RunningServer, identity: Identity, same_issuer_name: bool) -> str:
    """A certificate for this agent's key signed by a CA that is not the fleet's."""
    fleet_ca = x509.load_pem_x509_certificate(server.ca_file.read_bytes())
    issuer = (
        fleet_ca.subject
        if same_issuer_name
        else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Someone else's CA")])
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.agent_id)]))
        .issuer_name(issuer)
        .public_key(identity.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_replayed_authentication_is_refused(control_plane):
    identity = await enrolled(control_plane, "replayed")
    first_nonce, welcome, _, _ = await authenticate(
        control_plane, identity, identity.certificate_pem, None
    )
    assert isinstance(welcome, Welcome)
    # A recorded auth frame signs the old nonce: on a new connection it is refused.
    _, _, code, reason = await authenticate(
        control_plane, identity, identity.certificate_pem, first_nonce
    )
    assert code == CloseCode.UNAUTHENTICATED, (code, reason)
    assert "signature" in reason


async def test_certificates_of_another_ca_are_refused_even_under_the_fleet_cas_name(
    control_plane,
):
    identity = await enrolled(control_plane, "forged")
    for same_name, said in ((False, "not issued by this control plane's CA"), (True, "invalid")):
        forged = forged_certificate(control_plane, identity, same_name)
        _, answer, code, reason = await authenticate(control_plane, identity, forged, None)
        assert not isinstance(answer, Welcome)
        assert code == CloseCode.UNAUTHENTICATED, (code, reason)
        assert said in reason, reason
