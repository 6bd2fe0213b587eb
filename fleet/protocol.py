"""The wire protocol shared by the agent, the control plane and the dashboard.

One definition, imported by all three: every message is a frozen msgspec
``Struct`` tagged by its ``type`` field (commands and their results by
``kind``), decoded strictly (no lax coercion: ``1.0`` is not an integer,
``true`` is not a number), with the close codes, limits and paths beside it.
This module imports only msgspec and the standard library, so the agent
imports it too (4 MB of resident memory, msgspec included, where the same models
in pydantic cost 20 MB: ``bench/protocol_bench.py`` and docs/decisions.md).

Channels:

* agent channel ``/v1/agent/connect``: :data:`ServerToAgent` and :data:`AgentToServer`;
* event stream ``/v1/events``: :data:`ClientToStream` and :data:`StreamToClient`.

All times on the wire are UNIX epoch seconds as floats.  Unknown fields are
ignored, so a newer peer of the same protocol version may add optional ones;
unknown message types and bad values raise :class:`ProtocolError`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from .units import VERSION_MAX, VERSION_PATTERN

__all__ = [
    "AGENT_CHANNEL_PATH",
    "AGENT_EXTRAS",
    "AUTH_CONTEXT",
    "CLOSE_MEANINGS",
    "EVENTS_PATH",
    "MAX_CERTIFICATE_CHARS",
    "MAX_DISCONNECTS",
    "MAX_FRAME_BYTES",
    "MAX_STREAM_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "RELEASES_PATH",
    "RELEASE_KEY_PREFIX",
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
    "ConnectionSchedule",
    "ConnectionUpdate",
    "Disconnect",
    "DisconnectCause",
    "DisconnectHint",
    "Disconnects",
    "ErrorMessage",
    "FailureClass",
    "Goodbye",
    "Heartbeat",
    "Hello",
    "HoldInfo",
    "HoldsUpdate",
    "KeyEndorsement",
    "LogsCommand",
    "LogsResult",
    "Presence",
    "ProbeCommand",
    "ProbeResult",
    "ProtocolError",
    "RemediationInfo",
    "RemediationUpdate",
    "RenewCommand",
    "RenewRequest",
    "RenewResponse",
    "RenewResult",
    "RestartCommand",
    "RestartResult",
    "RollbackCommand",
    "RollbackResult",
    "RolloutAgent",
    "RolloutInfo",
    "RolloutUpdate",
    "RolloutWave",
    "ServerToAgent",
    "Snapshot",
    "StreamError",
    "StreamHeartbeat",
    "StreamToClient",
    "Subscribe",
    "TimeProbe",
    "TimeReply",
    "UpgradeCommand",
    "UpgradeInfo",
    "UpgradeResult",
    "UpgradeStatus",
    "UpgradeStep",
    "Welcome",
    "command_request_id",
    "command_result",
    "convert",
    "dump",
    "encode",
    "parse_agent_message",
    "parse_client_message",
    "parse_server_message",
    "parse_stream_message",
    "release_key_message",
    "release_message",
    "replace",
    "to_builtins",
]

# --------------------------------------------------------------------------
# Versions, paths, limits and close codes

PROTOCOL_VERSION = 1
"""Bumped on any change an older peer could not ignore."""

AGENT_CHANNEL_PATH = "/v1/agent/connect"
"""The agent channel's path, on the agents' own port and on the API port."""

EVENTS_PATH = "/v1/events"
"""The event stream's path, on the API port."""

AUTH_CONTEXT = "fleet-agent-auth:"
"""What the agent signs, followed by the hello's nonce (UTF-8)."""

MAX_FRAME_BYTES = 1 << 20
"""Largest frame an agent or a dashboard may send (1 MiB); a log bundle is capped below it."""

MAX_STREAM_FRAME_BYTES = 256 << 20
"""Largest frame a dashboard accepts from the event stream: a snapshot of 10,000
agents with their sparklines is several MiB."""

MAX_CERTIFICATE_CHARS = 16_384
"""Longest PEM an agent may send (a certificate or a CSR)."""

MAX_DISCONNECTS = 50
"""Most disconnect records an agent keeps and reports in one message; the control
plane keeps as many per agent."""

