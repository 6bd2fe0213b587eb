"""Websocket endpoints: the agent channel and the dashboards' event stream."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from fleet.protocol import (
    AGENT_CHANNEL_PATH,
    PROTOCOL_VERSION,
    CloseCode,
    ProtocolError,
    Subscribe,
    dump,
    parse_client_message,
)

from ..channel import StarletteSocket, close_with, serve_agent
from ..errors import Unauthenticated
from ..state import ControlPlane

router = APIRouter()

COALESCE_S = 0.05
"""A subscriber's writer sleeps this long between batches, so bursts coalesce."""


@router.websocket(AGENT_CHANNEL_PATH)
async def agent_connect(ws: WebSocket) -> None:
    await ws.accept()
    await serve_agent(StarletteSocket(ws), ws.app.state.cp)


@router.websocket("/v1/events")
async def events(ws: WebSocket, since: int | None = None, epoch: str | None = None) -> None:
    cp: ControlPlane = ws.app.state.cp
    await ws.accept()
    try:
        principal = cp.authenticate(ws.headers.get("authorization"))
    except Unauthenticated as exc:
        await close_with(ws, CloseCode.UNAUTHENTICATED, f"refused: {exc.message}")
        return
    try:
        raw = await asyncio.wait_for(ws.receive_text(), cp.settings.auth_timeout_s)
        msg = parse_client_message(raw)
    except TimeoutError:
        await close_with(ws, CloseCode.AUTH_TIMEOUT, "send a 'subscribe' message first")
        return
    except ProtocolError as exc:
        await close_with(ws, CloseCode.PROTOCOL_ERROR, str(exc))
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    if not isinstance(msg, Subscribe) or msg.protocol_version != PROTOCOL_VERSION:
        await close_with(
            ws,
            CloseCode.UNSUPPORTED_VERSION,
            f"this control plane speaks event protocol {PROTOCOL_VERSION}; upgrade the dashboard",
        )
        return
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
    reader = asyncio.create_task(_drain_client(ws))
    try:
        # Only within the same epoch: sequence numbers restart with the server.
        if since is not None and bus.can_resume(since, epoch):
            first = bus.resume(since)
        else:
            first = [dump(cp.fleet.snapshot(principal.role))]
        for frame in first:
            await ws.send_text(frame)
        while not reader.done():
            if session.reason is not None:
                break
            waiter = asyncio.create_task(sub.wake.wait())
            await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if reader.done() or session.reason is not None:
                break
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


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) what the dashboard sends, to notice when it goes."""
    with contextlib.suppress(Exception):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
