"""A pure ASGI middleware for REST requests: a body size limit, and a cap on the
requests one address may have in flight before they are answered.

A body over ``max_body_bytes`` is answered 413 before it is read when its
``Content-Length`` says so, and as soon as the bytes streamed in pass the limit
otherwise (chunked bodies), so no request can make the server buffer more than
the limit. A body that has not arrived whole ``body_timeout_s`` after the headers
is answered 408: trickled in a byte at a time, it would hold its connection for
ever. The in-flight cap (``pending_connections``) counts a request with a body
from its start until the body was read or its answer began: the time before its
caller is authenticated. Bodies' bytes are also limited per address
(``body_rate_per_address``, a token bucket): past it they are read more slowly.

An agent release upload (``PUT /v1/releases/{version}``) has a cap of its own,
``release_max_bytes``, which its route enforces the same way once the caller is
known to be an admin (:mod:`controlplane.api.releases`): this middleware only
counts it as pending.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet.protocol import RELEASES_PATH

from .limits import PendingConnections

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["BodyLimit", "has_own_limit"]

_RELEASE_UPLOAD = re.compile(re.escape(RELEASES_PATH) + r"/[^/]+/?")


def has_own_limit(method: str, path: str) -> bool:
    """Whether the route of ``method path`` caps its body itself (release uploads)."""
    return method == "PUT" and _RELEASE_UPLOAD.fullmatch(path) is not None


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Bandwidth:
    """Bytes a second per source address, as a token bucket of one second's worth:
    :meth:`take` says how long to wait before reading on (0: at once)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        """Address -> (tokens, when they were counted)."""

    def take(self, address: str, size: int, now: float) -> float:
        if self.rate <= 0:
            return 0.0
        tokens, then = self._buckets.get(address, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - then) * self.rate) - size
        self._buckets[address] = (tokens, now)
        if len(self._buckets) > 10_000:  # forget the addresses that are full again
            self._buckets = {
                a: (t, at)
                for a, (t, at) in self._buckets.items()
                if t + (now - at) * self.rate < self.rate
            }
        return -tokens / self.rate if tokens < 0 else 0.0


class BodyLimit:
    """Wraps the API; ``cp`` gives the settings, the counters and the audit."""

    def __init__(self, app: ASGIApp, cp: ControlPlane) -> None:
        self.app = app
        self.cp = cp
        self.bandwidth = Bandwidth(cp.settings.body_rate_per_address)
        """Request bodies' bytes a second per address (``body_rate_per_address``)."""
        self.pending = PendingConnections(cp.settings.pending_connections)
        """REST requests in flight per address (websockets count in ``cp.pending``)."""

    def _too_big(self, address: str, path: str) -> str:
        limit = self.cp.settings.max_body_bytes
        detail = f"request body over {limit} bytes (max_body_bytes)"
        self.cp.refusals.note("anonymous", "http.body", address, f"{detail}, {path}")
        return f"{detail}: send a smaller one"

    def _too_slow(self, address: str, path: str) -> str:
        limit = self.cp.settings.body_timeout_s
        detail = f"request body not received whole within {limit:g} s (body_timeout_s)"
        self.cp.refusals.note("anonymous", "http.body", address, f"{detail}, {path}")
        return f"{detail}: send it at once, or check the network between"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cp = self.cp
        path = str(scope.get("path", ""))
        # Past any real body: the release route refuses over its own cap.
        unlimited = has_own_limit(str(scope.get("method", "")), path)
        limit = 1 << 62 if unlimited else cp.settings.max_body_bytes
        client = scope.get("client")
        address = str(client[0]) if client else "?"
        has_body = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit():
                if int(value) > limit:
                    await _answer(send, 413, self._too_big(address, path), [])
                    return
                has_body = has_body or int(value) > 0
            elif name == b"transfer-encoding":
                has_body = True
        if not has_body:
            # Nothing to read before the route authenticates it: not pending.
            await self.app(scope, receive, send)
            return
        if not self.pending.acquire(address):
            cp.refusals.note(
                "anonymous",
                "http.connections",
                address,
                f"over {self.pending.cap} requests in flight from one address "
                "(pending_connections)",
            )
            await _answer(
                send,
                429,
                f"too many requests in flight from {address}: wait for the answers, then retry",
                [(b"retry-after", b"1")],
            )
            return
        pending = True
        received = 0
        answered = False

        def release() -> None:
            nonlocal pending
            if pending:
                pending = False
                self.pending.release(address)

        deadline = asyncio.get_running_loop().time() + cp.settings.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            if pending and not unlimited:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    answered = True
                    release()
                    await _answer(send, 408, self._too_slow(address, path), [])
                    return {"type": "http.disconnect"}
            else:
                message = await receive()
            if message["type"] != "http.request":
                release()
                return message
            chunk = len(message.get("body", b""))
            received += chunk
            wait = self.bandwidth.take(address, chunk, asyncio.get_running_loop().time())
            if wait > 0:
                # Over its bytes a second: read its next chunk later (TCP holds the
                # sender back meanwhile); its own requests slow down, nobody else's.
                await asyncio.sleep(wait)
            if received > limit:
                # Answer now and tell the app the client went: nothing more is read.
                answered = True
                release()
                await _answer(send, 413, self._too_big(address, path), [])
                return {"type": "http.disconnect"}
            if not message.get("more_body", False):
                release()
            return message

        async def guarded_send(message: Message) -> None:
            if answered:
                return  # the 413 went out; the app's own answer is dropped
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not answered:
                raise
            # The app failed reading a body cut short by the 413: already answered.
        finally:
            release()