AGENT_EXTRAS = ("goodbye", "disconnects", "upgrade_status")
"""Agent messages newer than protocol version 1's first release.  A control plane
lists those it accepts in :attr:`Welcome.accepts`; an agent sends one only when it
is listed there (an older control plane closes on a message type it does not know)."""


RELEASES_PATH = "/v1/releases"
"""Agent releases: listed, uploaded and downloaded under this path on the API port."""

RELEASE_KEY_PREFIX = "ed25519:"
"""How a release public key is written: this prefix, then base64 of its 32 raw bytes."""


def release_message(version: str, sha256: str, size: int) -> bytes:
    """What a release signature covers: the version, the file's hash and its size.

    Binding the version means a signed file cannot be offered as another version.
    """
    return f"fleet-release-v1\nversion={version}\nsha256={sha256}\nsize={size}\n".encode()


def release_key_message(key: str) -> bytes:
    """What a release key's endorsement covers: the next key (:class:`KeyEndorsement`)."""
    return f"fleet-release-key-v1\nnext={key}\n".encode()


class CloseCode:
    """WebSocket close codes; 4xxx are ours, each with one meaning."""

    NORMAL = 1000
    GOING_AWAY = 1001
    ABNORMAL = 1006
    """Never sent: what a side reports when the connection ended without a close frame."""
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    """The peer failed while handling a message (an unhandled error on its side)."""
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


CLOSE_MEANINGS: dict[int, str] = {
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNAUTHENTICATED: "unauthenticated (unknown agent or bad signature)",
    CloseCode.FORBIDDEN: "forbidden for this role",
    CloseCode.REVOKED: "the identity was revoked",
    CloseCode.CERT_EXPIRED: "the certificate expired",
    CloseCode.UNSUPPORTED_VERSION: "unsupported protocol version",
    CloseCode.REPLACED: "replaced by another connection of the same agent",
    CloseCode.AUTH_TIMEOUT: "authentication timed out",
    CloseCode.SILENT: "closed by the server after heartbeats stopped arriving",
    CloseCode.RATE_LIMITED: "over a limit of the control plane; backing off",
}
"""Each of our close codes in words, for logs and error messages."""


class ProtocolError(ValueError):
    """A frame that is not a valid message.  ``str()`` says what was wrong."""


# --------------------------------------------------------------------------
# Base classes.  Frozen, keyword-only; a message leaves its ``None`` and other
# default fields off the wire (the decoder puts them back).  ``gc=False``: a value decoded from the
# wire holds only strings, numbers and containers of them, never a cycle, so the
# cyclic collector need not track it; a 10,000-agent snapshot parses 15 % faster.


class _Value(Struct, frozen=True, kw_only=True, gc=False):
    """A value carried inside messages and REST answers: every field is sent, so a
    REST client always finds every key (``null`` when unknown)."""


class _Msg(_Value, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    """A message: tagged by ``type`` on the wire."""

    @property
    def type(self) -> str:
        """The message's ``type`` tag."""
        return str(self.__struct_config__.tag)


class _Kind(_Value, frozen=True, kw_only=True, tag_field="kind"):
    """A command or a command result: tagged by ``kind`` on the wire."""

    @property
    def kind(self) -> str:
        """The ``kind`` tag."""
        return str(self.__struct_config__.tag)


NonNegInt = Annotated[int, Meta(ge=0)]
NonNegFloat = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]
Percent = Annotated[float, Meta(ge=0, le=100)]
Pem = Annotated[str, Meta(max_length=MAX_CERTIFICATE_CHARS)]
VersionText = Annotated[str, Meta(min_length=1, max_length=VERSION_MAX, pattern=VERSION_PATTERN)]
"""A release version as agents report it (``0.2.0``, ``0.3.0rc1``, ``1.0.0+build.7``)."""
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


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
    STOPPED = "stopped"
    """The agent said goodbye (SIGTERM, ``systemctl stop``): away on purpose, no alert."""


