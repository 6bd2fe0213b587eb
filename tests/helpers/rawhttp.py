"""HTTP/1.1 by hand over TLS, for what a client library would not do: push a body
the server has refused, and watch the server's memory while it happens."""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import psutil

from tests.helpers.server import RunningServer

__all__ = ["Pushed", "push_chunked", "read_status", "ready", "rss", "tls_socket"]


def tls_socket(server: RunningServer, port: int | None = None) -> ssl.SSLSocket:
    """A TLS connection to ``server``'s API port (or ``port``: its agent port, say)."""
    raw = socket.create_connection(("127.0.0.1", port or server.port), timeout=10)
    return server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_status(sock: ssl.SSLSocket, data: bytes = b"") -> int | None:
    """The status of the answer on ``sock`` (``data``: what was read of it already)."""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(match.group(1)) if match else None


def ready(sock: ssl.SSLSocket) -> bytes:
    """What the server sent so far, without blocking (a TLS ticket is not data)."""
    if not select.select([sock], [], [], 0)[0]:
        return b""
    sock.setblocking(False)
    try:
        return sock.recv(4096)
    except ssl.SSLWantReadError:
        return b""
    finally:
        sock.settimeout(10)


def rss(server: RunningServer) -> int:
    assert server.proc is not None
    return int(psutil.Process(server.proc.pid).memory_info().rss)


@dataclass(frozen=True)
class Pushed:
    status: int | None
    """The answer's status (None: none came)."""
    answered_at: int
    """Body bytes sent when the answer came."""
    rss_growth: int
    """The server's peak RSS during the push, over its RSS before."""


def push_chunked(
    server: RunningServer, head: str, total: int, chunk_bytes: int = 64 << 10
) -> Pushed:
    """Send ``head`` (request line and headers, without the blank line) with a chunked
    body of ``total`` bytes, and keep sending after the answer as an attacker would,
    sampling the server's RSS all along."""
    before = rss(server)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss(server))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sent = 0
    chunk = b"x" * chunk_bytes
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    early = b""
    try:
        with tls_socket(server) as sock:
            sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            while sent < total:
                try:
                    sock.sendall(framed)
                except OSError:
                    break  # the server answered and closed
                sent += len(chunk)
                if early := ready(sock):
                    break  # the answer came while we were still sending
            status = read_status(sock, early)
            answered_at = sent
            # Keep pushing the rest: the server must not keep it.
            with contextlib.suppress(OSError):
                while sent < total:
                    sock.sendall(framed)
                    sent += len(chunk)
    finally:
        stop.set()
        sampler.join()
    return Pushed(status, answered_at, peak - before)
