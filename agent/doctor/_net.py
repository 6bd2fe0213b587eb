"""Steps 2 and 3: the server's name, and a TCP path to each of its ports.

The path is the agent's own: direct, or through the proxy the agent would use
(``proxy`` in its configuration, else ``HTTPS_PROXY``/``HTTP_PROXY`` unless
``NO_PROXY`` excludes the host; the choice is websockets', as in
``fleet agent run``).  Through a proxy the checks are: the proxy accepts a TCP
connection, then it allows ``CONNECT host:port``; a refusal is reported with the
proxy's own status line.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from websockets.exceptions import InvalidProxy
from websockets.proxy import Proxy, get_proxy, parse_proxy, prepare_connect_request
from websockets.uri import parse_uri

from fleet import __version__

from ._report import Report

__all__ = ["DialError", "Endpoint", "check_dns", "check_tcp", "dial", "endpoint", "is_ip"]

_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Endpoint:
    """One of the control plane's ports, and how the agent reaches it.

    Attributes:
        label: ``api`` or ``channel``.
        host: the server's host name or address.
        port: the TCP port.
        proxy: the proxy URL the agent would use, or ``None`` for a direct path.
    """

    label: str
    host: str
    port: int
    proxy: str | None

    @property
    def where(self) -> str:
        """``host:port``, with brackets around an IPv6 address."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class DialError(Exception):
    """The TCP path to an endpoint failed.

    Attributes:
        stage: ``tcp`` (direct), ``proxy`` (reaching the proxy) or ``connect``
            (the proxy refused the tunnel).
        fix: what to do.
    """

    def __init__(self, stage: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.fix = fix


def is_ip(host: str) -> bool:
    """Whether ``host`` is an IP address literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def endpoint(label: str, host: str, port: int, config_proxy: str | None) -> Endpoint:
    """The endpoint, with the proxy ``fleet agent run`` would choose for it."""
    if config_proxy:
        proxy: str | None = config_proxy
    else:
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        proxy = get_proxy(parse_uri(f"wss://{netloc}/"))
    return Endpoint(label, host, port, proxy)


def _ms(start: float) -> str:
    return f"{(time.perf_counter() - start) * 1000:.1f} ms"


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def check_dns(report: Report, host: str, proxied: bool, timeout_s: float) -> None:
    """Resolve the server's name as the agent would."""
    if is_ip(host):
        report.skip("dns", f"{host} is an IP literal")
        return
    start = time.perf_counter()
    # getaddrinfo has no timeout of its own; a resolver that does not answer is a finding.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM).result(
            timeout_s
        )
    except (socket.gaierror, UnicodeError, TimeoutError) as exc:
        if proxied:
            report.skip("dns", f"{host} does not resolve here ({_why(exc)}); the proxy resolves it")
            return
        report.fail(
            "dns",
            f"{host} does not resolve: {_why(exc)}",
            "check the name in agent.json's server (or the server setting), "
            "/etc/resolv.conf and the DNS server; the control plane's name must resolve "
            "on this host",
        )
        return
    finally:
        pool.shutdown(wait=False)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    report.ok("dns", f"{host} resolves to {', '.join(addresses[:4])} in {_ms(start)}")


def _tcp(host: str, port: int, timeout_s: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout_s)


def _parsed_proxy(ep: Endpoint) -> Proxy:
    assert ep.proxy is not None
    try:
        proxy = parse_proxy(ep.proxy)
    except InvalidProxy as exc:
        raise DialError("proxy", f"proxy {ep.proxy!r} is not usable: {exc}", _PROXY_FIX) from None
    if not proxy.scheme.startswith("http"):
        raise DialError(
            "proxy",
            f"proxy {proxy.scheme}://{proxy.host}:{proxy.port}: doctor checks HTTP(S) proxies only",
            "use an http:// or https:// proxy, or check the SOCKS proxy by hand",
        )
    return proxy


_PROXY_FIX = (
    "check HTTPS_PROXY/HTTP_PROXY (or the proxy setting) and that the proxy runs; "
    "if the server is reachable directly, add its host to NO_PROXY"
)


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_HEAD:
            break
    return data


def _tunnel(sock: socket.socket, proxy: Proxy, ep: Endpoint) -> str:
    """Ask the proxy for a tunnel; return its status line, or raise DialError."""
    request = prepare_connect_request(
        proxy, parse_uri(f"wss://{ep.where}/"), user_agent_header=f"fleet-agent/{__version__}"
    )
    sock.sendall(request)
    head = _read_head(sock)
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1").strip()
    parts = status_line.split(" ", 2)
    if len(parts) >= 2 and parts[0].startswith("HTTP/") and parts[1].startswith("2"):
        return status_line
    shown = status_line or "(the proxy closed the connection without an answer)"
    if len(parts) >= 2 and parts[1] == "407":
        fix = (
            "the proxy wants credentials: give them in the proxy URL "
            "(http://USER:PASSWORD@HOST:PORT, in the proxy setting or HTTPS_PROXY)"
        )
    else:
        fix = (
            f"ask the proxy's administrators to allow CONNECT to {ep.where} (many "
            "allow port 443 only), or add the host to NO_PROXY if it is reachable directly"
        )
    raise DialError(
        "connect", f"proxy {proxy.host}:{proxy.port} refused CONNECT {ep.where}: {shown}", fix
    )


def dial(ep: Endpoint, timeout_s: float) -> tuple[socket.socket, str]:
    """A TCP stream to ``ep`` along the agent's path.

    Returns:
        The socket (blocking, with ``timeout_s``) and what was done, in words.

    Raises:
        DialError: with the stage that failed and what to do.
    """
    start = time.perf_counter()
    if ep.proxy is None:
        try:
            sock = _tcp(ep.host, ep.port, timeout_s)
        except OSError as exc:
            raise DialError(
                "tcp",
                f"cannot connect to {ep.where} ({ep.label} port): {_why(exc)}",
                f"check that the control plane runs and listens on {ep.where}, and that "
                "no firewall or security group drops the connection; if this host must "
                "use a proxy, set HTTPS_PROXY",
            ) from None
        return sock, f"connected to {ep.where} ({ep.label} port) in {_ms(start)}"
    proxy = _parsed_proxy(ep)
    try:
        sock = _tcp(proxy.host, proxy.port, timeout_s)
        if proxy.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=proxy.host)
    except OSError as exc:
        raise DialError(
            "proxy", f"cannot reach the proxy {proxy.host}:{proxy.port}: {_why(exc)}", _PROXY_FIX
        ) from None
    try:
        status = _tunnel(sock, proxy, ep)
    except OSError as exc:
        sock.close()
        raise DialError(
            "connect", f"proxy {proxy.host}:{proxy.port} dropped CONNECT: {_why(exc)}", _PROXY_FIX
        ) from None
    except DialError:
        sock.close()
        raise
    detail = (
        f"{ep.where} ({ep.label} port) through proxy {proxy.host}:{proxy.port}: "
        f"{status} in {_ms(start)}"
    )
    return sock, detail


def check_tcp(report: Report, ep: Endpoint, timeout_s: float) -> bool:
    """Open and close a TCP path to ``ep``; report it. Returns whether it worked."""
    try:
        sock, detail = dial(ep, timeout_s)
    except DialError as exc:
        if exc.stage == "connect":
            report.ok("proxy", f"proxy for {ep.where} is reachable")
        report.fail("proxy" if exc.stage != "tcp" else "tcp", str(exc), exc.fix)
        return False
    sock.close()
    report.ok("tcp", detail)
    return True