class AgentState(_Value, frozen=True, kw_only=True):
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
    stopped_at: float | None = None
    """When the agent said goodbye (``state`` is ``stopped``)."""
    stop_reason: str | None = None
    """What it said as it stopped."""
    upgrade: UpgradeInfo | None = None
    """Its latest upgrade step, if it was ever asked to upgrade."""
    replica: str | None = None
    """The control-plane replica holding its channel (null on a single control plane,
    or when no replica holds it)."""


class AgentHistory(_Value, frozen=True, kw_only=True):
    """Recent samples of one agent, oldest first, for sparklines."""

    cpu: list[float] = []
    mem: list[float] = []
    queue: list[int] = []


UpgradeStep = Literal[
    "requested",
    "downloading",
    "verifying",
    "installing",
    "restarting",
    "running",
    "rolled_back",
    "failed",
    "refused",
]
"""Where an agent's upgrade is: sent by the control plane (``requested``), then as
the agent reports it.  ``running`` ends a good upgrade; ``rolled_back``, ``failed``
and ``refused`` end a bad one, with the reason in ``detail``."""


class UpgradeInfo(_Value, frozen=True, kw_only=True):
    """An agent's latest upgrade step, as shown beside it."""

    version: str
    """The version the step is about (the target; for a rollback, the one left)."""
    step: UpgradeStep
    detail: str = ""
    from_version: str | None = None
    at: float


class AlertInfo(_Value, frozen=True, kw_only=True):
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
    acked_by: str | None = None
    """Who acknowledged it (repeat notifications stop; it stays shown)."""
    acked_at: float | None = None
    ack_note: str | None = None
    silenced_until: float | None = None
    """The end of the silence or maintenance window that holds it, if any."""
    suppressed: str | None = None
    """Why it is held back from notifications, for people: ``silenced by alice until
    14:00 UTC: patching``, ``maintenance of pool etl until ...``.  An alert changing
    state is published again as :class:`AlertRaised`."""


class ConnectionSchedule(_Value, frozen=True, kw_only=True):
    """When a job that uses a connection runs: a cron expression read in a time zone."""

    cron: str
    """Five-field cron (``0 14 * * *``) or a macro (``@daily``)."""
    timezone: str
    """An IANA time zone (``Europe/Berlin``, ``UTC``)."""
    name: str | None = None
    """The job's name, to say which run is at risk."""


class ConnectionInfo(_Value, frozen=True, kw_only=True):
    """A registered data source and whether some agent can reach it now."""

    name: str
    host: str
    port: int
    pools: list[str]
    routable: bool
    via_pool: str | None = None
    via_agent: str | None = None
    schedules: list[ConnectionSchedule] = []
    next_run_at: float | None = None
    """The soonest run of any of its schedules (Unix time), or ``None`` without any."""
    next_run: str | None = None
    """That run for people: ``14:00 Europe/Berlin`` (a date when it is not within a day)."""
    at_risk: bool = False
    """A run is due within the server's ``schedule_lead_s`` and no agent can route it."""


DisconnectCause = Literal[
    "server_close",
    "ping_timeout",
    "reset",
    "tls",
    "proxy",
    "dns",
    "refused",
    "timeout",
    "sleep",
    "stopped",
    "other",
]
"""Why a channel ended (or an attempt failed), as the agent saw it."""

_Text = Annotated[str, Meta(max_length=300)]


class Disconnect(_Value, frozen=True, kw_only=True):
    """One channel that ended, or a run of failed attempts to open one, as the agent saw it.

    A channel that never opened (DNS, proxy, TLS, refused) has no ``connected_at``;
    consecutive failures of the same kind are one record with ``attempts``.
    """

    cause: DisconnectCause
    detail: _Text = ""
    """In words: the close code's meaning, the error."""
    code: int | None = None
    """The close code the server sent, if it sent one."""
    connected_at: float | None = None
    """When the channel opened (the welcome), wall clock."""
    ended_at: float
    """When it ended (the last attempt, for a run of failures), wall clock."""
    age_s: NonNegFloat | None = None
    """How long the channel was open (monotonic clock)."""
    slept_s: NonNegFloat | None = None
    """How long the host slept meanwhile (wall clock ahead of the monotonic clock)."""
    tls_issuer: _Text | None = None
    """Issuer of the certificate the server presented (an SSL-inspecting proxy changes it)."""
    attempts: Annotated[int, Meta(ge=1)] = 1


