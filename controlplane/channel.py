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
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from fleet import __version__
from fleet.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    Command,
    CommandFinished,
    CommandRequest,
    ErrorMessage,
    Heartbeat,
    Hello,
    ProtocolError,
    RenewRequest,
    RenewResponse,
    TimeProbe,
    TimeReply,
    Welcome,
    dump,
    parse_agent_message,
)

from .errors import BadRequest, CommandTimeout, Conflict, Unauthenticated

if TYPE_CHECKING:
    from .live import LiveAgent
    from .state import ControlPlane

__all__ = ["AgentChannel", "serve_agent"]

log = logging.getLogger("controlplane.channel")


class _Close(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AgentChannel:
    """One connected agent: sends frames to it and matches command results by id."""

    def __init__(self, ws: WebSocket, agent: LiveAgent) -> None:
        self.ws = ws
        self.agent = agent
        self.pending: dict[str, asyncio.Future[CommandFinished]] = {}
        self.time_sent: dict[int, float] = {}
        self._ids = itertools.count(1)
        self.closed = asyncio.Event()

    async def send(self, text: str) -> None:
        await self.ws.send_text(text)

    async def close(self, code: int, message: str) -> None:
        """Tell the agent why, then close with ``code``."""
        await close_with(self.ws, code, message)
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
            return await asyncio.wait_for(future, timeout_s + 2.0)
        except TimeoutError:
            raise CommandTimeout(
                f"agent {self.agent.record.name} did not answer within {timeout_s:.0f} s; "
                "it may be overloaded or its network slow: retry, or check its queue depth"
            ) from None
        except (WebSocketDisconnect, RuntimeError):
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


async def _authenticate(ws: WebSocket, cp: ControlPlane) -> LiveAgent:
    nonce = secrets.token_hex(32)
    await ws.send_text(
        dump(Hello(protocol_version=PROTOCOL_VERSION, server_version=__version__, nonce=nonce))
    )
    try:
        raw = await asyncio.wait_for(ws.receive_text(), cp.settings.auth_timeout_s)
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
        agent_id, serial, not_after = cp.ca.verify_agent(msg.certificate_pem, nonce, signature)
    except Unauthenticated as exc:
        code = CloseCode.CERT_EXPIRED if exc.expired else CloseCode.UNAUTHENTICATED
        raise _Close(code, exc.message) from None
    agent = cp.fleet.agents.get(agent_id)
    if agent_id != msg.agent_id or agent is None:
        raise _Close(CloseCode.UNAUTHENTICATED, f"unknown agent {msg.agent_id!r}: enroll again")
    if agent.record.revoked or serial in cp.fleet.revoked_serials:
        raise _Close(
            CloseCode.REVOKED,
            f"agent {agent.record.name} was revoked by an administrator; it must not reconnect",
        )
    agent.cert_not_after = not_after
    agent.version = msg.version
    return agent


async def serve_agent(ws: WebSocket, cp: ControlPlane) -> None:
    """Run one agent's channel until it closes."""
    await ws.accept()
    client = f"{ws.client.host}:{ws.client.port}" if ws.client else None
    try:
        agent = await _authenticate(ws, cp)
    except _Close as close:
        await cp.fleet.audit("agent", "channel.auth", client or "?", "refused", close.message)
        await close_with(ws, close.code, close.message)
        return
    except WebSocketDisconnect:
        return

    old = agent.channel
    channel = AgentChannel(ws, agent)
    agent.channel = channel
    if old is not None:
        await old.close(CloseCode.REPLACED, "another connection for this agent took over")
    cp.channels[agent.id] = channel
    await channel.send(
        dump(
            Welcome(
                agent_id=agent.id,
                heartbeat_interval_s=cp.settings.heartbeat_interval_s,
                pinned_version=agent.pinned_version,
                time_probe_interval_s=cp.settings.time_probe_interval_s,
            )
        )
    )
    cp.fleet.on_connect(agent, client)
    prober = asyncio.create_task(_probe_clock(channel, cp.settings.time_probe_interval_s))
    try:
        await _receive_loop(channel, cp)
    except _Close as close:
        await channel.close(close.code, close.message)
        await cp.fleet.audit(agent.id, "channel.close", agent.id, "refused", close.message)
    except WebSocketDisconnect as exc:
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            await cp.fleet.audit(
                agent.id,
                "channel.close",
                agent.id,
                "refused",
                f"frame over the {MAX_FRAME_BYTES} byte limit (close 1009)",
            )
    finally:
        prober.cancel()
        channel.fail_pending()
        channel.closed.set()
        if agent.channel is channel:
            cp.channels.pop(agent.id, None)
            cp.fleet.on_disconnect(agent)


async def _probe_clock(channel: AgentChannel, interval: float) -> None:
    # The first probe at once; then periodically.  These also keep the channel
    # busy often enough that no load balancer idles it out.
    with contextlib.suppress(Exception):
        while True:
            await channel.time_probe()
            await asyncio.sleep(interval)


async def _receive_loop(channel: AgentChannel, cp: ControlPlane) -> None:
    agent = channel.agent
    while True:
        message = await channel.ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        t4 = time.time()
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
        else:
            raise _Close(CloseCode.PROTOCOL_ERROR, f"unexpected {msg.type!r} after auth")


async def _renew(channel: AgentChannel, cp: ControlPlane, msg: RenewRequest) -> None:
    agent = channel.agent
    try:
        issued = cp.ca.sign_csr(
            msg.csr_pem, agent.id, dt.timedelta(seconds=cp.settings.cert_lifetime_s)
        )
        await cp.fleet.store.add_certificate(issued.serial, agent.id, issued.not_after)
        await cp.fleet.store.set_agent_cert(agent.id, issued.serial, issued.not_after)
    except BadRequest as exc:
        await channel.send(dump(RenewResponse(error=exc.message)))
        await cp.fleet.audit(agent.id, "cert.renew", agent.id, "refused", exc.message)
        return
    agent.record.cert_serial = issued.serial
    agent.record.cert_not_after = issued.not_after
    agent.cert_not_after = issued.not_after
    await channel.send(dump(RenewResponse(certificate_pem=issued.pem, ca_pem=cp.ca.pem)))
    await cp.fleet.audit(agent.id, "cert.renew", agent.id, "ok", f"serial {issued.serial}")
    cp.fleet.refresh(agent)
