"""Step 7 (and the measurement for step 6): the agent channel itself.

Doctor opens ``wss://HOST:CHANNEL_PORT/v1/agent/connect`` along the agent's
path and expects ``101 Switching Protocols`` and then the server's ``hello``.
A proxy or load balancer that drops the ``Upgrade`` header shows as a plain
HTTP answer instead.  Then, unless told not to, doctor authenticates as the
agent (proof of possession: it signs the server's nonce with ``key.pem``), which
proves the identity is accepted, and answers the control plane's first clock
probe, which measures the clock offset.

Authenticating takes the channel over from a running agent of the same
identity for a moment (close code 4007 on its side, then "offline" until it
reconnects by itself), so :mod:`._run` authenticates only when no agent of the
state directory runs here, or when told to (``--auth``).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from agent.keys import sign_nonce
from agent.state import Identity
from fleet import __version__
from fleet.protocol import (
    AGENT_CHANNEL_PATH,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    ErrorMessage,
    Hello,
    ProtocolError,
    ServerToAgent,
    TimeProbe,
    TimeReply,
    Welcome,
    dump,
    parse_server_message,
)

from ._net import DialError, Endpoint, dial
from ._report import Report

__all__ = ["CLOSE_FIXES", "ChannelClock", "check_channel"]

_UPGRADE_FIX = (
    "let websockets through whatever sits in front of the channel port: nginx needs "
    "`proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    "proxy_set_header Connection upgrade;`, other load balancers a websocket or TCP "
    "mode; or point the agent straight at the channel port"
)
CLOSE_FIXES: dict[int, tuple[str, str]] = {
    CloseCode.UNAUTHENTICATED: (
        "the control plane does not accept this identity (unknown agent: decommissioned, "
        "or its store was reset)",
        "enroll again with a new token: `fleet agent enroll --force --state-dir DIR ...`",
    ),
    CloseCode.REVOKED: (
        "the control plane revoked this agent",
        "a revoked identity never comes back: enroll the host again with a new token "
        "(`fleet agent enroll --force ...`); `fleet agent run` exits 3 until then",
    ),
    CloseCode.CERT_EXPIRED: (
        "the agent's certificate expired",
        "enroll again with a new token (`fleet agent enroll --force ...`), then read the "
        "agent's log for 'certificate renewal failed' to see why renewal did not happen",
    ),
    CloseCode.UNSUPPORTED_VERSION: (
        "the control plane does not speak this agent's protocol version",
        "upgrade the agent to the control plane's version",
    ),
}


@dataclass(frozen=True)
class ChannelClock:
    """The clock offset measured on the channel.

    Attributes:
        offset_s: this host's clock minus the control plane's.
        rtt_s: the channel's round trip (the offset is good to half of it).
    """

    offset_s: float
    rtt_s: float


def _recv(ws: ClientConnection, timeout_s: float) -> ServerToAgent:
    return parse_server_message(ws.recv(timeout=timeout_s))


def _closed(report: Report, exc: ConnectionClosed, said: str | None) -> None:
    code = exc.rcvd.code if exc.rcvd is not None else CloseCode.ABNORMAL
    reason = said or (exc.rcvd.reason if exc.rcvd is not None else "") or "no reason given"
    meaning, fix = CLOSE_FIXES.get(
        code,
        (
            "the control plane closed the channel",
            "read the control plane's audit (`channel.auth` entries) and the agent's log",
        ),
    )
    report.fail("auth", f"{meaning} (close {code}: {reason})", fix)


def check_channel(
    report: Report,
    ep: Endpoint,
    identity: Identity,
    ssl_context: ssl.SSLContext,
    *,
    authenticate: bool,
    timeout_s: float,
) -> ChannelClock | None:
    """Check the websocket upgrade and, if asked, authenticate and measure the clock."""
    url = f"wss://{ep.where}{AGENT_CHANNEL_PATH}"
    try:
        sock, _ = dial(ep, timeout_s)
    except DialError as exc:
        report.fail("upgrade", str(exc), exc.fix)
        return None
    try:
        ws = connect(
            url,
            sock=sock,
            ssl=ssl_context,
            server_hostname=ep.host,
            proxy=None,
            open_timeout=timeout_s,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            user_agent_header=f"fleet-agent/{__version__} (doctor)",
        )
    except InvalidStatus as exc:
        sock.close()
        status = exc.response.status_code
        server = exc.response.headers.get("Server")
        by = f" (Server: {server})" if server else ""
        report.fail(
            "upgrade",
            f"{url} answered HTTP {status} {exc.response.reason_phrase} instead of 101 "
            f"Switching Protocols{by}: something on the path does not pass the websocket "
            "upgrade (it dropped the Upgrade header)",
            _UPGRADE_FIX,
        )
        return None
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        sock.close()
        report.fail(
            "upgrade",
            f"the websocket handshake with {url} failed: {exc.__class__.__name__}: {exc}",
            _UPGRADE_FIX,
        )
        return None
    with ws:
        return _after_upgrade(report, ws, url, identity, authenticate, timeout_s)


def _after_upgrade(
    report: Report,
    ws: ClientConnection,
    url: str,
    identity: Identity,
    authenticate: bool,
    timeout_s: float,
) -> ChannelClock | None:
    try:
        hello = _recv(ws, timeout_s)
    except (ConnectionClosed, TimeoutError, ProtocolError) as exc:
        report.fail(
            "upgrade",
            f"{url} upgraded but sent no hello ({exc.__class__.__name__}: {exc})",
            "check that this port is the control plane's channel port (agent.json's "
            "channel_port) and not another websocket service",
        )
        return None
    if not isinstance(hello, Hello):
        report.fail("upgrade", f"expected hello, got {type(hello).__name__}", _UPGRADE_FIX)
        return None
    version = "" if hello.protocol_version == PROTOCOL_VERSION else " (differs from ours)"
    report.ok(
        "upgrade",
        f"{url}: 101, hello from control plane {hello.server_version}, "
        f"protocol {hello.protocol_version}{version}",
    )
    if not authenticate:
        return None
    return _authenticate(report, ws, identity, hello, timeout_s)


def _authenticate(
    report: Report, ws: ClientConnection, identity: Identity, hello: Hello, timeout_s: float
) -> ChannelClock | None:
    try:
        key_pem = identity.key_path.read_bytes()
        cert_pem = identity.cert_path.read_text(encoding="ascii")
        signature = sign_nonce(key_pem, hello.nonce)
    except (OSError, ValueError) as exc:
        report.fail(
            "auth",
            f"cannot prove the identity with key.pem and cert.pem: {exc}",
            "run doctor as the agent's user; if the key is damaged, enroll again",
        )
        return None
    said: str | None = None
    try:
        ws.send(
            dump(
                Auth(
                    protocol_version=PROTOCOL_VERSION,
                    agent_id=identity.agent_id,
                    certificate_pem=cert_pem,
                    signature=signature,
                    version=__version__,
                )
            )
        )
        while True:
            answer = _recv(ws, timeout_s)
            if isinstance(answer, ErrorMessage):
                said = answer.message
                continue
            break
    except ConnectionClosed as exc:
        _closed(report, exc, said)
        return None
    except (TimeoutError, ProtocolError) as exc:
        report.fail("auth", f"no welcome after auth ({exc})", "read the control plane's log")
        return None
    if not isinstance(answer, Welcome):
        report.fail("auth", f"expected welcome, got {type(answer).__name__}", "upgrade the agent")
        return None
    report.ok("auth", f"identity accepted: agent {identity.name} ({answer.agent_id})")
    return _clock(ws, timeout_s)


def _clock(ws: ClientConnection, timeout_s: float) -> ChannelClock | None:
    """Answer the control plane's first clock probe; measure the offset and round trip."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            message = _recv(ws, max(0.01, deadline - time.monotonic()))
            if isinstance(message, TimeProbe):
                break
        t2 = time.time()
        ws.send(dump(TimeReply(id=message.id, t1=message.t1, t2=t2, t3=time.time())))
        start = time.perf_counter()
        if not ws.ping().wait(timeout_s):
            return None
        rtt = time.perf_counter() - start
    except (ConnectionClosed, TimeoutError, ProtocolError):
        return None
    # t2 = t1 + one-way delay + offset; the one-way delay is about half the round trip.
    return ChannelClock(offset_s=t2 - message.t1 - rtt / 2, rtt_s=rtt)
