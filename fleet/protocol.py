"""The wire protocol shared by the agent, the control plane and the dashboard.

Every message is a JSON object with a ``type`` field; each direction of each
channel is a pydantic discriminated union on that field.  This module imports
nothing but pydantic and the standard library, so the agent stays small and the
dashboard never needs the server's code.

Channels:

* agent channel ``/v1/agent/connect``: :data:`ServerToAgent` and :data:`AgentToServer`;
* event stream ``/v1/events``: :data:`ClientToStream` and :data:`StreamToClient`.

All times on the wire are UNIX epoch seconds as floats.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "AGENT_CHANNEL_PATH",
    "MAX_FRAME_BYTES",
    "MAX_STREAM_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "AgentHistory",
    "AgentRemoved",
    "AgentState",
    "AgentToServer",
    "AgentUpdate",
    "AlertCleared",
    "AlertInfo",
    "AlertRaised",
    "Auth",
    "ClientToStream",
    "CloseCode",
    "Command",
    "CommandError",
    "CommandEvent",
    "CommandFinished",
    "CommandRequest",
    "CommandResult",
    "ConfigCommand",
    "ConfigResult",
    "ConnectionInfo",
    "ConnectionRemoved",
    "ConnectionUpdate",
    "ErrorMessage",
    "FailureClass",
    "Heartbeat",
    "Hello",
    "LogsCommand",
    "LogsResult",
    "Presence",
    "ProbeCommand",
    "ProbeResult",
    "ProtocolError",
    "RenewRequest",
    "RenewResponse",
    "ServerToAgent",
    "Snapshot",
    "StreamError",
    "StreamToClient",
    "Subscribe",
    "TimeProbe",
    "TimeReply",
    "Welcome",
    "dump",
    "parse_agent_message",
    "parse_client_message",
    "parse_server_message",
    "parse_stream_message",
]

PROTOCOL_VERSION = 1
"""Bumped on any change an older peer could not ignore."""

MAX_FRAME_BYTES = 1 << 20
"""Largest frame an agent or a dashboard may send (1 MiB); a log bundle is capped below it."""

AGENT_CHANNEL_PATH = "/v1/agent/connect"
"""The agent channel's path, on the agents' own port and on the API port."""

MAX_STREAM_FRAME_BYTES = 256 << 20
"""Largest frame a dashboard accepts from the event stream: a snapshot of 10,000
agents with their sparklines is several MiB."""


class CloseCode:
    """WebSocket close codes; 4xxx are ours, each with one meaning."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    PROTOCOL_ERROR = 4000
    """A frame was not JSON or not a message we know."""
    UNAUTHENTICATED = 4001
    """Bad signature, unknown agent, unknown or wrong token."""
    FORBIDDEN = 4003
    """The token is valid but its role may not do this."""
    REVOKED = 4004
    """The agent's identity was revoked: the agent must stop retrying."""
    CERT_EXPIRED = 4005
    """The certificate expired: the agent must enroll again."""
    UNSUPPORTED_VERSION = 4006
    """The peer speaks a protocol version we do not."""
    REPLACED = 4007
    """Another connection for the same agent took over."""
    AUTH_TIMEOUT = 4008
    """The first message did not come in time."""
    SILENT = 4009
    """No heartbeat for so long that the agent went offline: reconnect."""
    RATE_LIMITED = 4010
    """A limit was exceeded (messages a second, failed attempts or pending
    connections from one address): back off before reconnecting."""


class ProtocolError(ValueError):
    """A frame that is not a valid message.  ``str()`` says what was wrong."""


class _Msg(BaseModel):
    # Unknown fields are ignored so that a newer peer of the same protocol
    # version can add optional fields; unknown types and bad values are errors.
    model_config = ConfigDict(extra="ignore", frozen=True)


# --------------------------------------------------------------------------
# Shared value types


class Presence(StrEnum):
    """An agent's presence as the control plane sees it."""

    PENDING = "pending"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    STALE = "stale"
    OFFLINE = "offline"
    REVOKED = "revoked"


class AgentState(_Msg):
    """One agent's latest state: what a dashboard row shows."""

    id: str
    name: str
    pool: str
    labels: dict[str, str] = {}
    state: Presence
    reasons: list[str] = []
    """Why the agent is degraded or worse, in words."""
    version: str | None = None
    pinned_version: str | None = None
    enrolled_at: float | None = None
    connected_at: float | None = None
    last_heartbeat_at: float | None = None
    heartbeat_interval_s: float = 5.0
    uptime_s: float | None = None
    cpu_percent: float | None = None
    mem_rss_bytes: int | None = None
    mem_host_percent: float | None = None
    queue_depth: int | None = None
    cert_not_after: float | None = None
    config_hash: str | None = None
    pinned_config_hash: str | None = None
    skew_ms: float | None = None
    rtt_ms: float | None = None
    remote_addr: str | None = None


class AgentHistory(_Msg):
    """Recent samples of one agent, oldest first, for sparklines."""

    cpu: list[float] = []
    mem: list[float] = []
    queue: list[int] = []


