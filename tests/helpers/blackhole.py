"""A TCP relay that can black-hole its path: sockets stay open, every byte is dropped.

``BlackHoleRelay("127.0.0.3", port, "127.0.0.1")`` relays ``127.0.0.3:port`` to
the server's ``127.0.0.1:port`` (TLS passes through untouched).  After
:meth:`BlackHoleRelay.black_hole` nothing gets through in either direction and
no FIN or RST is passed on, as when a router on the path drops everything: each
end sees only silence.  :meth:`BlackHoleRelay.heal` lets new connections through
again and resets the connections that lived through the hole, as a real path
does once it heals: their next segment reaches a peer that has given up (the
bytes in between are gone, so the stream could not resume anyway).
:meth:`BlackHoleRelay.refuse` resets every new connection instead, as a path
that is down, until :meth:`BlackHoleRelay.heal`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    holed: bool = False
    """This pair lived through a black hole: it is reset when the path heals."""


@dataclass
class BlackHoleRelay:
    listen_host: str
    port: int
    target_host: str
    dropped_bytes: int = 0
    """Bytes swallowed while black-holed, in both directions."""
    _holed: bool = False
    _refusing: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pairs: list[_Pair] = field(default_factory=list)
    _listener: socket.socket | None = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> BlackHoleRelay:
        self._listener = socket.create_server((self.listen_host, self.port))
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _reset(pair.client)
            _reset(pair.upstream)

    def black_hole(self) -> None:
        """Drop every byte from now on, keeping every socket open."""
        with self._lock:
            self._holed = True
            for pair in self._pairs:
                pair.holed = True

    def refuse(self) -> None:
        """Reset every new connection at once (a path that refuses), until :meth:`heal`."""
        with self._lock:
            self._refusing = True

    def heal(self) -> None:
        """Pass bytes again; connections that lived through the hole are reset."""
        with self._lock:
            self._holed = False
            self._refusing = False
            holed = [p for p in self._pairs if p.holed]
            self._pairs = [p for p in self._pairs if not p.holed]
        for pair in holed:
            _reset(pair.client)
            _reset(pair.upstream)

    @property
    def connections(self) -> int:
        """Connections relayed now."""
        with self._lock:
            return len(self._pairs)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
            if refusing:
                _reset(client)
                continue
            client.settimeout(None)
            try:
                upstream = socket.create_connection((self.target_host, self.port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                pair = _Pair(client, upstream, holed=self._holed)
                self._pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(pair, src, dst), daemon=True).start()

    def _pipe(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                with self._lock:
                    drop = pair.holed
                    if drop:
                        self.dropped_bytes += len(data)
                if not drop:
                    dst.sendall(data)
        with self._lock:
            # An end that closed during the hole: nothing reaches the other end.
            if pair.holed or pair not in self._pairs:
                return
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), waking a thread blocked in ``recv`` on it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    sock.close()
