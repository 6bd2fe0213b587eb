"""The event stream consumer: snapshot, deltas, reconnect and resume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
    InvalidURI,
)

from fleet.protocol import (
    EVENTS_PATH,
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    CloseCode,
    ProtocolError,
    Snapshot,
    StreamError,
    StreamHeartbeat,
    StreamToClient,
    Subscribe,
    dump,
    parse_stream_message,
)

from ._state import ConnectionState, LinkStatus

__all__ = ["StreamClient", "events_url", "refusal_reason", "silence_limit"]

log = logging.getLogger(__name__)

MISSED_BEATS = 2
"""Server heartbeats missed in a row before the link reads "not answering"."""

BEAT_SLACK_S = 1.0
"""Added to the missed beats' time, for a loaded machine or network."""


def silence_limit(interval_s: float) -> float:
    """Seconds without any frame after which a server sending beats every
    ``interval_s`` is not answering."""
    return MISSED_BEATS * interval_s + BEAT_SLACK_S


_REFUSING_CLOSES = {
    CloseCode.UNAUTHENTICATED,
    CloseCode.FORBIDDEN,
    CloseCode.UNSUPPORTED_VERSION,
}


def events_url(server_url: str) -> str:
    """``https://h:p`` -> ``wss://h:p/v1/events`` (``http`` -> ``ws``)."""
    parts = urlsplit(server_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + EVENTS_PATH
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def refusal_reason(code: int, server_text: str = "") -> str:
    """What a refusal means and what to do about it, for the header."""
    said = f" (server: {server_text})" if server_text else ""
    if code in (401, CloseCode.UNAUTHENTICATED):
        return (
            "the token is unknown or expired; check --token-file or FLEET_TOKEN, "
            f"or ask an admin for a new one{said}"
        )
    if code in (403, CloseCode.FORBIDDEN):
        return f"this token's role may not watch the fleet; ask an admin for a viewer token{said}"
    if code == CloseCode.UNSUPPORTED_VERSION:
        return (
            f"the server does not speak protocol version {PROTOCOL_VERSION}; "
            f"upgrade the dashboard or the server{said}"
        )
    return f"code {code}{said}"


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StreamClient:
    """Consume ``/v1/events``: a snapshot, then deltas, resuming after a loss.

    Args:
        server_url: ``https://host:port`` of the control plane.
        token: The API bearer token.
        ssl_context: Trust for the server, or None for plain ``http``.
        on_message: Called with every parsed message, in order.
        on_status: Called whenever the link's state changes.
        since: Resume after this sequence number on the first connect.
        epoch: The stream epoch ``since`` belongs to (from the last snapshot).
        backoff_cap: Longest wait between attempts, seconds (full jitter from 0.5 s).
    """

    def __init__(
        self,
        server_url: str,
        token: str,
        ssl_context: ssl.SSLContext | None,
        on_message: Callable[[StreamToClient], None],
        on_status: Callable[[LinkStatus], None],
        *,
        since: int | None = None,
        epoch: str | None = None,
        backoff_cap: float = 10.0,
    ) -> None:
        self.url = events_url(server_url)
        self._token = token
        self._ssl = ssl_context
        self._on_message = on_message
        self._on_status = on_status
        self.last_seq = since
        """The last sequence number received: where a reconnect resumes."""
        self.epoch = epoch
        """The epoch of the last snapshot: ``last_seq`` counts within it.  A server
        restarted since has another, and answers a resume with a fresh snapshot."""
        self.backoff_cap = backoff_cap
        self.status = LinkStatus(ConnectionState.CONNECTING)
        self.bad_frames = 0
        """Frames that were not valid messages (skipped, not fatal)."""
        self._ws: ClientConnection | None = None
        self._stopping = False
        self.beat_interval: float | None = None
        """The server's heartbeat interval, once it sent one (older servers send none:
        then a hung server is noticed only by the websocket ping timeout)."""
        self.last_heard = time.monotonic()
        """When the last frame arrived (monotonic)."""

    def _set(self, state: ConnectionState, detail: str = "", attempt: int = 0) -> None:
        if self.status.state is ConnectionState.STOPPED:
            return
        self.status = self.status.to(state, detail, attempt)
        self._on_status(self.status)

    async def run(self) -> None:
        """Connect and consume until stopped or refused; never raises for network errors."""
        attempt = 0
        while not self._stopping:
            try:
                await self._session()
                # A clean close by the server (restart, going away): reconnect.
                error = "the server closed the stream"
            except _Refused as exc:
                self._set(ConnectionState.REFUSED, exc.reason)
                return
            except asyncio.CancelledError:
                raise
            except ssl.SSLCertVerificationError as exc:
                # Not transient: retrying cannot make an untrusted server trusted.
                self._set(
                    ConnectionState.REFUSED,
                    f"the server's certificate is not trusted ({exc.verify_message}); pass "
                    "--ca-file with the control plane's ca.pem or --ca-pin with its pin",
                )
                return
            except InvalidURI as exc:
                self._set(
                    ConnectionState.REFUSED,
                    f"{exc.uri} is not a websocket URL; pass --server https://HOST:PORT",
                )
                return
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as exc:
                if isinstance(exc, InvalidMessage) and await self._speaks_tls():
                    https = "https://" + urlsplit(self.url).netloc
                    self._set(
                        ConnectionState.REFUSED,
                        f"the server at {urlsplit(self.url).netloc} speaks TLS, not plain "
                        f"HTTP: pass --server {https}",
                    )
                    return
                error = _describe(exc)
            if self._stopping:
                break
            if self.status.state is ConnectionState.LIVE:
                attempt = 0
            attempt += 1
            window = min(self.backoff_cap, 0.5 * 2 ** min(attempt, 10))
            delay = random.uniform(0.2, window)
            self._set(
                ConnectionState.RECONNECTING,
                f"{error}; retrying in {delay:.0f}s",
                attempt,
            )
            await asyncio.sleep(delay)
        self._set(ConnectionState.STOPPED)

    async def stop(self) -> None:
        """Stop consuming and close the connection."""
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
        self._set(ConnectionState.STOPPED)

    async def _session(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                ssl=self._ssl,
                max_size=MAX_STREAM_FRAME_BYTES,
                open_timeout=10,
                ping_interval=20,
                ping_timeout=20,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise _Refused(refusal_reason(status, _body_detail(exc))) from None
            raise
        self._ws = ws
        try:
            subscribe = Subscribe(
                protocol_version=PROTOCOL_VERSION, since=self.last_seq, epoch=self.epoch
            )
            await ws.send(dump(subscribe))
            self.beat_interval = None
            while True:
                limit = self._wait_limit()
                try:
                    async with asyncio.timeout(limit):
                        frame = await ws.recv()
                except TimeoutError:
                    # Cancelling recv() loses nothing: the next call gets the frame.
                    self._set(
                        ConnectionState.NOT_ANSWERING,
                        f"{MISSED_BEATS} heartbeats missed: the control plane is hung, stopped "
                        "or overloaded; check its process",
                    )
                    continue
                except ConnectionClosedOK:
                    break
                self._handle(frame)
        except ConnectionClosed as exc:
            self._check_refusal(exc)
            raise
        finally:
            self._ws = None
            await ws.close()
        self._check_refusal_code(ws.close_code, ws.close_reason or "")

    async def _speaks_tls(self) -> bool:
        """Whether a plain ``ws://`` URL points at a TLS port (``http://`` for
        ``https://``): a TLS handshake there succeeds.  Only the handshake: no
        trust is needed to tell the two apart, and nothing is sent."""
        if self._ssl is not None:
            return False
        parts = urlsplit(self.url)
        if parts.hostname is None:
            return False
        probe = ssl.create_default_context()
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        try:
            async with asyncio.timeout(5):
                _, writer = await asyncio.open_connection(
                    parts.hostname, parts.port or 80, ssl=probe
                )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        return True

    def _wait_limit(self) -> float | None:
        """How long the next frame may take before the server counts as not
        answering; None while that is unknown or already said."""
        if self.beat_interval is None or self.status.state is not ConnectionState.LIVE:
            return None
        deadline = self.last_heard + silence_limit(self.beat_interval)
        return max(0.0, deadline - time.monotonic())

    def _handle(self, frame: str | bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            msg = parse_stream_message(frame)
        except ProtocolError as exc:
            self.bad_frames += 1
            log.warning("skipped a bad stream frame: %s", exc)
            return
        if isinstance(msg, StreamHeartbeat):
            # The link's own business, not the fleet's: not passed on.
            self.beat_interval = msg.interval_s
            if self.status.state is ConnectionState.NOT_ANSWERING:
                self._set(ConnectionState.LIVE)
            return
        if isinstance(msg, StreamError):
            if msg.code in _REFUSING_CLOSES:
                raise _Refused(refusal_reason(msg.code, msg.message))
        else:
            if isinstance(msg, Snapshot):
                self.epoch = msg.epoch or None
            self.last_seq = msg.seq
            if self.status.state is not ConnectionState.LIVE:
                self._set(ConnectionState.LIVE)
        self._on_message(msg)

    def _check_refusal(self, exc: ConnectionClosed) -> None:
        if exc.rcvd is not None:
            self._check_refusal_code(exc.rcvd.code, exc.rcvd.reason)

    def _check_refusal_code(self, code: int | None, reason: str) -> None:
        if code in _REFUSING_CLOSES:
            raise _Refused(refusal_reason(code, reason))


def _body_detail(exc: InvalidStatus) -> str:
    body = exc.response.body or b""
    try:
        import json

        detail = json.loads(body).get("detail", "")
        return str(detail)[:200]
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        return "the stream was lost"
    if isinstance(exc, ConnectionRefusedError):
        return (
            "connection refused: nothing listens on that port; is the control plane "
            "running, and is this its port? (it prints its URL at start)"
        )
    if isinstance(exc, TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "WRONG_VERSION_NUMBER":
            return (
                "TLS failed: the server answered in plain HTTP; if it runs with --no-tls, "
                "pass --server http://HOST:PORT"
            )
        return f"TLS failed ({exc.reason or exc})"
    return str(exc) or exc.__class__.__name__