class DisconnectHint(_Value, frozen=True, kw_only=True):
    """A pattern the control plane read from an agent's disconnects, with the fix."""

    kind: Literal["same_age", "same_time", "tls_issuer", "sleep"]
    message: str
    count: int
    """How many records show the pattern."""


# --------------------------------------------------------------------------
# Commands and their results (carried on the agent channel)


class ProbeCommand(_Kind, frozen=True, kw_only=True, tag="probe"):
    """Dial ``host:port`` (and shake hands with TLS) from the agent."""

    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Annotated[int, Meta(ge=1, le=65535)]
    tls: bool = False
    server_name: str | None = None
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 5.0


class LogsCommand(_Kind, frozen=True, kw_only=True, tag="logs"):
    """The agent's recent log lines, redacted on the agent."""

    lines: Annotated[int, Meta(ge=1, le=10_000)] = 500
    since: float | None = None


class ConfigCommand(_Kind, frozen=True, kw_only=True, tag="config"):
    """The agent's effective configuration and its hash."""


class UpgradeCommand(_Kind, frozen=True, kw_only=True, tag="upgrade"):
    """Upgrade to ``version``: download the release, check its hash and signature,
    install it beside the running one and restart into it (the ``release`` driver),
    or run the agent's own upgrade command with the version (the ``command`` driver).

    The agent answers at once (accepted or refused) and reports each step with
    :class:`UpgradeStatus`.
    """

    version: VersionText
    sha256: Sha256Hex
    size: Annotated[int, Meta(ge=1)]
    signature: Annotated[str, Meta(max_length=200)]
    """Base64 of the release key's Ed25519 signature over :func:`release_message`."""
    download_path: Annotated[str, Meta(max_length=300)]
    """Where to GET the file on the control plane's API port (Range requests resume)."""
    token: Annotated[str, Meta(max_length=200)]
    """A bearer token for that download only, short-lived."""
    deadline_s: Annotated[float, Meta(gt=0, le=3600)] = 120.0
    """The new version must connect and send healthy heartbeats within this, or the
    agent switches back by itself."""


class RollbackCommand(_Kind, frozen=True, kw_only=True, tag="rollback"):
    """Switch back to the version that ran before the last upgrade, and restart."""

    reason: _Text


class RestartCommand(_Kind, frozen=True, kw_only=True, tag="restart"):
    """Restart the agent's process (a remediation): it reconnects within seconds."""

    reason: _Text


class RenewCommand(_Kind, frozen=True, kw_only=True, tag="renew"):
    """Renew the certificate now, whatever its age (a remediation)."""

    reason: _Text


Command = (
    ProbeCommand
    | LogsCommand
    | ConfigCommand
    | UpgradeCommand
    | RollbackCommand
    | RestartCommand
    | RenewCommand
)

FailureClass = Literal["dns", "refused", "timeout", "tls", "unreachable", "denied", "error"]


class ProbeResult(_Kind, frozen=True, kw_only=True, tag="probe"):
    """What a probe found, each step timed."""

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


class LogsResult(_Kind, frozen=True, kw_only=True, tag="logs"):
    lines: list[str]
    truncated: bool = False


class ConfigResult(_Kind, frozen=True, kw_only=True, tag="config"):
    config: dict[str, Any]
    hash: str


class UpgradeResult(_Kind, frozen=True, kw_only=True, tag="upgrade"):
    """The upgrade was accepted: its steps follow as :class:`UpgradeStatus`."""

    version: str
    driver: Literal["release", "command"]
    detail: str = ""


class RollbackResult(_Kind, frozen=True, kw_only=True, tag="rollback"):
    """The agent is switching back to ``version`` and restarting."""

    version: str | None = None
    """The version it goes back to (``None``: the one it was installed with)."""
    detail: str = ""


class RestartResult(_Kind, frozen=True, kw_only=True, tag="restart"):
    """The agent is restarting."""

    detail: str = ""


class RenewResult(_Kind, frozen=True, kw_only=True, tag="renew"):
    """The certificate was renewed."""

    not_after: float
    detail: str = ""


