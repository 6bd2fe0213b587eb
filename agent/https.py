"""A small HTTPS client on the standard library, for enrollment and TLS checks.

The base install on agent hosts carries no HTTP library, so enrollment speaks
HTTP/1.1 with :mod:`http.client` over an :class:`ssl.SSLContext` the caller
chooses.  ``HTTPS_PROXY``/``NO_PROXY`` are honoured as the channel honours them
(the same :mod:`websockets.proxy` rules): through an ``http://`` proxy, with a
``CONNECT`` tunnel, TLS still end to end with the control plane.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.exceptions import InvalidProxy
from websockets.proxy import get_proxy, parse_proxy
from websockets.uri import parse_uri

__all__ = ["Connection", "ProxyError", "Response", "Target", "peer_certificate", "unverified"]

TIMEOUT_S = 15.0


class ProxyError(ValueError):
    """The proxy setting cannot be used by this client; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where an ``https://`` URL points, and the proxy that leads there (if any).

    Attributes:
        host: the server's host name or address, as the certificate must name it.
        port: its port.
        proxy: ``(host, port, Proxy-Authorization header or None)``, or None.
    """

    host: str
    port: int
    proxy: tuple[str, int, str | None] | None = None

    @classmethod
    def of(cls, url: str, proxy: str | None = None) -> Target:
        """The target of ``url``; ``proxy`` overrides ``HTTPS_PROXY``/``NO_PROXY``.

        Raises:
            ProxyError: the proxy is not an ``http://`` proxy this client can use.
        """
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or 443
        if proxy is None:
            proxy = get_proxy(parse_uri(f"wss://{parts.netloc}/"))
        if not proxy:
            return cls(host, port)
        try:
            parsed = parse_proxy(proxy)
        except InvalidProxy as exc:
            raise ProxyError(f"the proxy {proxy!r} is unusable: {exc}") from None
        if parsed.scheme != "http":
            raise ProxyError(
                f"the proxy {proxy!r} is a {parsed.scheme} proxy; enrollment goes through "
                "http:// proxies only (CONNECT): set HTTPS_PROXY=http://HOST:PORT"
            )
        auth = None
        if parsed.username is not None:
            pair = f"{unquote(parsed.username)}:{unquote(parsed.password or '')}"
            auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        return cls(host, port, (parsed.host, parsed.port, auth))

    def describe(self) -> str:
        """``host:port``, and the proxy if there is one, for messages."""
        via = f" through the proxy {self.proxy[0]}:{self.proxy[1]}" if self.proxy else ""
        return f"{self.host}:{self.port}{via}"


@dataclass(frozen=True)
class Response:
    """A complete HTTP response."""

    status: int
    reason: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON.

        Raises:
            ValueError: it is not JSON.
        """
        return json.loads(self.body)


def unverified() -> ssl.SSLContext:
    """A client context that checks nothing: for reading what a server presents."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class Connection:
    """One HTTPS connection (kept alive between requests), through the proxy if any.

    Raises (from :meth:`open` and :meth:`request`):
        ssl.SSLCertVerificationError: the server's certificate failed ``context``.
        OSError: the server or proxy cannot be reached (a refused ``CONNECT`` too).
        http.client.HTTPException: the answer is not HTTP.
    """

    def __init__(self, target: Target, context: ssl.SSLContext, timeout: float = TIMEOUT_S):
        self.target = target
        if target.proxy is None:
            self._conn = http.client.HTTPSConnection(
                target.host, target.port, context=context, timeout=timeout
            )
        else:
            proxy_host, proxy_port, auth = target.proxy
            self._conn = http.client.HTTPSConnection(
                proxy_host, proxy_port, context=context, timeout=timeout
            )
            headers = {"Proxy-Authorization": auth} if auth else None
            self._conn.set_tunnel(target.host, target.port, headers=headers)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect and complete the TLS handshake."""
        self._conn.connect()

    def peer_certificate(self) -> bytes:
        """The DER of the certificate the server presented (after :meth:`open`)."""
        sock = self._conn.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        if not der:
            raise OSError("the server presented no certificate")
        return bytes(der)

    def request(self, method: str, path: str, body: Any = None) -> Response:
        """Send one request (``body`` as JSON) and read the whole answer."""
        headers = {"Host": self._host_header(), "Accept": "application/json, */*"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        self._conn.request(method, path, body=data, headers=headers)
        answer = self._conn.getresponse()
        return Response(answer.status, answer.reason, answer.read())

    def stream(self, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send a ``GET`` and return the answer unread, to read in chunks (a download)."""
        self._conn.request("GET", path, headers={"Host": self._host_header(), **headers})
        return self._conn.getresponse()

    def _host_header(self) -> str:
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        return host if self.target.port == 443 else f"{host}:{self.target.port}"

    def close(self) -> None:
        self._conn.close()


def peer_certificate(target: Target, timeout: float = TIMEOUT_S) -> bytes:
    """The DER certificate ``target`` presents, read without verifying it.

    Raises:
        OSError: the server or proxy cannot be reached.
    """
    with Connection(target, unverified(), timeout) as conn:
        conn.open()
        return conn.peer_certificate()
