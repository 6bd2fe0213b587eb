"""A TCP forwarder on another loopback address: a second name for the same server.

``forward("127.0.0.3", [8443, 8444], "127.0.0.1")`` makes ``127.0.0.3:8443`` and
``127.0.0.3:8444`` reach the server on ``127.0.0.1`` (TLS passes through
untouched), as a load balancer or a DNS alias would: the name the agent dials is
then one the server's certificate may not carry.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def forward(listen_host: str, ports: list[int], target_host: str) -> Iterator[None]:
    """Forward ``listen_host:PORT`` to ``target_host:PORT`` for every port, in threads."""
    stop = threading.Event()
    listeners = [socket.create_server((listen_host, port)) for port in ports]
    open_socks: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def accept(listener: socket.socket, port: int) -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection((target_host, port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            open_socks.extend([client, upstream])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    for listener, port in zip(listeners, ports, strict=True):
        thread = threading.Thread(target=accept, args=(listener, port), daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for sock in [*listeners, *open_socks]:
            sock.close()