CommandResult = (
    ProbeResult
    | LogsResult
    | ConfigResult
    | UpgradeResult
    | RollbackResult
    | RestartResult
    | RenewResult
)


class CommandError(_Value, frozen=True, kw_only=True):
    code: str
    """Machine-readable: ``denied``, ``timeout``, ``busy``, ``unsupported``, ``failed``."""
    message: str


# --------------------------------------------------------------------------
# Agent channel: control plane -> agent


class Hello(_Msg, frozen=True, kw_only=True, tag="hello"):
    """First frame from the control plane: the challenge to sign."""

    protocol_version: int
    server_version: str
    nonce: str
    """Hex; the agent signs :data:`AUTH_CONTEXT` + nonce (UTF-8)."""


class KeyEndorsement(_Value, frozen=True, kw_only=True):
    """A release key, and the previous key's signature over
    :func:`release_key_message` of it (base64)."""

    key: Annotated[str, Meta(max_length=100)]
    signature: Annotated[str, Meta(max_length=200)]


class Welcome(_Msg, frozen=True, kw_only=True, tag="welcome"):
    """The agent is in: how often to heartbeat, and the pin that applies."""

    agent_id: str
    heartbeat_interval_s: Positive
    pinned_version: str | None = None
    time_probe_interval_s: Positive = 30.0
    accepts: list[str] = []
    """Which of :data:`AGENT_EXTRAS` this control plane accepts."""
    release_key: Annotated[str, Meta(max_length=100)] | None = None
    """The public key that signs releases (:data:`RELEASE_KEY_PREFIX` + base64).  An
    agent keeps the one it got at enrollment; one enrolled before releases were
    signed keeps the first it sees here, over its pinned channel."""
    keepalive_s: Positive | None = None
    """Ping the channel this often when it is sooner than the agent's own 20 s: below
    the idle timeout of a load balancer on the path.  Absent from older servers."""
    release_key_chain: Annotated[list[KeyEndorsement], Meta(max_length=64)] = []
    """The release keys since the first, oldest first, each endorsed by the one before
    it: an agent that keeps an older key follows the chain to ``release_key``."""


class TimeProbe(_Msg, frozen=True, kw_only=True, tag="time_probe"):
    """NTP-style: t1 is the control plane's send time."""

    id: int
    t1: float


class CommandRequest(_Msg, frozen=True, kw_only=True, tag="command"):
    request_id: str
    timeout_s: Positive
    command: Command


class RenewResponse(_Msg, frozen=True, kw_only=True, tag="renew_response"):
    certificate_pem: str | None = None
    ca_pem: str | None = None
    error: str | None = None


class ErrorMessage(_Msg, frozen=True, kw_only=True, tag="error"):
    """Sent just before a close: what went wrong and what to do."""

    code: int
    message: str


ServerToAgent = Hello | Welcome | TimeProbe | CommandRequest | RenewResponse | ErrorMessage


# --------------------------------------------------------------------------
# Agent channel: agent -> control plane


class Auth(_Msg, frozen=True, kw_only=True, tag="auth"):
    protocol_version: int
    agent_id: str
    certificate_pem: Pem
    signature: str
    """Base64 of the signature over :data:`AUTH_CONTEXT` + nonce."""
    version: str


class Heartbeat(_Msg, frozen=True, kw_only=True, tag="heartbeat"):
    seq: NonNegInt
    sent_at: float
    version: Annotated[str, Meta(max_length=64)]
    uptime_s: NonNegFloat
    cpu_percent: NonNegFloat | None = None
    mem_rss_bytes: NonNegInt | None = None
    mem_host_percent: Percent | None = None
    queue_depth: NonNegInt = 0
    cert_not_after: float | None = None
    config_hash: Annotated[str, Meta(max_length=128)] | None = None


class TimeReply(_Msg, frozen=True, kw_only=True, tag="time_reply"):
    """t2: agent's receive time; t3: agent's send time."""

    id: int
    t1: float
    t2: float
    t3: float


class CommandFinished(_Msg, frozen=True, kw_only=True, tag="command_result"):
    request_id: str
    result: CommandResult | None = None
    error: CommandError | None = None


