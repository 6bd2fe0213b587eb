"""The API port's guard against connections that never finish a request (slowloris).

uvicorn's h11 protocol sets no timer before a connection's first request, and
any byte cancels its keep-alive timer between requests: a client that finishes
TLS and then trickles header bytes holds its connection for as long as it likes,
and as many as it likes. :func:`guarded_h11` makes a subclass of that protocol
which, from ``connection_made`` (TLS is done by then) until a request's headers
are complete, and again from each answer until the next request's headers:

- counts the connection against its source address (``pending_connections``,
  shared with the agents' port before the websocket upgrade): over the cap it is
  answered 429 and closed at once;
- closes it when ``header_timeout_s`` has passed (an absolute deadline: bytes
  that keep coming do not extend it), with a 408 if part of a request came.

Both are audited per address and window (``http.connections``, ``http.headers``).
The cost is one timer per request, as uvicorn's own keep-alive timer.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import PendingConnections, RefusalAudit

__all__ = ["guarded_h11", "http_answer"]


def http_answer(status: str, detail: str) -> bytes:
    """A whole ``Connection: close`` answer with a JSON ``detail``, as raw bytes."""
    body = json.dumps({"detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def guarded_h11(
    unread: PendingConnections, refusals: RefusalAudit, header_timeout_s: float
) -> type[H11Protocol]:
    """uvicorn's h11 protocol, counting and timing connections that owe a request.

    Args:
        unread: connections per address that have not sent a whole request's headers.
        refusals: where refusals and timeouts are counted for the audit.
        header_timeout_s: how long a connection may take to send them.
    """
    over_cap = (
        f"over {unread.cap} connections from one address that have not sent a request "
        "(pending_connections)"
    )
    too_slow = f"no whole request headers within {header_timeout_s:g} s (header_timeout_s)"

    class GuardedH11(H11Protocol):
        _address = "?"
        _deadline: asyncio.TimerHandle | None = None
        """Set while the connection is counted and owes a request's headers."""
        _heard = False
        """Bytes of a request came since the deadline was set."""
        _answered = False
        """A request on this connection was answered."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else "?"
            if not self._start_waiting():
                refusals.note("anonymous", "http.connections", self._address, over_cap)
                transport.write(
                    http_answer(
                        "429 Too Many Requests",
                        f"too many connections from {self._address} waiting to send a "
                        "request: send on the ones open, or close them, then retry",
                    )
                )
                transport.close()

        def _start_waiting(self) -> bool:
            if not unread.acquire(self._address):
                return False
            self._heard = bool(self.conn.trailing_data[0])
            self._deadline = self.loop.call_later(header_timeout_s, self._timed_out)
            return True

        def _stop_waiting(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
                unread.release(self._address)

        def _timed_out(self) -> None:
            self._deadline = None
            unread.release(self._address)
            if self.transport.is_closing():
                return
            if self._heard or not self._answered:
                # An idle kept-alive connection is no refusal (uvicorn closes those
                # after timeout_keep_alive, 5 s, unless this comes first).
                refusals.note("anonymous", "http.headers", self._address, too_slow)
            if self._heard:
                self.transport.write(
                    http_answer(
                        "408 Request Timeout",
                        f"{too_slow}: send the whole request at once",
                    )
                )
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.transport.is_closing():
                return  # refused or timed out: nothing more is read
            if self._deadline is not None:
                self._heard = True
            super().data_received(data)

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request's headers came: its cycle runs
                self._stop_waiting()

        def handle_websocket_upgrade(self, event: h11.Request) -> None:
            self._stop_waiting()  # the websocket counts in cp.pending until it authenticates
            super().handle_websocket_upgrade(event)

        def on_response_complete(self) -> None:
            self._answered = True
            cycle = self.cycle
            super().on_response_complete()  # may start a pipelined request's cycle
            if self.cycle is not cycle or self.transport.is_closing():
                return
            if not self._start_waiting():
                # Answered; its next request would be over the cap: closed, as a
                # kept-alive connection may be at any time.
                refusals.note("anonymous", "http.connections", self._address, over_cap)
                self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

    return GuardedH11