class AlertInfo(_Msg):
    """An alert: raised once, cleared once."""

    id: str
    kind: str
    severity: Literal["warning", "critical"]
    target: str
    """An agent id, ``pool:NAME`` or ``connection:NAME``."""
    message: str
    raised_at: float
    """When the check first failed; kept across restarts and flaps."""
    cleared_at: float | None = None
    flaps: int = 0
    """Times the check passed and failed again within the server's ``alert_hold_s``:
    the alert stayed open (with its ``raised_at``) instead of clearing and rising."""


class ConnectionInfo(_Msg):
    """A registered data source and whether some agent can reach it now."""

    name: str
    host: str
    port: int
    pools: list[str]
    routable: bool
    via_pool: str | None = None
    via_agent: str | None = None


# --------------------------------------------------------------------------
# Commands and their results (carried on the agent channel)


class ProbeCommand(_Msg):
    kind: Literal["probe"] = "probe"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    server_name: str | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class LogsCommand(_Msg):
    kind: Literal["logs"] = "logs"
    lines: int = Field(default=500, ge=1, le=10_000)
    since: float | None = None


class ConfigCommand(_Msg):
    kind: Literal["config"] = "config"


Command = Annotated[ProbeCommand | LogsCommand | ConfigCommand, Field(discriminator="kind")]


FailureClass = Literal["dns", "refused", "timeout", "tls", "unreachable", "denied", "error"]


class ProbeResult(_Msg):
    kind: Literal["probe"] = "probe"
    host: str
    port: int
    tls: bool
    ok: bool
    failure: FailureClass | None = None
    error: str | None = None
    resolved: list[str] = []
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    peer_cert_not_after: float | None = None
    peer_cert_subject: str | None = None


class LogsResult(_Msg):
    kind: Literal["logs"] = "logs"
    lines: list[str]
    truncated: bool = False


class ConfigResult(_Msg):
    kind: Literal["config"] = "config"
    config: dict[str, Any]
    hash: str


CommandResult = Annotated[ProbeResult | LogsResult | ConfigResult, Field(discriminator="kind")]


class CommandError(_Msg):
    code: str
    """Machine-readable: ``denied``, ``timeout``, ``busy``, ``unsupported``, ``failed``."""
    message: str


# --------------------------------------------------------------------------
# Agent channel: control plane -> agent


class Hello(_Msg):
    """First frame from the control plane: the challenge to sign."""

    type: Literal["hello"] = "hello"
    protocol_version: int
    server_version: str
    nonce: str
    """Hex; the agent signs ``fleet-agent-auth:`` + nonce (UTF-8)."""


class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    agent_id: str
    heartbeat_interval_s: float
    pinned_version: str | None = None
    time_probe_interval_s: float = 30.0


class TimeProbe(_Msg):
    """NTP-style: t1 is the control plane's send time."""

    type: Literal["time_probe"] = "time_probe"
    id: int
    t1: float


class CommandRequest(_Msg):
    type: Literal["command"] = "command"
    request_id: str
    timeout_s: float
    command: Command


class RenewResponse(_Msg):
    type: Literal["renew_response"] = "renew_response"
    certificate_pem: str | None = None
    ca_pem: str | None = None
    error: str | None = None


class ErrorMessage(_Msg):
    """Sent just before a close: what went wrong and what to do."""

    type: Literal["error"] = "error"
    code: int
    message: str


