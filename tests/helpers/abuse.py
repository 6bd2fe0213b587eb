"""One abusive client, in a process of its own, for the limit tests.

Run as ``python -m tests.helpers.abuse MODE URL CA_FILE SECONDS [AGENT_PORT]``: it
prints ``started`` once its first attempt is answered, abuses the server from
127.0.0.1 for ``SECONDS``, then prints one JSON object of what it saw. A process
of its own shares no GIL with the well-behaved client a test measures meanwhile,
and at nice 19 (but the light slowloris) it takes only the CPU the server and
that client leave (a real abuser has a machine of its own), so what the test
compares is the server's answer time.

Modes:
    enroll: failed enrollments, as fast as they are answered.
    bad-token: REST reads with an unknown API token.
    big-body: chunked bodies streamed until the server answers (413), again and again.
    slow-body: bodies started while the address already holds its cap of them.
    agent-pending: websocket upgrades on the agents' port that never authenticate.
    junk: event-stream subscriptions (token in ``FLEET_TOKEN``) that send junk frames.
    slowloris: connections that trickle header bytes and never finish a request.

The modes that open a connection per attempt open at most ``CONNECTIONS_A_SECOND``:
what the tests measure is the limit, not the cost of TLS handshakes (a flood of
new connections is a threat of its own; docs/decisions.md, "Slow and stalled
connections", has the figures without this pace).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import socket
import ssl
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fleet.protocol import AGENT_CHANNEL_PATH, PROTOCOL_VERSION, Subscribe, dump

SOURCE = "127.0.0.1"
"""Every abusive connection comes from this address."""

CONNECTIONS_A_SECOND = 50
PACE_S = 1 / CONNECTIONS_A_SECOND


class Abuse:
    """The target and what was seen, as a set of outcomes (statuses, close codes)."""

    def __init__(self, url: str, ca: str, seconds: float, agent_port: int | None) -> None:
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.agent_port = agent_port
        self.context = ssl.create_default_context(cafile=ca)
        self.end = time.monotonic() + seconds
        self.seen: set[str] = set()
        self.attempts = 0
        self.last = 0.0

    def running(self, pace_s: float = 0.0) -> bool:
        """Whether to go on (at most one attempt per ``pace_s``)."""
        if self.attempts == 1:
            print("started", flush=True)
        self.attempts += 1
        if pace_s:
            time.sleep(max(0.0, self.last + pace_s - time.monotonic()))
            self.last = time.monotonic()
        return time.monotonic() < self.end

    def tls(self, port: int | None = None) -> ssl.SSLSocket:
        raw = socket.create_connection(
            (self.host, port or self.port), timeout=10, source_address=(SOURCE, 0)
        )
        return self.context.wrap_socket(raw, server_hostname=self.host)

    def report(self) -> dict[str, object]:
        return {"seen": sorted(self.seen), "attempts": self.attempts}


def _early(sock: ssl.SSLSocket) -> bytes:
    """What the server sent so far, without blocking (a TLS ticket is not data)."""
    if not select.select([sock], [], [], 0)[0]:
        return b""
    sock.setblocking(False)
    try:
        return sock.recv(4096) or b"\0"  # \0: closed
    except ssl.SSLWantReadError:
        return b""
    finally:
        sock.settimeout(10)


def _status(sock: ssl.SSLSocket, data: bytes = b"") -> str:
    """The status of the server's answer, or how the connection ended without one."""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        return type(exc).__name__
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return match.group(1).decode() if match else "closed"


def _rest(abuse: Abuse, send: Callable[[httpx.Client], httpx.Response]) -> None:
    with httpx.Client(
        base_url=abuse.url,
        transport=httpx.HTTPTransport(verify=abuse.context, local_address=SOURCE),
    ) as api:
        while abuse.running():
            abuse.seen.add(str(send(api).status_code))


def enroll(abuse: Abuse) -> None:
    body = {"token": "flte_" + "x" * 40, "csr_pem": "y"}
    _rest(abuse, lambda api: api.post("/v1/enroll", json=body))


def bad_token(abuse: Abuse) -> None:
    headers = {"Authorization": "Bearer flta_" + "x" * 40}
    _rest(abuse, lambda api: api.get("/v1/agents", headers=headers))


