"""One download attempt (agent/download.py) against a real HTTPS server on loopback
that answers as told: the signed size holds whatever the server says or sends,
a resume asks for the rest with Range, and a server that ignores or refuses the
range is followed or started over."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.download import DownloadRefused, Incomplete, Request, fetch_once
from tests.agent.certs import ca_and_leaf

BODY = bytes(range(256)) * 64  # 16 KiB

Answer = Callable[[http.server.BaseHTTPRequestHandler], None]


@contextlib.contextmanager
def https_server(tmp_path: Path, answer: Answer) -> Iterator[tuple[str, ssl.SSLContext, list]]:
    """An HTTPS server whose every GET ``answer`` handles; its URL, a client context,
    and the request headers it saw."""
    ca, leaf = ca_and_leaf("Download CA")
    cert, key = leaf.write(tmp_path, "server")
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            answer(self)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = ssl.create_default_context(cadata=ca.cert_pem.decode())
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", client, seen
    finally:
        server.shutdown()
        server.server_close()


def request(url: str, context: ssl.SSLContext, part: Path, size: int = len(BODY)) -> Request:
    return Request(url, "/v1/releases/0.2.0/download", "fdl_x", size, part, context, proxy="")


def send(handler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def ranged(handler) -> None:
    """A server that honours ``Range: bytes=N-``."""
    asked = handler.headers.get("Range")
    if asked is None:
        send(handler, 200, BODY)
        return
    start = int(asked.removeprefix("bytes=").rstrip("-"))
    headers = {"Content-Range": f"bytes {start}-{len(BODY) - 1}/{len(BODY)}"}
    send(handler, 206, BODY[start:], headers)


def test_a_whole_download_with_the_token_and_a_resume_with_range(tmp_path):
    part = tmp_path / "d" / "sha.part"
    with https_server(tmp_path, ranged) as (url, context, seen):
        assert fetch_once(request(url, context, part)) == (0, len(BODY))
        assert part.read_bytes() == BODY
        assert seen[0]["Authorization"] == "Bearer fdl_x" and "Range" not in seen[0]
        part.write_bytes(BODY[:5000])  # as a cut left it
        assert fetch_once(request(url, context, part)) == (5000, len(BODY))
        assert seen[1]["Range"] == "bytes=5000-"
        assert part.read_bytes() == BODY
        assert fetch_once(request(url, context, part)) == (len(BODY), len(BODY))
        assert len(seen) == 2  # complete already: nothing asked


def test_a_server_that_ignores_the_range_is_followed_from_the_start(tmp_path):
    part = tmp_path / "sha.part"
    part.write_bytes(b"x" * 100)
    with https_server(tmp_path, lambda h: send(h, 200, BODY)) as (url, context, _):
        assert fetch_once(request(url, context, part)) == (100, len(BODY))
    assert part.read_bytes() == BODY


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (lambda h: send(h, 200, BODY + b"more"), "over the signed size"),
        (lambda h: send(h, 404, b'{"detail":"no release"}'), "download refused (404"),
        (lambda h: send(h, 401, b"token expired"), "token expired"),
    ],
)
def test_what_cannot_be_the_release_is_refused_not_retried(tmp_path, answer, said):
    part = tmp_path / "sha.part"
    with (
        https_server(tmp_path, answer) as (url, context, _),
        pytest.raises(DownloadRefused, match=said.replace("(", r"\(")),
    ):
        fetch_once(request(url, context, part))
    assert not part.exists()  # refused before a byte was written


def test_a_body_longer_than_its_header_says_is_cut_at_the_signed_size(tmp_path):
    def liar(handler) -> None:  # no Content-Length: the body runs to the close
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.wfile.write(BODY + b"x" * 1000)

    part = tmp_path / "sha.part"
    with (
        https_server(tmp_path, liar) as (url, context, _),
        pytest.raises(DownloadRefused, match="more than the signed size"),
    ):
        fetch_once(request(url, context, part))
    assert not part.exists()  # not this release's bytes: nothing kept


def test_a_wrong_range_answer_is_refused_and_an_unsatisfiable_one_starts_over(tmp_path):
    part = tmp_path / "sha.part"
    part.write_bytes(BODY[:10])

    def shifted(handler) -> None:
        send(handler, 206, BODY[5:], {"Content-Range": f"bytes 5-{len(BODY) - 1}/{len(BODY)}"})

    with (
        https_server(tmp_path, shifted) as (url, context, _),
        pytest.raises(DownloadRefused, match="answered the range from byte 10"),
    ):
        fetch_once(request(url, context, part))

    def unsatisfiable(handler) -> None:
        send(handler, 416, b"", {"Content-Range": f"bytes */{len(BODY)}"})

    with (
        https_server(tmp_path, unsatisfiable) as (url, context, _),
        pytest.raises(Incomplete, match="starting again"),
    ):
        fetch_once(request(url, context, part))
    assert not part.exists()


def test_a_connection_cut_halfway_keeps_the_part_for_the_resume(tmp_path):
    def cut(handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(BODY)))
        handler.end_headers()
        handler.wfile.write(BODY[:7000])
        handler.wfile.flush()
        handler.connection.shutdown(2)  # socket.SHUT_RDWR

    part = tmp_path / "sha.part"
    with (
        https_server(tmp_path, cut) as (url, context, _),
        pytest.raises(Incomplete, match=f"of {len(BODY)} bytes"),
    ):
        fetch_once(request(url, context, part))
    assert part.read_bytes() == BODY[:7000]