class RenewRequest(_Msg, frozen=True, kw_only=True, tag="renew_request"):
    csr_pem: Pem


class Goodbye(_Msg, frozen=True, kw_only=True, tag="goodbye"):
    """The agent is stopping on purpose; a normal close (1000) follows."""

    reason: Annotated[str, Meta(max_length=200)]


class Disconnects(_Msg, frozen=True, kw_only=True, tag="disconnects"):
    """Why earlier channels ended, sent right after the welcome, oldest first."""

    records: Annotated[list[Disconnect], Meta(max_length=MAX_DISCONNECTS)]


class UpgradeStatus(_Msg, frozen=True, kw_only=True, tag="upgrade_status"):
    """A step of an upgrade or a rollback, as the agent reports it (only to a
    control plane that lists ``upgrade_status`` in :attr:`Welcome.accepts`)."""

    version: VersionText
    step: UpgradeStep
    detail: _Text = ""
    from_version: Annotated[str, Meta(max_length=64)] | None = None
    at: float


AgentToServer = (
    Auth
    | Heartbeat
    | TimeReply
    | CommandFinished
    | RenewRequest
    | Goodbye
    | Disconnects
    | UpgradeStatus
)


# --------------------------------------------------------------------------
# Event stream: dashboard -> control plane


class Subscribe(_Msg, frozen=True, kw_only=True, tag="subscribe"):
    """First frame from a dashboard; ``since`` resumes after that sequence number.

    A resume needs the ``epoch`` of the snapshot the sequence number came from:
    sequence numbers restart with every server start, so a ``since`` from another
    epoch (or without one, or past the server's latest) gets a fresh snapshot.
    """

    protocol_version: int
    since: int | None = None
    epoch: str | None = None


ClientToStream = Subscribe


# --------------------------------------------------------------------------
# Event stream: control plane -> dashboard


RolloutState = Literal[
    "waiting", "canary", "soaking", "wave", "pausing", "paused", "done", "halted", "aborted"
]
"""A rollout's phase: ``waiting`` (outside its pool's maintenance windows, or in a
freeze), ``canary`` (the canaries upgrade), ``soaking`` (the health gate watches
them), ``wave`` (a wave upgrades), ``pausing`` (between waves, the gate still
watching), ``paused`` (by an operator), then ``done``, ``halted`` (the gate failed:
the upgraded agents roll back) or ``aborted`` (by an operator)."""

RolloutAgentStep = Literal[
    "pending", "upgrading", "upgraded", "failed", "rolled_back", "skipped", "refused"
]


class RolloutAgent(_Value, frozen=True, kw_only=True):
    """One agent in a rollout."""

    agent_id: str
    name: str
    wave: int
    """0 for the canaries, then 1, 2, ..."""
    step: RolloutAgentStep
    from_version: str | None = None
    detail: str = ""


class RolloutWave(_Value, frozen=True, kw_only=True):
    """One wave's progress (wave 0: the canaries)."""

    index: int
    size: int
    upgraded: int = 0
    failed: int = 0
    state: Literal["pending", "upgrading", "soaking", "done", "failed"] = "pending"


class RolloutInfo(_Value, frozen=True, kw_only=True):
    """A rollout of one version to one pool, as stored and shown."""

    id: str
    pool: str
    version: str
    state: RolloutState
    detail: str = ""
    """What it waits for, or why it halted, in words."""
    canaries: int
    soak_s: float
    wave_size: int
    pause_s: float
    waves: list[RolloutWave] = []
    agents: list[RolloutAgent] = []
    created_by: str
    created_at: float
    updated_at: float
    finished_at: float | None = None
    phase_ends_at: float | None = None
    """When the soak or the pause between waves ends, or the wait does (a freeze's
    end, the next maintenance window's start): for a countdown."""


RemediationState = Literal["pending_approval", "running", "done", "failed", "rejected", "expired"]


