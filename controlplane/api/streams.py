"""Websocket endpoints: the agent channel and the dashboards' event stream."""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from fleet.protocol import (
    AGENT_CHANNEL_PATH,
    EVENTS_PATH,
    PROTOCOL_VERSION,
    CloseCode,
    ProtocolError,
    StreamHeartbeat,
    Subscribe,
    dump,
    parse_client_message,
)

from ..channel import StarletteSocket, close_with, serve_agent
from ..errors import Unauthenticated
from ..limits import TokenBucket
from ..state import ControlPlane, Principal

router = APIRouter()

COALESCE_S = 0.05
"""A subscriber's writer sleeps this long between batches, so bursts coalesce."""


@router.websocket(AGENT_CHANNEL_PATH)
async def agent_connect(ws: WebSocket) -> None:
    await ws.accept()
    await serve_agent(StarletteSocket(ws), ws.app.state.cp)


@router.websocket(EVENTS_PATH)
async def events(ws: WebSocket, since: int | None = None, epoch: str | None = None) -> None:
    cp: ControlPlane = ws.app.state.cp
    address = ws.client.host if ws.client else "?"
    await ws.accept()
    if not cp.pending.acquire(address):
        why = f"over {cp.pending.cap} unauthenticated connections from {address}"
        cp.refusals.note("anonymous", "stream.connections", address, why)
        await close_with(ws, CloseCode.RATE_LIMITED, f"{why}: back off and retry")
        return
    try:
        subscribed = await _subscribe(ws, cp, address)
    finally:
        cp.pending.release(address)
    if subscribed is None:
        return
    principal, msg = subscribed
    if msg.since is not None:
        since, epoch = msg.since, msg.epoch

    bus = cp.fleet.bus
    sub = bus.subscribe()
    # A revoked or rotated token ends the stream: the session wakes the writer.
    session = cp.operators.open_session(principal.name, sub.wake)
    try:
        # Revoked while it was subscribing, before the session could be told?
        cp.authenticate(ws.headers.get("authorization"))
    except Unauthenticated as exc:
        session.reason = exc.message
    reader = asyncio.create_task(_drain_client(ws, cp, principal.name))
    try:
        # Only within the same epoch: sequence numbers restart with the server.
        if since is not None and bus.can_resume(since, epoch):
            first = bus.resume(since)
        else:
            first = [dump(cp.fleet.snapshot(principal.role))]
        for frame in first:
            await ws.send_text(frame)
        beat_s = cp.settings.stream_heartbeat_s
        next_beat = time.monotonic()
        while not reader.done():
            if session.reason is not None:
                break
            if time.monotonic() >= next_beat:
                # A sign of life a hung server cannot fake: the dashboard
                # says "not answering" when two of these are missing.
                beat = StreamHeartbeat(server_time=time.time(), interval_s=beat_s)
                await ws.send_text(dump(beat))
                next_beat = time.monotonic() + beat_s
            waiter = asyncio.create_task(sub.wake.wait())
            await asyncio.wait(
                {waiter, reader},
                timeout=max(0.0, next_beat - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            woken = waiter.done()
            waiter.cancel()
            if reader.done() or session.reason is not None:
                break
            if not woken:
                continue
            await asyncio.sleep(COALESCE_S)
            if sub.needs_snapshot:
                sub.needs_snapshot = False
                bus.drain(sub)
                await ws.send_text(dump(cp.fleet.snapshot(principal.role)))
                continue
            for frame in bus.drain(sub):
                await ws.send_text(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        bus.unsubscribe(sub)
        cp.operators.close_session(session)
        reader.cancel()
        if session.reason is not None:
            await close_with(ws, CloseCode.UNAUTHENTICATED, session.reason)
        with contextlib.suppress(Exception):
            await ws.close()


async def _subscribe(
    ws: WebSocket, cp: ControlPlane, address: str
) -> tuple[Principal, Subscribe] | None:
    """The caller and its subscription; None when refused (closed, and audited)."""
    try:
        principal = cp.authenticate(ws.headers.get("authorization"))
    except Unauthenticated as exc:
        wait = cp.auth_failed(address, "stream.auth", exc.message)
        if wait is None:
            await close_with(ws, CloseCode.UNAUTHENTICATED, f"refused: {exc.message}")
        else:
            await close_with(
                ws,
                CloseCode.RATE_LIMITED,
                f"refused: {exc.message}; too many failed authentications from {address}: "
                f"retry in {wait:.0f} s",
            )
        return None
    try:
        async with asyncio.timeout(cp.settings.auth_timeout_s):
            raw = await ws.receive_text()
        msg = parse_client_message(raw)
    except TimeoutError:
        await _refuse(ws, cp, principal, CloseCode.AUTH_TIMEOUT, "send a 'subscribe' message first")
        return None
    except ProtocolError as exc:
        await _refuse(ws, cp, principal, CloseCode.PROTOCOL_ERROR, str(exc))
        return None
    except WebSocketDisconnect as exc:
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            cp.refusals.note(
                principal.name, "stream.subscribe", address, "frame over the size limit (1009)"
            )
        return None
    except RuntimeError:
        return None
    if not isinstance(msg, Subscribe) or msg.protocol_version != PROTOCOL_VERSION:
        await _refuse(
            ws,
            cp,
            principal,
            CloseCode.UNSUPPORTED_VERSION,
            f"this control plane speaks event protocol {PROTOCOL_VERSION}; upgrade the dashboard",
        )
        return None
    return principal, msg


async def _refuse(ws: WebSocket, cp: ControlPlane, who: Principal, code: int, why: str) -> None:
    address = ws.client.host if ws.client else "?"
    cp.refusals.note(who.name, "stream.subscribe", address, f"{why} (close {code})")
    await close_with(ws, code, why)


async def _drain_client(ws: WebSocket, cp: ControlPlane, who: str) -> None:
    """Read (and ignore) what the dashboard sends, to notice when it goes; a
    client that sends more than ``stream_message_rate`` frames is closed."""
    settings = cp.settings
    bucket = TokenBucket(settings.stream_message_rate, settings.stream_message_burst)
    with contextlib.suppress(Exception):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                if message.get("code") == CloseCode.MESSAGE_TOO_BIG:
                    address = ws.client.host if ws.client else "?"
                    await cp.fleet.audit(
                        who, "stream.close", address, "refused", "frame over the size limit (1009)"
                    )
                return
            if not bucket.take(time.monotonic()):
                why = (
                    f"more than {settings.stream_message_rate:g} frames a second "
                    "(stream_message_rate): a dashboard only sends 'subscribe'"
                )
                address = ws.client.host if ws.client else "?"
                await cp.fleet.audit(who, "stream.close", address, "refused", why)
                await close_with(ws, CloseCode.RATE_LIMITED, why)
                return
