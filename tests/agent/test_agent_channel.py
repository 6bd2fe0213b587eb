"""The agent's side of the channel against a scripted control plane over real TLS.

The real control plane cannot be made to send an unknown command, flood the
work queue or refuse a renewal on cue; this scripted one speaks the protocol
through ``fleet.protocol`` and checks what the agent answers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection, serve

from agent import __version__
from agent.backoff import FullJitter
from agent.channel import Agent
from agent.config import load_config
from agent.errors import Revoked
from agent.keys import generate_key_pem
from agent.logs import LogBook
from agent.state import Identity
from fleet import protocol as P
from fleet.protocol import AUTH_CONTEXT
from tests.agent.certs import Issued, ca_and_leaf
from tests.helpers.server import wait_for

pytestmark = pytest.mark.timeout(60)


def _agent_cert(ca: Issued, key_pem: bytes, lifetime: dt.timedelta) -> bytes:
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return _cert_for(ca, key.public_key(), lifetime)


def _cert_for(ca: Issued, public_key: ec.EllipticCurvePublicKey, lifetime: dt.timedelta) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "scripted")]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Scripted:
    """A control plane whose every connection the test drives by hand."""

    url: str
    connections: asyncio.Queue[ServerConnection]
    ca: Issued
    state_dir: Path
    books: list[LogBook]

    async def next(self) -> ServerConnection:
        async with asyncio.timeout(15):
            return await self.connections.get()


@contextlib.asynccontextmanager
async def scripted_server(tmp_path: Path) -> AsyncIterator[Scripted]:
    ca, leaf = ca_and_leaf("Scripted CA")
    cert, key = leaf.write(tmp_path, "server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    connections: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None and ws.request.path == "/v1/agent/connect"
        await connections.put(ws)
        await ws.wait_closed()

    books: list[LogBook] = []
    async with serve(handler, "127.0.0.1", 0, ssl=context, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        try:
            yield Scripted(f"https://127.0.0.1:{port}", connections, ca, tmp_path / "state", books)
        finally:
            for book in books:
                book.close()


def make_agent(
    cp: Scripted, cert_life: dt.timedelta = dt.timedelta(hours=24), **flags: object
) -> Agent:
    state = cp.state_dir
    state.mkdir(mode=0o700)
    key_pem = generate_key_pem()
    (state / "key.pem").write_bytes(key_pem)
    (state / "key.pem").chmod(0o600)
    (state / "cert.pem").write_bytes(_agent_cert(cp.ca, key_pem, cert_life))
    (state / "ca.pem").write_bytes(cp.ca.cert_pem)
    identity = Identity(state, "ag_scripted", "scripted", "p", cp.url)
    config = load_config(file=None, env={}, flags={"proxy": None, **flags})
    logbook = LogBook(state / "logs", max_bytes=1 << 20, backups=1, ring_lines=100)
    cp.books.append(logbook)
    return Agent(identity, config, logbook, backoff=FullJitter(rng=lambda: 0.01))


async def recv(ws: ServerConnection, kind: type, *, skip: tuple[type, ...] = (P.Heartbeat,)):
    """The next agent message of ``kind``, skipping heartbeats (and ``skip``)."""
    async with asyncio.timeout(10):
        while True:
            message = P.parse_agent_message(await ws.recv())
            if isinstance(message, kind):
                return message
            assert isinstance(message, skip), f"unexpected {message!r}"


async def handshake(
    ws: ServerConnection,
    interval: float = 0.2,
    pinned: str | None = None,
    accepts: tuple[str, ...] = (),
) -> P.Auth:
    nonce = "a1" * 32
    await ws.send(P.dump(P.Hello(protocol_version=1, server_version="x", nonce=nonce)))
    auth = await recv(ws, P.Auth)
    cert = x509.load_pem_x509_certificate(auth.certificate_pem.encode())
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(  # raises if the proof of possession is wrong
        base64.b64decode(auth.signature), (AUTH_CONTEXT + nonce).encode(), ec.ECDSA(hashes.SHA256())
    )
    welcome = P.Welcome(
        agent_id=auth.agent_id,
        heartbeat_interval_s=interval,
        pinned_version=pinned,
        accepts=list(accepts),
    )
    await ws.send(P.dump(welcome))
    return auth


async def test_heartbeats_time_probes_commands_busy_and_revocation(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(
            cp,
            max_concurrency=1,
            max_queue=1,
            allow_cidrs=["127.0.0.0/8"],
            allow_ports=["1-65535"],
        )
        task = asyncio.create_task(agent.run(handle_signals=False))
        ws = await cp.next()
        auth = await handshake(ws)
        assert (auth.agent_id, auth.version, auth.protocol_version) == (
            "ag_scripted",
            __version__,
            P.PROTOCOL_VERSION,
        )

        beats = [await recv(ws, P.Heartbeat, skip=()) for _ in range(3)]
        assert [b.seq for b in beats] == [0, 1, 2]
        gaps = [b.sent_at - a.sent_at for a, b in itertools.pairwise(beats)]
        assert all(0.15 < gap < 0.6 for gap in gaps), gaps
        assert beats[0].config_hash == agent.config.hash()
        assert {b.version for b in beats} == {__version__}
        assert beats[0].cert_not_after == agent.cert.not_after

        t1 = time.time()
        await ws.send(P.dump(P.TimeProbe(id=7, t1=t1)))
        reply = await recv(ws, P.TimeReply)
        assert (reply.id, reply.t1) == (7, t1)
        assert t1 <= reply.t2 <= reply.t3 <= time.time()

        await ws.send(
            '{"type":"command","request_id":"u1","timeout_s":5,"command":{"kind":"self_upgrade"}}'
        )
        answer = await recv(ws, P.CommandFinished)
        assert answer.request_id == "u1" and answer.error is not None
        assert answer.error.code == "unsupported"

        # A TLS probe of a listener that never answers holds the only worker...
        hold = asyncio.Event()

        async def silent(reader, writer):
            await hold.wait()
            writer.close()

        listener = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        slow = P.ProbeCommand(host="127.0.0.1", port=port, tls=True, timeout_s=1.0)
        await ws.send(P.dump(P.CommandRequest(request_id="p1", timeout_s=5, command=slow)))
        await ws.send(
            P.dump(P.CommandRequest(request_id="c1", timeout_s=5, command=P.ConfigCommand()))
        )
        # ...so the next command is refused as busy, and heartbeats show the depth.
        busy = await recv(ws, P.CommandFinished)
        assert busy.request_id == "c1" and busy.error is not None and busy.error.code == "busy"
        deep = await recv(ws, P.Heartbeat, skip=())
        assert deep.queue_depth == 1
        done = await recv(ws, P.CommandFinished)
        assert done.request_id == "p1" and isinstance(done.result, P.ProbeResult)
        assert done.result.failure == "timeout"
        hold.set()
        listener.close()

        await ws.send(
            P.dump(P.CommandRequest(request_id="c2", timeout_s=5, command=P.ConfigCommand()))
        )
        config = await recv(ws, P.CommandFinished)
        assert isinstance(config.result, P.ConfigResult)
        assert config.result.hash == agent.config.hash()
        assert config.result.config["max_queue"] == 1

        await ws.send(P.dump(P.ErrorMessage(code=4004, message="revoked by alice")))
        await ws.close(4004, "revoked")
        with pytest.raises(Revoked, match="revoked by alice"):
            async with asyncio.timeout(10):
                await task


async def test_reconnects_after_a_refused_authentication_and_stops_cleanly(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)
        agent.runner.logbook.install("info", stderr=False)
        task = asyncio.create_task(agent.run(handle_signals=False))
        first = await cp.next()
        await first.send(P.dump(P.Hello(protocol_version=1, server_version="x", nonce="00")))
        await recv(first, P.Auth)
        await first.send(P.dump(P.ErrorMessage(code=4001, message="unknown agent")))
        await first.close(4001, "unknown agent")

        second = await cp.next()  # it came back on its own
        await handshake(second, pinned="9.9.9")
        await recv(second, P.Heartbeat, skip=())
        lines, _ = agent.runner.logbook.tail(50)
        text = "\n".join(lines)
        assert "unauthenticated" in text and "unknown agent" in text and "reconnecting in" in text
        assert f"version drift: this agent runs {__version__}, its pool is pinned to 9.9.9" in text
        agent.request_stop()
        async with asyncio.timeout(10):
            await task  # returns: a stop is not an error
        await second.wait_closed()
        assert second.close_code == 1000


async def test_a_rate_limit_close_widens_the_reconnect_window(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)  # draws 1 % of each window
        task = asyncio.create_task(agent.run(handle_signals=False))
        ws = await cp.next()
        await handshake(ws)
        await ws.send(P.dump(P.ErrorMessage(code=P.CloseCode.RATE_LIMITED, message="slow down")))
        await ws.close(P.CloseCode.RATE_LIMITED, "slow down")
        closed = time.monotonic()
        second = await cp.next()
        waited = time.monotonic() - closed
        # 1 % of a window of at least 32 s, where a first failure would wait 1 % of 1 s.
        assert waited >= 0.3, waited
        assert agent.backoff.window() >= 32
        agent.request_stop()
        async with asyncio.timeout(10):
            await task
        await second.wait_closed()


async def _renew_request(ws: ServerConnection, state: Path) -> tuple[P.RenewRequest, bytes]:
    """The agent's next renewal request, for a new key waiting in key.pem.new (0600)."""
    request = await recv(ws, P.RenewRequest)
    csr = x509.load_pem_x509_csr(request.csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=scripted"
    new_key = (state / "key.pem.new").read_bytes()
    assert (state / "key.pem.new").stat().st_mode & 0o777 == 0o600
    assert csr.public_key() == _public(new_key) != _public((state / "key.pem").read_bytes())
    return request, new_key


def _public(key_pem: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key()


async def _gone(path: Path) -> None:
    """Wait until the agent removed ``path`` (a discarded key)."""
    await asyncio.to_thread(wait_for, lambda: not path.exists(), 10, 0.02, f"{path} removed")


async def test_renewal_refused_or_lost_keeps_the_old_pair_and_a_granted_one_reconnects_at_once(
    tmp_path,
):
    async with scripted_server(tmp_path) as cp:
        # Backdated 5 min with 1 min left: past two thirds of its life at once.
        agent = make_agent(cp, cert_life=dt.timedelta(minutes=1))
        state = cp.state_dir
        old_key, old_cert = (state / "key.pem").read_bytes(), (state / "cert.pem").read_bytes()
        task = asyncio.create_task(agent.run(handle_signals=False))
        ws = await cp.next()
        await handshake(ws)

        # Refused: the channel stays, the new key is discarded.
        await _renew_request(ws, state)
        await ws.send(P.dump(P.RenewResponse(error="CA offline")))
        await recv(ws, P.Heartbeat, skip=())  # still connected after the refusal
        await _gone(state / "key.pem.new")

        # The next attempt comes later (15 s doubling); on a new channel it comes at
        # once.  Its answer is lost with the connection: the old pair is kept and
        # authenticates again.
        agent.backoff = FullJitter(rng=lambda: 0.01)
        await ws.close(1012, "restart")
        ws = await cp.next()
        await handshake(ws)
        await _renew_request(ws, state)
        await ws.close(1012, "restart")
        ws = await cp.next()
        assert (await handshake(ws)).certificate_pem.encode() == old_cert
        assert not (state / "key.pem.new").exists()

        # A certificate for another key than the CSR's is not installed: it would
        # lock the agent out.
        await _renew_request(ws, state)
        stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
        wrong = _cert_for(cp.ca, stranger, dt.timedelta(hours=24))
        await ws.send(P.dump(P.RenewResponse(certificate_pem=wrong.decode())))
        await _gone(state / "key.pem.new")
        assert (state / "key.pem").read_bytes() == old_key
        assert (state / "cert.pem").read_bytes() == old_cert

        # Granted: the new pair is installed and used at once (a normal close with
        # its reason, then a new channel without any backoff wait).
        await ws.close(1012, "restart")
        ws = await cp.next()
        await handshake(ws)
        request, new_key = await _renew_request(ws, state)
        csr = x509.load_pem_x509_csr(request.csr_pem.encode())
        fresh = _cert_for(cp.ca, csr.public_key(), dt.timedelta(hours=24))
        agent.backoff = FullJitter(base_s=60.0, rng=lambda: 0.99)  # a wait would be 59 s
        await ws.send(P.dump(P.RenewResponse(certificate_pem=fresh.decode())))
        await ws.wait_closed()
        closed = time.monotonic()
        assert (ws.close_code, ws.close_reason) == (
            1000,
            "renewed with a new key; reconnecting with it",
        )
        ws = await cp.next()
        assert time.monotonic() - closed < 5
        auth = await handshake(ws)  # the proof of possession checks the new key
        assert auth.certificate_pem.encode() == fresh
        assert (state / "key.pem").read_bytes() == new_key != old_key
        assert (state / "cert.pem").read_bytes() == fresh
        assert (state / "key.pem").stat().st_mode & 0o777 == 0o600
        assert sorted(p.name for p in state.iterdir() if ".new" in p.name) == []
        # Heartbeats carry the new expiry; no renewal again so soon.
        beat = await recv(ws, P.Heartbeat, skip=())
        assert beat.cert_not_after == agent.cert.not_after > time.time() + 23 * 3600
        agent.request_stop()
        async with asyncio.timeout(10):
            await task
        # The planned reconnect is no disconnect to report: only the server's closes are.
        assert {d.code for d in agent.disconnects.unreported()} == {1012}