class RemediationInfo(_Value, frozen=True, kw_only=True):
    """A remediation: run by itself, or waiting in the approval inbox."""

    id: str
    pool: str
    agent_id: str
    agent_name: str
    condition: str
    """What held for K checks, in words (``stale or offline for 3 checks``)."""
    action: Literal["restart", "renew", "rollback", "move_connections"]
    state: RemediationState
    automatic: bool
    """Run without a person (the policy marks the action automatic and the budget allowed it)."""
    why_approval: str = ""
    """Why it waits for a person: the policy says so, or the budget is spent."""
    detail: str = ""
    """The outcome, in words."""
    created_at: float
    decided_by: str | None = None
    decided_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    """When a pending one expires unapproved (``state`` becomes ``expired``)."""


class HoldInfo(_Value, frozen=True, kw_only=True):
    """A silence or a maintenance window not ended yet: what it holds back, when, why."""

    kind: Literal["silence", "maintenance"]
    id: str
    what: str
    """``pool=etl kind=stale`` (a silence's matchers), ``pool etl`` or ``agent etl-07``."""
    starts_at: float
    ends_at: float
    created_by: str
    reason: str = ""


class Snapshot(_Msg, frozen=True, kw_only=True, tag="snapshot"):
    """The whole fleet, first on every stream (and again after a gap)."""

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
    rollouts: list[RolloutInfo] = []
    """Rollouts that run, wait or are paused, and the latest finished one per pool."""
    remediations: list[RemediationInfo] = []
    """Remediations waiting for approval, and the recent others."""
    holds: list[HoldInfo] | None = None
    """Silences and maintenance windows not ended (active or planned); None from a
    server that does not send them (a dashboard then fetches them over REST)."""


class AgentUpdate(_Msg, frozen=True, kw_only=True, tag="agent"):
    seq: int
    agent: AgentState


class AlertRaised(_Msg, frozen=True, kw_only=True, tag="alert_raised"):
    seq: int
    alert: AlertInfo


class AlertCleared(_Msg, frozen=True, kw_only=True, tag="alert_cleared"):
    seq: int
    alert: AlertInfo


class ConnectionUpdate(_Msg, frozen=True, kw_only=True, tag="connection"):
    seq: int
    connection: ConnectionInfo


class AgentRemoved(_Msg, frozen=True, kw_only=True, tag="agent_removed"):
    """An agent was decommissioned or forgotten: drop it from the view."""

    seq: int
    agent_id: str


class HoldsUpdate(_Msg, frozen=True, kw_only=True, tag="holds"):
    """The silences and maintenance windows changed (one made, ended, or over): all of
    those not ended, so a dashboard shows one even when it holds no alert."""

    seq: int
    holds: list[HoldInfo] = []


class ConnectionRemoved(_Msg, frozen=True, kw_only=True, tag="connection_removed"):
    """A connection was deleted: drop it from the view."""

    seq: int
    name: str


class CommandEvent(_Msg, frozen=True, kw_only=True, tag="command_event"):
    """A command's outcome, for the agent's detail view."""

    seq: int
    agent_id: str
    request_id: str
    kind: str
    actor: str
    ok: bool
    summary: str
    at: float


class RolloutUpdate(_Msg, frozen=True, kw_only=True, tag="rollout"):
    """A rollout started, moved on, or ended."""

    seq: int
    rollout: RolloutInfo


class RemediationUpdate(_Msg, frozen=True, kw_only=True, tag="remediation"):
    """A remediation was run, queued for approval, decided or finished."""

    seq: int
    remediation: RemediationInfo


class StreamError(_Msg, frozen=True, kw_only=True, tag="error"):
    seq: int = 0
    code: int
    message: str


class StreamHeartbeat(_Msg, frozen=True, kw_only=True, tag="heartbeat"):
    """The server is alive: sent every ``interval_s`` seconds on every stream.

    A hung control plane (stopped, deadlocked) keeps its TCP connections open,
    so only a missing beat tells a dashboard that its "live" data has stopped
    moving.  Not a fleet event: it carries no sequence number (``seq`` is 0)
    and a resume never replays it.
    """

    seq: int = 0
    server_time: float
    interval_s: float


StreamToClient = (
    Snapshot
    | AgentUpdate
    | AlertRaised
    | AlertCleared
    | ConnectionUpdate
    | AgentRemoved
    | ConnectionRemoved
    | CommandEvent
    | RolloutUpdate
    | RemediationUpdate
    | HoldsUpdate
    | StreamError
    | StreamHeartbeat
)

