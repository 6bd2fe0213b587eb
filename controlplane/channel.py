"""The agent channel: proof of possession, heartbeats, clock probes, commands, renewal."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import itertools
import logging
import secrets
import time
import uuid
from typing import TYPE_CHECKING, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fleet import __version__
from fleet.protocol import (
    AGENT_EXTRAS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    Command,
    CommandFinished,
    CommandRequest,
    Disconnects,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    ProtocolError,
    RenewRequest,
    RenewResponse,
    TimeProbe,
    TimeReply,
    UpgradeStatus,
    Welcome,
    dump,
    parse_agent_message,
    to_builtins,
)

from .errors import BadRequest, CommandTimeout, Conflict, StoreError, Unauthenticated
from .limits import TokenBucket, address_of

if TYPE_CHECKING:
    from .live import LiveAgent
    from .state import ControlPlane

__all__ = ["AgentChannel", "AgentSocket", "ChannelClosed", "StarletteSocket", "serve_agent"]

log = logging.getLogger("controlplane.channel")


class ChannelClosed(Exception):
    """The agent's side closed the websocket (``code`` as received)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class AgentSocket(Protocol):
    """What the channel needs of a websocket: the agents' own listener (plain
    websockets, see :mod:`controlplane.agent_listener`) and the route on the API
    port (Starlette) both provide it."""

    @property
    def client(self) -> str | None:
        """``host:port`` of the peer."""
        ...

    async def send_text(self, text: str) -> None:
        """Send one text frame."""
        ...

    async def receive(self) -> str | bytes:
        """The next frame; raises :class:`ChannelClosed` when the peer closed."""
        ...

    async def close_with(self, code: int, message: str) -> None:
        """Send an error frame saying why, then close with ``code`` (if still open)."""
        ...


