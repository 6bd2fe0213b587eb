"""A real HTTP receiver on loopback for notification tests: records every request.

A ``ThreadingHTTPServer`` in a thread, so both in-process notifiers (on the test's
event loop) and control planes in subprocesses can post to it.  ``answers`` makes it
fail on purpose (``[500, 500]``: the first two requests get 500); ``gate`` makes it
hang until the test sets it (to fill a notifier's queue).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived_at: float = 0.0
    """``time.monotonic()`` when the request's body had been read."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    answers: list[int] = field(default_factory=list)
    """Status codes for the next requests, in order; then 200."""
    gate: threading.Event | None = None
    requests: list[Received] = field(default_factory=list)
    arrived: int = 0
    """Requests that came in, answered or still held at the gate."""
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                arrived_at = time.monotonic()
                with owner._lock:
                    owner.arrived += 1
                if owner.gate is not None:
                    owner.gate.wait(30)
                with owner._lock:
                    owner.requests.append(Received(self.path, dict(self.headers), body, arrived_at))
                    status = owner.answers.pop(0) if owner.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.requests if path is None or r.path == path]