def big_body(abuse: Abuse) -> None:
    chunk = b"x" * (64 << 10)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    head = b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    while abuse.running(PACE_S):
        with abuse.tls() as sock:
            sock.sendall(head)
            early = b""
            with contextlib.suppress(OSError):  # answered and closed while we sent
                while not (early := _early(sock)):
                    sock.sendall(framed)
            abuse.seen.add(_status(sock, early))


def slow_body(abuse: Abuse) -> None:
    head = b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"
    while abuse.running(PACE_S):
        with abuse.tls() as sock:
            with contextlib.suppress(OSError):
                sock.sendall(head)
            abuse.seen.add(_status(sock))


async def _agent_pending(abuse: Abuse) -> None:
    url = f"wss://{abuse.host}:{abuse.agent_port}{AGENT_CHANNEL_PATH}"
    while abuse.running(PACE_S):
        async with connect(url, ssl=abuse.context, local_addr=(SOURCE, 0)) as ws:
            try:
                while True:
                    async with asyncio.timeout(10):
                        await ws.recv()
            except ConnectionClosed as exc:
                abuse.seen.add(str(exc.rcvd.code if exc.rcvd else 1006))


def agent_pending(abuse: Abuse) -> None:
    asyncio.run(_agent_pending(abuse))


async def _junk(abuse: Abuse) -> None:
    url = abuse.url.replace("https://", "wss://", 1) + "/v1/events"
    headers = {"Authorization": f"Bearer {os.environ['FLEET_TOKEN']}"}
    while abuse.running(PACE_S):
        async with connect(url, ssl=abuse.context, additional_headers=headers, max_size=None) as ws:
            await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
            try:
                for _ in range(100):  # five times the burst
                    await ws.send("junk")
                while True:
                    async with asyncio.timeout(10):
                        await ws.recv()
            except ConnectionClosed as exc:
                abuse.seen.add(str(exc.rcvd.code if exc.rcvd else 1006))


def junk(abuse: Abuse) -> None:
    asyncio.run(_junk(abuse))


def slowloris(abuse: Abuse, want: int = 12) -> dict[str, object]:
    """Keeps ``want`` connections open (opening at most 50 a second), each sent a
    request's first line, then a header byte every 0.1 s; reports each one's life
    (from after its TLS handshake) and the first thing the server said."""
    live: dict[ssl.SSLSocket, float] = {}
    ended: list[tuple[float, float, str]] = []
    start = next_open = next_byte = time.monotonic()
    while abuse.running():
        if len(live) < want and time.monotonic() >= next_open:
            sock = abuse.tls()
            sock.sendall(b"GET /v1/agents HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            sock.setblocking(False)
            live[sock] = time.monotonic() - start
            next_open = time.monotonic() + 0.02
        for sock in select.select(list(live), [], [], 0.02)[0]:
            try:
                said = sock.recv(64)
            except ssl.SSLWantReadError:
                continue  # a TLS 1.3 session ticket, not data
            except OSError as exc:
                said = type(exc).__name__.encode()
            match = re.match(rb"HTTP/1\.1 (\d{3})", said)
            what = match.group(1).decode() if match else said.decode() or "closed"
            ended.append((live.pop(sock), time.monotonic() - start, what))
            sock.close()
        if time.monotonic() >= next_byte:
            next_byte = time.monotonic() + 0.1
            for sock in live:
                with contextlib.suppress(OSError):  # ssl.SSLWantWriteError too
                    sock.send(b"a")
    now = time.monotonic() - start
    return {"ended": ended, "open": [(opened, now) for opened in live.values()]}


MODES: dict[str, Callable[[Abuse], object]] = {
    "enroll": enroll,
    "bad-token": bad_token,
    "big-body": big_body,
    "slow-body": slow_body,
    "agent-pending": agent_pending,
    "junk": junk,
    "slowloris": slowloris,
}


def main() -> None:
    mode, url, ca, seconds = sys.argv[1:5]
    if mode != "slowloris":  # light, and its test times what it sees
        # A real abuser runs on a machine of its own: here it yields the CPU to
        # the server and to the measured client, so that what a test measures is
        # the server's work for the abuser, not the abuser's own on 2 cores.
        os.nice(19)
    agent_port = int(sys.argv[5]) if len(sys.argv) > 5 else None
    abuse = Abuse(url, ca, float(seconds), agent_port)
    result = MODES[mode](abuse)
    print(json.dumps(result if result is not None else abuse.report()), flush=True)


if __name__ == "__main__":
    main()