class StarletteSocket:
    """:class:`AgentSocket` over a Starlette websocket (the API port's route)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    @property
    def client(self) -> str | None:
        return f"{self.ws.client.host}:{self.ws.client.port}" if self.ws.client else None

    async def send_text(self, text: str) -> None:
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise ChannelClosed(getattr(exc, "code", CloseCode.ABNORMAL)) from None

    async def receive(self) -> str | bytes:
        try:
            message = await self.ws.receive()
        except RuntimeError:  # receive after a disconnect
            raise ChannelClosed(CloseCode.ABNORMAL) from None
        if message["type"] == "websocket.disconnect":
            raise ChannelClosed(message.get("code", CloseCode.NORMAL))
        text: str | None = message.get("text")
        return text if text is not None else (message.get("bytes") or b"")

    async def close_with(self, code: int, message: str) -> None:
        await close_with(self.ws, code, message)


class _Close(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AgentChannel:
    """One connected agent: sends frames to it and matches command results by id."""

    def __init__(self, ws: AgentSocket, agent: LiveAgent) -> None:
        self.ws = ws
        self.agent = agent
        self.pending: dict[str, asyncio.Future[CommandFinished]] = {}
        self.time_sent: dict[int, float] = {}
        self._ids = itertools.count(1)
        self.closed = asyncio.Event()
        self.goodbye: str | None = None
        """What the agent said as it stopped on purpose (a ``goodbye`` message)."""
        self.rekeyed = False
        """A renewal for a new key was answered here: the agent closes this channel
        normally to reconnect with that key at once."""

    async def send(self, text: str) -> None:
        await self.ws.send_text(text)

    async def close(self, code: int, message: str) -> None:
        """Tell the agent why, then close with ``code``."""
        await self.ws.close_with(code, message)
        self.closed.set()

    async def request(self, command: Command, timeout_s: float) -> CommandFinished:
        """Send a command and wait for its result, at most ``timeout_s``."""
        request_id = uuid.uuid4().hex
        future: asyncio.Future[CommandFinished] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        try:
            await self.send(
                dump(CommandRequest(request_id=request_id, timeout_s=timeout_s, command=command))
            )
            async with asyncio.timeout(timeout_s + 2.0):
                return await future
        except TimeoutError:
            raise CommandTimeout(
                f"agent {self.agent.record.name} did not answer within {timeout_s:.0f} s; "
                "it may be overloaded or its network slow: retry, or check its queue depth"
            ) from None
        except ChannelClosed:
            raise Conflict(
                f"agent {self.agent.record.name} disconnected before it answered; retry "
                "when it shows connected"
            ) from None
        finally:
            self.pending.pop(request_id, None)

    def resolve(self, msg: CommandFinished) -> None:
        future = self.pending.get(msg.request_id)
        if future is not None and not future.done():
            future.set_result(msg)

    def fail_pending(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    Conflict(
                        f"agent {self.agent.record.name} disconnected before it answered; "
                        "retry when it shows connected"
                    )
                )

    async def time_probe(self) -> None:
        probe_id = next(self._ids)
        t1 = time.time()
        self.time_sent[probe_id] = t1
        await self.send(dump(TimeProbe(id=probe_id, t1=t1)))


async def close_with(ws: WebSocket, code: int, message: str) -> None:
    """Send an error frame saying why, then close with ``code``."""
    if ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.send_text(dump(ErrorMessage(code=code, message=message)))
            await ws.close(code=code, reason=message[:120])


async def _authenticate(ws: AgentSocket, cp: ControlPlane) -> LiveAgent:
    nonce = secrets.token_hex(32)
    await ws.send_text(
        dump(Hello(protocol_version=PROTOCOL_VERSION, server_version=__version__, nonce=nonce))
    )
    try:
        async with asyncio.timeout(cp.settings.auth_timeout_s):
            raw = await ws.receive()
    except TimeoutError:
        raise _Close(
            CloseCode.AUTH_TIMEOUT,
            f"no auth message within {cp.settings.auth_timeout_s:.0f} s of hello",
        ) from None
    try:
        msg = parse_agent_message(raw)
    except ProtocolError as exc:
        raise _Close(CloseCode.PROTOCOL_ERROR, str(exc)) from None
    if not isinstance(msg, Auth):
        raise _Close(CloseCode.PROTOCOL_ERROR, f"expected 'auth' first, got {msg.type!r}")
    if msg.protocol_version != PROTOCOL_VERSION:
        raise _Close(
            CloseCode.UNSUPPORTED_VERSION,
            f"protocol version {msg.protocol_version} is not supported (server speaks "
            f"{PROTOCOL_VERSION}); upgrade the agent",
        )
    try:
        signature = base64.b64decode(msg.signature, validate=True)
    except (binascii.Error, ValueError):
        raise _Close(CloseCode.UNAUTHENTICATED, "signature is not base64") from None
    try:
        agent_id, serial, not_after, key_der = cp.ca.verify_agent(
            msg.certificate_pem, nonce, signature
        )
    except Unauthenticated as exc:
        code = CloseCode.CERT_EXPIRED if exc.expired else CloseCode.UNAUTHENTICATED
        raise _Close(code, exc.message) from None
    agent = cp.fleet.agents.get(agent_id)
    if agent is None and cp.replicas is not None:
        # Enrolled through another replica a moment ago: its note may not be read yet.
        try:
            agent = await cp.replicas.lookup(agent_id)
        except StoreError as exc:
            raise _Close(CloseCode.INTERNAL_ERROR, f"{exc.message}; retry shortly") from None
    if agent is None and serial in cp.fleet.revoked_serials:
        # Decommissioned: its row is gone, its certificate stays refused.
        raise _Close(
            CloseCode.REVOKED,
            f"agent {agent_id} was decommissioned by an administrator; it must not reconnect",
        )
    if agent_id != msg.agent_id or agent is None:
        raise _Close(CloseCode.UNAUTHENTICATED, f"unknown agent {msg.agent_id!r}: enroll again")
    if agent.record.revoked:
        raise _Close(
            CloseCode.REVOKED,
            f"agent {agent.record.name} was revoked by an administrator; it must not reconnect",
        )
    if serial in cp.fleet.revoked_serials:
        # The agent is not revoked, this certificate is: a renewal with a new key
        # superseded it, so whoever holds the old key may no longer connect.
        raise _Close(
            CloseCode.UNAUTHENTICATED,
            f"certificate {serial} of agent {agent.record.name} was superseded by a renewal "
            "with a new key; the agent must use its renewed certificate, or enroll again",
        )
    superseded = await cp.rekeys.first_use(agent.id, agent.record.name, serial)
    if superseded is not None:
        # The first use of a renewal's new key: the older certificates are refused.
        cp.fleet.revoked_serials.update(superseded)
        agent.record.cert_serial = serial
        agent.record.cert_not_after = not_after
    agent.cert_not_after = not_after
    agent.key_der = key_der
    agent.version = msg.version
    return agent


async def _admit(ws: AgentSocket, cp: ControlPlane, address: str) -> LiveAgent | None:
    """Authenticate within the limits of ``address``; None when refused (and closed).

    Failures before authentication are counted per address and audited as one
    row per address and window (anyone can open a socket and fail).
    """
    if not cp.pending.acquire(address):
        why = f"over {cp.pending.cap} unauthenticated connections from {address}"
        cp.refusals.note("anonymous", "channel.connections", address, why)
        await ws.close_with(CloseCode.RATE_LIMITED, f"{why}: back off and retry")
        return None
    try:
        return await _authenticate(ws, cp)
    except _Close as close:
        wait = cp.auth_failed(address, "channel.auth", close.message)
        if wait is None:
            await ws.close_with(close.code, close.message)
        else:
            await ws.close_with(
                CloseCode.RATE_LIMITED,
                f"{close.message}; too many failed authentications from {address}: "
                f"back off {wait:.0f} s",
            )
    except ChannelClosed as exc:
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            cp.auth_failed(
                address, "channel.auth", f"frame over the {MAX_FRAME_BYTES} byte limit (close 1009)"
            )
    finally:
        cp.pending.release(address)
    return None


async def serve_agent(ws: AgentSocket, cp: ControlPlane) -> None:
    """Run one agent's channel until it closes."""
    client = ws.client
    agent = await _admit(ws, cp, address_of(client))
    if agent is None:
        return

    channel = AgentChannel(ws, agent)

    welcome = Welcome(
        agent_id=agent.id,
        heartbeat_interval_s=cp.settings.heartbeat_interval_s,
        pinned_version=agent.pinned_version,
        time_probe_interval_s=cp.settings.time_probe_interval_s,
        accepts=list(AGENT_EXTRAS),
        release_key=cp.releases.key.public,
        release_key_chain=cp.releases.key.chain,
        keepalive_s=cp.settings.channel_keepalive_s,
    )
    try:
        if cp.replicas is not None:
            await cp.replicas.hold(agent)  # its lease: an older connection elsewhere is fenced
        await channel.send(dump(welcome))
    except ChannelClosed:
        return  # gone before it was registered: nothing to undo
    except StoreError as exc:
        await channel.close(CloseCode.INTERNAL_ERROR, f"{exc.message}; retry shortly")
        return
    old = agent.channel
    agent.channel = channel
    if old is not None:
        await old.close(CloseCode.REPLACED, "another connection for this agent took over")
    cp.channels[agent.id] = channel
    cp.fleet.on_connect(agent, client)
    closed_normally = False
    try:
        # The first clock probe at once; clock_sweeper sends the later ones.
        await channel.time_probe()
        await _receive_loop(channel, cp)
    except _Close as close:
        await channel.close(close.code, close.message)
        await cp.fleet.audit(agent.id, "channel.close", agent.id, "refused", close.message)
    except ChannelClosed as exc:
        closed_normally = exc.code == CloseCode.NORMAL
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            await cp.fleet.audit(
                agent.id,
                "channel.close",
                agent.id,
                "refused",
                f"frame over the {MAX_FRAME_BYTES} byte limit (close 1009)",
            )
    finally:
        channel.fail_pending()
        channel.closed.set()
        if agent.channel is channel:
            cp.channels.pop(agent.id, None)
            reconnecting = channel.rekeyed and closed_normally and channel.goodbye is None
            # A replica that stops hands its agents over: they reconnect to another
            # through the balancer at once, and are not away meanwhile.
            reconnecting = reconnecting or (cp.replicas is not None and cp.stopping)
            cp.fleet.on_disconnect(agent, channel.goodbye, reconnecting=reconnecting)