ServerToAgent = Annotated[
    Hello | Welcome | TimeProbe | CommandRequest | RenewResponse | ErrorMessage,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------
# Agent channel: agent -> control plane


class Auth(_Msg):
    type: Literal["auth"] = "auth"
    protocol_version: int
    agent_id: str
    certificate_pem: str = Field(max_length=16_384)
    signature: str
    """Base64 of the signature over ``fleet-agent-auth:`` + nonce."""
    version: str


class Heartbeat(_Msg):
    type: Literal["heartbeat"] = "heartbeat"
    seq: int = Field(ge=0)
    sent_at: float
    version: str = Field(max_length=64)
    uptime_s: float = Field(ge=0)
    cpu_percent: float | None = Field(default=None, ge=0)
    mem_rss_bytes: int | None = Field(default=None, ge=0)
    mem_host_percent: float | None = Field(default=None, ge=0, le=100)
    queue_depth: int = Field(default=0, ge=0)
    cert_not_after: float | None = None
    config_hash: str | None = Field(default=None, max_length=128)


class TimeReply(_Msg):
    """t2: agent's receive time; t3: agent's send time."""

    type: Literal["time_reply"] = "time_reply"
    id: int
    t1: float
    t2: float
    t3: float


class CommandFinished(_Msg):
    type: Literal["command_result"] = "command_result"
    request_id: str
    result: CommandResult | None = None
    error: CommandError | None = None


class RenewRequest(_Msg):
    type: Literal["renew_request"] = "renew_request"
    csr_pem: str = Field(max_length=16_384)


AgentToServer = Annotated[
    Auth | Heartbeat | TimeReply | CommandFinished | RenewRequest,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------
# Event stream: dashboard -> control plane


class Subscribe(_Msg):
    """First frame from a dashboard; ``since`` resumes after that sequence number.

    A resume needs the ``epoch`` of the snapshot the sequence number came from:
    sequence numbers restart with every server start, so a ``since`` from another
    epoch (or without one, or past the server's latest) gets a fresh snapshot.
    """

    type: Literal["subscribe"] = "subscribe"
    protocol_version: int
    since: int | None = None
    epoch: str | None = None


ClientToStream = Annotated[Subscribe, Field(discriminator="type")]


# --------------------------------------------------------------------------
# Event stream: control plane -> dashboard


class Snapshot(_Msg):
    type: Literal["snapshot"] = "snapshot"
    protocol_version: int
    seq: int
    epoch: str = ""
    """The stream's epoch, new at every server start: what ``seq`` counts within.
    A dashboard sends it back in :class:`Subscribe` to resume."""
    server_time: float
    agents: list[AgentState]
    history: dict[str, AgentHistory] = {}
    alerts: list[AlertInfo] = []
    connections: list[ConnectionInfo] = []
    role: str = "viewer"
    """The subscriber's role, so a dashboard can show what it may do."""


class AgentUpdate(_Msg):
    type: Literal["agent"] = "agent"
    seq: int
    agent: AgentState


class AlertRaised(_Msg):
    type: Literal["alert_raised"] = "alert_raised"
    seq: int
    alert: AlertInfo


class AlertCleared(_Msg):
    type: Literal["alert_cleared"] = "alert_cleared"
    seq: int
    alert: AlertInfo


class ConnectionUpdate(_Msg):
    type: Literal["connection"] = "connection"
    seq: int
    connection: ConnectionInfo


class AgentRemoved(_Msg):
    """An agent was decommissioned or forgotten: drop it from the view."""

    type: Literal["agent_removed"] = "agent_removed"
    seq: int
    agent_id: str


class ConnectionRemoved(_Msg):
    """A connection was deleted: drop it from the view."""

    type: Literal["connection_removed"] = "connection_removed"
    seq: int
    name: str


class CommandEvent(_Msg):
    """A command's outcome, for the agent's detail view."""

    type: Literal["command_event"] = "command_event"
    seq: int
    agent_id: str
    request_id: str
    kind: str
    actor: str
    ok: bool
    summary: str
    at: float


class StreamError(_Msg):
    type: Literal["error"] = "error"
    seq: int = 0
    code: int
    message: str


StreamToClient = Annotated[
    Snapshot
    | AgentUpdate
    | AlertRaised
    | AlertCleared
    | ConnectionUpdate
    | AgentRemoved
    | ConnectionRemoved
    | CommandEvent
    | StreamError,
    Field(discriminator="type"),
]

# --------------------------------------------------------------------------
# Parsing: one place that turns bytes into messages or a clear ProtocolError.

_T = TypeVar("_T")

_AGENT_TO_SERVER: TypeAdapter[AgentToServer] = TypeAdapter(AgentToServer)
_SERVER_TO_AGENT: TypeAdapter[ServerToAgent] = TypeAdapter(ServerToAgent)
_CLIENT_TO_STREAM: TypeAdapter[ClientToStream] = TypeAdapter(ClientToStream)
_STREAM_TO_CLIENT: TypeAdapter[StreamToClient] = TypeAdapter(StreamToClient)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "message"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _parse(
    adapter: TypeAdapter[_T], data: str | bytes, direction: str, limit: int = MAX_FRAME_BYTES
) -> _T:
    if len(data) > limit:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {limit} byte limit")
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"frame is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("message has no string 'type' field")
    try:
        return adapter.validate_python(obj)
    except ValidationError as exc:
        detail = _describe(exc)
        raise ProtocolError(f"invalid {direction} message {kind[:40]!r}: {detail}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ProtocolError(f"invalid {direction} message: {exc}") from None


def parse_agent_message(data: str | bytes) -> AgentToServer:
    """Parse a frame an agent sent.  Raises :class:`ProtocolError`."""
    return _parse(_AGENT_TO_SERVER, data, "agent")


def parse_server_message(data: str | bytes) -> ServerToAgent:
    """Parse a frame the control plane sent to an agent.  Raises :class:`ProtocolError`."""
    return _parse(_SERVER_TO_AGENT, data, "server")


def parse_client_message(data: str | bytes) -> ClientToStream:
    """Parse a frame a dashboard sent on the event stream.  Raises :class:`ProtocolError`."""
    return _parse(_CLIENT_TO_STREAM, data, "stream client")


def parse_stream_message(data: str | bytes) -> StreamToClient:
    """Parse a frame of the event stream.  Raises :class:`ProtocolError`."""
    return _parse(_STREAM_TO_CLIENT, data, "stream", MAX_STREAM_FRAME_BYTES)


def dump(message: BaseModel) -> str:
    """Serialise a message to compact JSON."""
    return message.model_dump_json(exclude_none=True)
