"""The agent's side of the agent channel, without pydantic.

The wire protocol is defined once, in :mod:`fleet.protocol`.  The agent speaks
it with plain dataclasses and dicts because building those pydantic models costs
about 18 MB of resident memory, half of the agent's budget.  The test suite holds
this module to the protocol module: every frame built here is parsed by
``fleet.protocol.parse_agent_message``, and every server frame dumped by the
protocol models is read back here unchanged (``tests/agent/test_agent_wire.py``).

Unknown fields are ignored, as in the protocol module; unknown message types and
bad values raise :class:`WireError`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AGENT_CHANNEL_PATH",
    "CLOSE_RATE_LIMITED",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "CommandRequest",
    "ConfigSpec",
    "ErrorMessage",
    "Hello",
    "LogsSpec",
    "ProbeSpec",
    "RenewResponse",
    "ServerMessage",
    "TimeProbe",
    "Welcome",
    "WireError",
    "auth",
    "command_error",
    "command_request_id",
    "command_result",
    "heartbeat",
    "parse_server_message",
    "renew_request",
    "time_reply",
]

PROTOCOL_VERSION = 1
"""Must equal ``fleet.protocol.PROTOCOL_VERSION`` (a test checks it)."""

MAX_FRAME_BYTES = 1 << 20
"""Must equal ``fleet.protocol.MAX_FRAME_BYTES`` (a test checks it)."""

AGENT_CHANNEL_PATH = "/v1/agent/connect"

CLOSE_RATE_LIMITED = 4010
"""Must equal ``fleet.protocol.CloseCode.RATE_LIMITED`` (a test checks it): the
server closed the channel over a limit; the agent backs off before it dials again."""
"""Must equal ``fleet.protocol.AGENT_CHANNEL_PATH`` (a test checks it)."""


class WireError(ValueError):
    """A frame from the control plane that is not a valid message."""


# --------------------------------------------------------------------------
# Control plane -> agent


@dataclass(frozen=True)
class Hello:
    protocol_version: int
    server_version: str
    nonce: str


@dataclass(frozen=True)
class Welcome:
    agent_id: str
    heartbeat_interval_s: float
    pinned_version: str | None = None
    time_probe_interval_s: float = 30.0


@dataclass(frozen=True)
class TimeProbe:
    id: int
    t1: float


@dataclass(frozen=True)
class ProbeSpec:
    host: str
    port: int
    tls: bool = False
    server_name: str | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class LogsSpec:
    lines: int = 500
    since: float | None = None


@dataclass(frozen=True)
class ConfigSpec:
    pass


@dataclass(frozen=True)
class CommandRequest:
    request_id: str
    timeout_s: float
    command: ProbeSpec | LogsSpec | ConfigSpec


@dataclass(frozen=True)
class RenewResponse:
    certificate_pem: str | None = None
    ca_pem: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ErrorMessage:
    code: int
    message: str


ServerMessage = Hello | Welcome | TimeProbe | CommandRequest | RenewResponse | ErrorMessage


def _get(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in obj or (obj[key] is None and default is not ...):
        if default is ...:
            raise WireError(f"field {key!r} is missing")
        return default
    value: Any = obj[key]
    # bool is an int in Python; JSON true is not a number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise WireError(f"field {key!r} must be {_kind_name(kind)}")
    if not isinstance(value, kind):
        raise WireError(f"field {key!r} must be {_kind_name(kind)}")
    if kind == _NUMBER:
        try:
            value = float(obj[key])
        except OverflowError:
            raise WireError(f"field {key!r} is out of range") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise WireError(f"field {key!r} must be finite")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


_NUMBER = (int, float)


def _command(obj: Any) -> ProbeSpec | LogsSpec | ConfigSpec:
    if not isinstance(obj, dict):
        raise WireError("field 'command' must be an object")
    kind = obj.get("kind")
    if kind == "probe":
        host = _get(obj, "host", str)
        port = _get(obj, "port", int)
        timeout_s = _get(obj, "timeout_s", _NUMBER, 5.0)
        if not 1 <= len(host) <= 253:
            raise WireError("probe host must be 1 to 253 characters")
        if not 1 <= port <= 65535:
            raise WireError("probe port must be between 1 and 65535")
        if not 0 < timeout_s <= 60:
            raise WireError("probe timeout_s must be in (0, 60]")
        return ProbeSpec(
            host=host,
            port=port,
            tls=_get(obj, "tls", bool, False),
            server_name=_get(obj, "server_name", str, None),
            timeout_s=timeout_s,
        )
    if kind == "logs":
        lines = _get(obj, "lines", int, 500)
        if not 1 <= lines <= 10_000:
            raise WireError("logs lines must be between 1 and 10000")
        since = _get(obj, "since", _NUMBER, None)
        return LogsSpec(lines=lines, since=since)
    if kind == "config":
        return ConfigSpec()
    raise WireError(f"unknown command kind {str(kind)[:40]!r}")


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Parse one frame from the control plane.

    Raises:
        WireError: the frame is too big, not JSON, or not a message we know.
    """
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME_BYTES} byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError(f"frame is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise WireError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "hello":
        return Hello(
            protocol_version=_get(obj, "protocol_version", int),
            server_version=_get(obj, "server_version", str),
            nonce=_get(obj, "nonce", str),
        )
    if kind == "welcome":
        interval = _get(obj, "heartbeat_interval_s", _NUMBER)
        if interval <= 0:
            raise WireError("heartbeat_interval_s must be positive")
        probe_interval = _get(obj, "time_probe_interval_s", _NUMBER, 30.0)
        return Welcome(
            agent_id=_get(obj, "agent_id", str),
            heartbeat_interval_s=interval,
            pinned_version=_get(obj, "pinned_version", str, None),
            time_probe_interval_s=probe_interval,
        )
    if kind == "time_probe":
        return TimeProbe(id=_get(obj, "id", int), t1=_get(obj, "t1", _NUMBER))
    if kind == "command":
        return CommandRequest(
            request_id=_get(obj, "request_id", str),
            timeout_s=_get(obj, "timeout_s", _NUMBER),
            command=_command(obj.get("command")),
        )
    if kind == "renew_response":
        return RenewResponse(
            certificate_pem=_get(obj, "certificate_pem", str, None),
            ca_pem=_get(obj, "ca_pem", str, None),
            error=_get(obj, "error", str, None),
        )
    if kind == "error":
        return ErrorMessage(code=_get(obj, "code", int), message=_get(obj, "message", str))
    raise WireError(f"unknown message type {str(kind)[:40]!r}")


def command_request_id(data: str | bytes) -> str | None:
    """The ``request_id`` of a command frame this agent could not parse, if any.

    A newer control plane may send a command this agent does not know; answering
    ``unsupported`` at once beats leaving the operator to wait for a timeout.
    """
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(obj, dict) and obj.get("type") == "command":
        request_id = obj.get("request_id")
        if isinstance(request_id, str) and request_id:
            return request_id
    return None


# --------------------------------------------------------------------------
# Agent -> control plane


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in obj.items() if v is not None}, separators=(",", ":"), allow_nan=False
    )