async def clock_sweeper(cp: ControlPlane, batch: int = 100) -> None:
    """Send every connected agent a clock probe once per ``time_probe_interval_s``.

    One task for the fleet rather than one per agent (a task and its frame cost
    about 2 KiB per agent), spread over the interval in batches so 10,000 probes
    do not leave in one burst. The probes also keep each channel busy often
    enough that no load balancer idles it out.
    """
    interval = cp.settings.time_probe_interval_s
    while True:
        channels = list(cp.channels.values())
        batches = max(1, -(-len(channels) // batch))
        pause = interval / batches
        for start in range(0, max(len(channels), 1), batch):
            await asyncio.sleep(pause)
            for channel in channels[start : start + batch]:
                if channel.closed.is_set():
                    continue
                with contextlib.suppress(Exception):  # closing: its own task cleans up
                    await channel.time_probe()


async def _receive_loop(channel: AgentChannel, cp: ControlPlane) -> None:
    agent = channel.agent
    bucket = TokenBucket(cp.settings.agent_message_rate, cp.settings.agent_message_burst)
    monotonic = time.monotonic
    while True:
        raw = await channel.ws.receive()
        t4 = time.time()
        if not bucket.take(monotonic()):
            raise _Close(
                CloseCode.RATE_LIMITED,
                f"more than {cp.settings.agent_message_rate:g} messages a second (burst "
                f"{cp.settings.agent_message_burst}, agent_message_rate): back off, then reconnect",
            )
        try:
            msg = parse_agent_message(raw)
        except ProtocolError as exc:
            raise _Close(CloseCode.PROTOCOL_ERROR, str(exc)) from None
        if isinstance(msg, Heartbeat):
            cp.fleet.on_heartbeat(agent, msg)
        elif isinstance(msg, TimeReply):
            t1 = channel.time_sent.pop(msg.id, None)
            if t1 is not None and abs(t1 - msg.t1) < 1e-6:
                cp.fleet.on_time(agent, msg.t1, msg.t2, msg.t3, t4)
        elif isinstance(msg, CommandFinished):
            channel.resolve(msg)
        elif isinstance(msg, RenewRequest):
            await _renew(channel, cp, msg)
        elif isinstance(msg, Goodbye):
            channel.goodbye = msg.reason
            log.info("agent %s is stopping: %s", agent.record.name, msg.reason)
            await cp.fleet.audit(agent.id, "agent.goodbye", agent.id, "ok", msg.reason)
        elif isinstance(msg, Disconnects):
            cp.fleet.on_disconnects(agent, [to_builtins(r) for r in msg.records])
        elif isinstance(msg, UpgradeStatus):
            cp.upgrades.on_status(agent, msg)
        else:
            raise _Close(CloseCode.PROTOCOL_ERROR, f"unexpected {msg.type!r} after auth")


async def _renew(channel: AgentChannel, cp: ControlPlane, msg: RenewRequest) -> None:
    """Sign the agent's renewal CSR.

    A CSR for a new key (not the one this channel authenticated with) gives a
    certificate pending its first use (:mod:`controlplane.rekeys`): the older ones
    stay good until the agent connects with it, so an answer lost on the way
    locks nobody out.  A CSR for the same key supersedes nothing: whoever holds
    that key could use the new certificate as well.
    """
    agent = channel.agent
    try:
        issued = cp.ca.sign_csr(
            msg.csr_pem, agent.id, dt.timedelta(seconds=cp.settings.cert_lifetime_s)
        )
        new_key = issued.key_der != agent.key_der
        if new_key:
            await cp.rekeys.issued(agent.id, issued.serial, issued.not_after)
        else:
            await cp.fleet.store.add_certificate(issued.serial, agent.id, issued.not_after)
            await cp.fleet.store.set_agent_cert(agent.id, issued.serial, issued.not_after)
    except BadRequest as exc:
        await channel.send(dump(RenewResponse(error=exc.message)))
        await cp.fleet.audit(agent.id, "cert.renew", agent.id, "refused", exc.message)
        return
    if not new_key:
        agent.record.cert_serial = issued.serial
        agent.record.cert_not_after = issued.not_after
        agent.cert_not_after = issued.not_after
    await channel.send(dump(RenewResponse(certificate_pem=issued.pem, ca_pem=cp.ca.pem)))
    channel.rekeyed = channel.rekeyed or new_key
    detail = f"serial {issued.serial}"
    if new_key:
        detail += "; a new key: the older certificates are refused from its first use"
    await cp.fleet.audit(agent.id, "cert.renew", agent.id, "ok", detail)
    cp.fleet.refresh(agent)
