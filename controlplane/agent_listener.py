"""The agents' own listener: plain ``websockets`` on a port of its own.

Agents hold one long-lived connection each, so what a connection costs in memory
decides how many agents one process can hold. Through uvicorn and FastAPI each
agent cost about 75 KiB; a bare ``websockets`` server on the same loop and TLS
about 41 KiB (``bench/controlplane_load.py``, docs/decisions.md). So agents get
a listener with nothing between the socket and :func:`~controlplane.channel.serve_agent`:
no ASGI scope, middleware or routing per connection. Teleport keeps its reverse
tunnels on a port of their own (3024) for the same kind of reason.

The API port keeps its ``/v1/agent/connect`` route (the same channel code), for
agents that only know the API URL; enrollment tells agents the channel's port.
"""

from __future__ import annotations

import asyncio
import http
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fleet.protocol import AGENT_CHANNEL_PATH, MAX_FRAME_BYTES, CloseCode, ErrorMessage, dump

from .channel import ChannelClosed, serve_agent
from .header_guard import http_answer

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["WebsocketsSocket", "start_agent_listener"]

log = logging.getLogger("controlplane.agents")


def _close_code(exc: ConnectionClosed) -> int:
    if exc.rcvd is not None:
        return exc.rcvd.code
    if exc.sent is not None:
        return exc.sent.code
    return CloseCode.ABNORMAL


class WebsocketsSocket:
    """:class:`~controlplane.channel.AgentSocket` over a ``websockets`` connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    @property
    def client(self) -> str | None:
        peer = self.ws.remote_address
        return f"{peer[0]}:{peer[1]}" if peer else None

    async def send_text(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise ChannelClosed(_close_code(exc)) from None

    async def receive(self) -> str | bytes:
        try:
            return await self.ws.recv()
        except ConnectionClosed as exc:
            raise ChannelClosed(_close_code(exc)) from None

    async def close_with(self, code: int, message: str) -> None:
        try:
            await self.ws.send(dump(ErrorMessage(code=code, message=message)))
            await self.ws.close(code=code, reason=message[:120])
        except ConnectionClosed:
            pass


def _counted_connections(cp: ControlPlane) -> type[ServerConnection]:
    """``ServerConnection`` counting each connection against its source address
    (``cp.unread``, shared with the API port) from ``connection_made`` (after TLS)
    until its upgrade request was read: over ``pending_connections`` it is answered
    429 and closed at once, and audited per address and window. The upgrade itself
    must come within ``open_timeout``; after it, ``cp.pending`` counts the channel
    until it authenticates."""
    over_cap = (
        f"over {cp.unread.cap} connections from one address that have not sent their "
        "websocket upgrade (pending_connections)"
    )

    class CountedConnection(ServerConnection):
        _address: str | None = None
        """The source address while the connection is counted."""
        _refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else "?"
            if cp.unread.acquire(address):
                self._address = address
                return
            self._refused = True
            cp.refusals.note("anonymous", "channel.connections", address, over_cap)
            self.transport.write(
                http_answer(
                    "429 Too Many Requests",
                    f"too many connections from {address} waiting to upgrade: back off and retry",
                )
            )
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if not self._refused:
                super().data_received(data)

        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().handshake(*args, **kwargs)
            finally:
                self._uncount()

        def connection_lost(self, exc: Exception | None) -> None:
            self._uncount()
            super().connection_lost(exc)

        def _uncount(self) -> None:
            if self._address is not None:
                cp.unread.release(self._address)
                self._address = None

    return CountedConnection


def _only_the_channel(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] != AGENT_CHANNEL_PATH:
        return connection.respond(
            http.HTTPStatus.NOT_FOUND,
            f"this port serves only the agent channel, {AGENT_CHANNEL_PATH}; "
            "the API is on the control plane's main port\n",
        )
    return None


async def start_agent_listener(
    cp: ControlPlane, sock: socket.socket, tls: ssl.SSLContext | None
) -> Server:
    """Serve agents' channels on ``sock`` until the returned server is closed."""

    async def handler(ws: ServerConnection) -> None:
        await serve_agent(WebsocketsSocket(ws), cp)

    return await serve(
        handler,
        sock=sock,
        ssl=tls,
        process_request=_only_the_channel,
        create_connection=_counted_connections(cp),
        # As on the API port: 1 MiB frames, no deflate.
        max_size=MAX_FRAME_BYTES,
        compression=None,
        # No pings from this side: each would be a task per connection (about
        # 1.5 KiB). Agents ping every 20 s (answered without a task), and the
        # presence timers close a channel whose agent went offline
        # (CloseCode.SILENT), which reaps half-open connections.
        ping_interval=None,
        server_header=None,
        # After a restart all agents dial at once and TLS handshakes queue up; an
        # upgrade request must not be timed out while it waits its turn (10 s,
        # websockets' default, left 10,000 agents 97 s to come back). Agents give
        # their side 30 s too.
        # websockets gives the TLS handshake the same (its ssl_handshake_timeout); the
        # API port's is tls_handshake_timeout_s, 10 s.
        open_timeout=30.0,
        # A peer that floods is closed (CloseCode.RATE_LIMITED) while its frames
        # still fill our receive queue, so its close reply is stuck behind them:
        # give up on the handshake after 2 s (websockets' default: 10 s) and drop it.
        close_timeout=2.0,
        logger=log,
    )
