"""Small network middlemen on loopback, with real sockets, for the tests.

* :class:`Relay`: a TCP relay (a load balancer under another address);
* :class:`ConnectProxy`: an HTTP forward proxy that allows or refuses ``CONNECT``,
  and can cut the first tunnel to a port after so many bytes (a download cut halfway);
* :class:`TlsFront`: a TLS-terminating reverse proxy with its own certificate,
  passing the request on over TLS, optionally dropping ``Upgrade``/``Connection``
  as a proxy not set up for websockets does;
* :class:`InspectionSwitch`: a firewall in the path whose SSL inspection is switched
  on and off: a plain TCP relay, or a :class:`TlsFront` with a foreign certificate.

Each serves in daemon threads until :meth:`close`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways in one thread (an SSL socket must not be read and written from
    two threads at once) until one side closes, then close both."""
    peers = {a: b, b: a}
    try:
        while True:
            ready = [s for s in peers if isinstance(s, ssl.SSLSocket) and s.pending()]
            if not ready:
                ready, _, _ = select.select(list(peers), [], [], 30)
                if not ready:
                    return
            for src in ready:
                chunk = src.recv(65536)
                if not chunk:
                    return
                peers[src].sendall(chunk)
    except (OSError, ssl.SSLError):
        return
    finally:
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.close()


def splice_cut(client: socket.socket, upstream: socket.socket, after: int) -> int:
    """:func:`splice`, but end both sides (no close, no more bytes) once ``after``
    bytes went from ``upstream`` to ``client``; the bytes passed down."""
    passed = 0
    try:
        while True:
            ready, _, _ = select.select([client, upstream], [], [], 30)
            if not ready:
                return passed
            for src in ready:
                chunk = src.recv(65536)
                if not chunk:
                    return passed
                if src is upstream:
                    chunk = chunk[: after - passed]
                    passed += len(chunk)
                    client.sendall(chunk)
                    if passed >= after:
                        return passed
                else:
                    upstream.sendall(chunk)
    except OSError:
        return passed
    finally:
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class _Listener:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.create_server((host, port))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.handled = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handled += 1
            threading.Thread(target=self._guarded, args=(conn,), daemon=True).start()

    def _guarded(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            with contextlib.suppress(OSError):
                conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class Relay(_Listener):
    """Listens on ``host`` (and ``port``, default any) and relays every connection
    to ``target``; with ``cut_after_s``, ends each one that long after accepting it
    (both ways, without a close frame), as a load balancer or NAT with a timeout does."""

    def __init__(
        self, host: str, target: tuple[str, int], port: int = 0, cut_after_s: float | None = None
    ) -> None:
        self.target = target
        self.cut_after_s = cut_after_s
        super().__init__(host, port)

    def handle(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        if self.cut_after_s is None:
            splice(conn, upstream)
            return

        def cut() -> None:
            for s in (conn, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)  # wakes the splice's select

        timer = threading.Timer(self.cut_after_s, cut)
        timer.daemon = True
        timer.start()
        try:
            splice(conn, upstream)
        finally:
            timer.cancel()


class ConnectProxy(_Listener):
    """An HTTP proxy: ``CONNECT`` is tunnelled, or refused with ``refuse`` as status.

    With ``cut=(port, n)``, the first tunnel to ``port`` is cut after ``n`` bytes
    went down it (:attr:`cut_at` records how many).
    """

    def __init__(self, refuse: str | None = None, cut: tuple[int, int] | None = None) -> None:
        self.refuse = refuse
        self.requests: list[str] = []
        self.cut = cut
        self.cut_at: int | None = None
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def targets(self) -> list[str]:
        """``HOST:PORT`` of every ``CONNECT`` asked for, in order."""
        return [line.split(" ")[1] for line in self.requests if line.startswith("CONNECT ")]

    def handle(self, conn: socket.socket) -> None:
        head = read_head(conn).decode("latin-1")
        line = head.split("\r\n", 1)[0]
        self.requests.append(line)
        method, target, _ = [*line.split(" ", 2), "", ""][:3]
        if method != "CONNECT" or self.refuse is not None:
            status = self.refuse or "405 Method Not Allowed"
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n".encode())
            conn.close()
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
        upstream.settimeout(None)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if self.cut is not None and self.cut[0] == int(port) and self.cut_at is None:
            self.cut_at = 0  # this tunnel is the one cut, whatever comes next
            self.cut_at = splice_cut(conn, upstream, self.cut[1])
            return
        splice(conn, upstream)


class TlsFront(_Listener):
    """A TLS-terminating reverse proxy in front of ``target`` (also TLS).

    Args:
        cert_file: its certificate chain (PEM).
        key_file: its key.
        target: the upstream address.
        upstream_ca: the CA file the upstream's certificate is checked against.
        rewrite: changes the request head before it goes upstream.
    """

    def __init__(
        self,
        cert_file: Path,
        key_file: Path,
        target: tuple[str, int],
        upstream_ca: Path,
        rewrite: Callable[[bytes], bytes] = lambda head: head,
    ) -> None:
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert_file, key_file)
        self.client_ctx = ssl.create_default_context(cafile=str(upstream_ca))
        self.target = target
        self.rewrite = rewrite
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        tls = self.server_ctx.wrap_socket(conn, server_side=True)
        head = read_head(tls)
        if not head:
            tls.close()
            return
        raw = socket.create_connection(self.target, timeout=5)
        upstream = self.client_ctx.wrap_socket(raw, server_hostname=self.target[0])
        upstream.sendall(self.rewrite(head))
        tls.settimeout(None)
        upstream.settimeout(None)
        splice(tls, upstream)


class InspectionSwitch(TlsFront):
    """A firewall between the agent and ``target``: with ``inspecting`` off it relays
    TCP untouched; on, it terminates TLS with its own certificate (an SSL-inspecting
    proxy).  :meth:`cut` ends the connections it relays, as turning inspection on
    does to the connections open at the time."""

    def __init__(
        self, cert_file: Path, key_file: Path, target: tuple[str, int], upstream_ca: Path
    ) -> None:
        self.inspecting = False
        self.intercepted = 0
        """Connections that met the inspecting certificate."""
        self._relayed: list[socket.socket] = []
        super().__init__(cert_file, key_file, target, upstream_ca)

    def handle(self, conn: socket.socket) -> None:
        if self.inspecting:
            self.intercepted += 1
            super().handle(conn)
            return
        upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        self._relayed += [conn, upstream]
        splice(conn, upstream)

    def cut(self) -> None:
        """End every relayed connection (both ways, without a close frame)."""
        relayed, self._relayed = self._relayed, []
        for s in relayed:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the splice's select


def strip_upgrade(head: bytes) -> bytes:
    """Drop ``Upgrade`` and ``Connection``, as a proxy without websocket support does."""
    lines = head.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith((b"upgrade:", b"connection:"))]
    return b"\r\n".join(kept)


@contextlib.contextmanager
def forward(listen_host: str, ports: list[int], target_host: str) -> Iterator[None]:
    """Relay ``listen_host:PORT`` to ``target_host:PORT`` for every port: the same
    server under another address, as a load balancer or a second DNS name gives it."""
    relays = [Relay(listen_host, (target_host, port), port) for port in ports]
    try:
        yield
    finally:
        for relay in relays:
            relay.close()