def auth(*, agent_id: str, certificate_pem: str, signature: str, version: str) -> str:
    """The ``auth`` frame: proof of possession of the agent's key."""
    return _dump(
        {
            "type": "auth",
            "protocol_version": PROTOCOL_VERSION,
            "agent_id": agent_id,
            "certificate_pem": certificate_pem,
            "signature": signature,
            "version": version,
        }
    )


def heartbeat(
    *,
    seq: int,
    sent_at: float,
    version: str,
    uptime_s: float,
    queue_depth: int,
    cpu_percent: float | None = None,
    mem_rss_bytes: int | None = None,
    mem_host_percent: float | None = None,
    cert_not_after: float | None = None,
    config_hash: str | None = None,
) -> str:
    """The ``heartbeat`` frame; samples are ``None`` when they are turned off."""
    return _dump(
        {
            "type": "heartbeat",
            "seq": seq,
            "sent_at": sent_at,
            "version": version,
            "uptime_s": max(0.0, uptime_s),
            "cpu_percent": cpu_percent,
            "mem_rss_bytes": mem_rss_bytes,
            "mem_host_percent": mem_host_percent,
            "queue_depth": queue_depth,
            "cert_not_after": cert_not_after,
            "config_hash": config_hash,
        }
    )


def time_reply(*, probe_id: int, t1: float, t2: float, t3: float) -> str:
    """The ``time_reply`` frame answering a :class:`TimeProbe`."""
    return _dump({"type": "time_reply", "id": probe_id, "t1": t1, "t2": t2, "t3": t3})


def command_result(request_id: str, result: dict[str, Any]) -> str:
    """A ``command_result`` frame carrying a result (a dict with its ``kind``)."""
    return _dump({"type": "command_result", "request_id": request_id, "result": result})


def command_error(request_id: str, code: str, message: str) -> str:
    """A ``command_result`` frame carrying an error.

    Args:
        request_id: the request this answers.
        code: ``denied``, ``timeout``, ``busy``, ``unsupported`` or ``failed``.
        message: what happened, in words.
    """
    return _dump(
        {
            "type": "command_result",
            "request_id": request_id,
            "error": {"code": code, "message": message},
        }
    )


def renew_request(csr_pem: str) -> str:
    """The ``renew_request`` frame."""
    return _dump({"type": "renew_request", "csr_pem": csr_pem})