# --------------------------------------------------------------------------
# Parsing: one place that turns bytes into messages or a clear ProtocolError.

_T = TypeVar("_T")
_S = TypeVar("_S", bound=Struct)

_AGENT_TO_SERVER: msgspec.json.Decoder[AgentToServer] = msgspec.json.Decoder(AgentToServer)
_SERVER_TO_AGENT: msgspec.json.Decoder[ServerToAgent] = msgspec.json.Decoder(ServerToAgent)
_CLIENT_TO_STREAM: msgspec.json.Decoder[ClientToStream] = msgspec.json.Decoder(ClientToStream)
_STREAM_TO_CLIENT: msgspec.json.Decoder[StreamToClient] = msgspec.json.Decoder(StreamToClient)
_ENCODER = msgspec.json.Encoder()


class _Envelope(Struct):
    """Just enough of any object to name it in an error (or answer it)."""

    type: Any = None
    request_id: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_AT = re.compile(r" - at `\$\.?(.*)`$")


def _explain(data: str | bytes, direction: str, reason: str) -> str:
    """A decoder's complaint, said for a person: which message, which field."""
    try:
        kind = _ENVELOPE.decode(data).type
    except (msgspec.DecodeError, RecursionError):
        first = reason.replace("Expected `object`, got", "expected a JSON object, got")
        return f"invalid {direction} frame: {first}"
    match = _AT.search(reason)
    where, what = (match.group(1), reason[: match.start()]) if match else ("", reason)
    if kind is None:
        return f"{direction} message has no 'type' field"
    if not isinstance(kind, str):
        return f"{direction} message 'type' must be a string"
    if where == "type":
        return f"unknown {direction} message type {kind[:40]!r}"
    field = f"{where}: " if where else ""
    return f"invalid {direction} message {kind[:40]!r}: {field}{what}"


def _parse(
    decoder: msgspec.json.Decoder[_T],
    data: str | bytes,
    direction: str,
    limit: int = MAX_FRAME_BYTES,
) -> _T:
    if len(data) > limit:
        raise ProtocolError(f"frame of {len(data)} bytes exceeds the {limit} byte limit")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(_explain(data, direction, str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"frame is not valid JSON ({exc})") from None
    except RecursionError:
        raise ProtocolError("frame is nested too deeply") from None


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


def command_request_id(data: str | bytes) -> str | None:
    """The ``request_id`` of a command frame that did not parse, if it has one.

    A newer control plane may send a command an older agent does not know;
    answering ``unsupported`` at once beats leaving the operator to wait for a
    timeout.
    """
    try:
        envelope = _ENVELOPE.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    request_id = envelope.request_id
    if envelope.type == "command" and isinstance(request_id, str) and request_id:
        return request_id
    return None


def encode(message: Struct) -> bytes:
    """Serialise a message (or a value) to compact JSON bytes."""
    return _ENCODER.encode(message)


def dump(message: Struct) -> str:
    """Serialise a message to compact JSON text (a WebSocket text frame)."""
    return _ENCODER.encode(message).decode()


def to_builtins(value: Any) -> Any:
    """A message or value as plain dicts, lists and scalars (defaults left off)."""
    return msgspec.to_builtins(value)


def convert(obj: Any, kind: type[_T]) -> _T:
    """Validate plain Python data as ``kind``, as strictly as the wire does.

    Raises:
        ProtocolError: ``obj`` is not a valid ``kind``.
    """
    try:
        return msgspec.convert(obj, kind)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid {getattr(kind, '__name__', 'value')}: {exc}") from None


def command_result(obj: Any) -> CommandResult:
    """Validate a result built as plain data (a dict with its ``kind``).

    Raises:
        ProtocolError: ``obj`` is not a valid result.
    """
    try:
        result: CommandResult = msgspec.convert(obj, CommandResult)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid command result: {exc}") from None
    return result


def replace(value: _S, **changes: Any) -> _S:
    """A copy of ``value`` with ``changes`` (values are frozen)."""
    return msgspec.structs.replace(value, **changes)
