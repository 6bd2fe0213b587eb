"""The REST API's answers, as pydantic models (so the OpenAPI schema states them).

The two answers that carry the wire protocol's types are msgspec Structs like
them (:mod:`controlplane.api.structs` encodes and documents them).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

import msgspec
from pydantic import BaseModel

from fleet.protocol import (
    AgentHistory,
    AgentState,
    CommandEvent,
    Disconnect,
    DisconnectHint,
    ProbeResult,
    RemediationInfo,
)

from ..decommission import RemovalAction
from ..releases import Release
from ..store.base import (
    AckRecord,
    AuditRecord,
    MaintenanceRecord,
    OperatorRecord,
    PinRecord,
    SilenceRecord,
    TokenRecord,
    TokenState,
)

__all__ = [
    "AckInfo",
    "AgentConfigView",
    "AgentDetail",
    "AgentRemovedInfo",
    "AuditEntry",
    "ConnectionDeleted",
    "ConnectionProbeAnswer",
    "Enrolled",
    "ErrorBody",
    "Health",
    "MaintenanceInfo",
    "PinInfo",
    "PolicyCleared",
    "PoolInfo",
    "ReceiverInfo",
    "ReleaseInfo",
    "SilenceInfo",
    "TokenCreated",
    "TokenInfo",
    "TokenRevoked",
    "UserInfo",
    "UserRevoked",
    "UserToken",
    "WhoAmI",
]


class ErrorBody(BaseModel):
    """Every error answer (4xx, 5xx), as the app's handlers send it."""

    detail: str
    """What happened and what to do."""


class ReceiverInfo(BaseModel):
    """``GET /v1/notifications``: one receiver's delivery state (ReceiverStats), and
    where it delivers without the URL's secret parts (userinfo, query; a Slack
    webhook's path)."""

    name: str
    kind: Literal["alertmanager", "webhook", "slack"]
    url: str
    queued: int
    delivered: int
    failed: int
    dropped: int
    held: int
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


class Health(BaseModel):
    """``GET /healthz``: the server is up, and a few counters."""

    status: Literal["ok"]
    version: str
    protocol_version: int
    agents: int
    connected: int
    heartbeats: int
    subscribers: int
    replica: str | None = None
    """This replica's id, when several share a PostgreSQL store (else null)."""
    leader: bool = True
    """Whether it runs the fleet-wide checks and timers (always, when alone)."""


class WhoAmI(BaseModel):
    name: str
    role: Literal["viewer", "operator", "admin"]


class AgentDetail(msgspec.Struct, frozen=True, kw_only=True):
    """One agent, its recent samples and its last (up to 50) command events."""

    agent: AgentState
    history: AgentHistory
    events: list[CommandEvent]
    disconnects: list[Disconnect] = []
    """Why its last (up to 50) channels ended, as the agent reported them, oldest first."""
    disconnect_hints: list[DisconnectHint] = []
    """Patterns read from ``disconnects`` (a middlebox's timeout, a patch window, SSL
    inspection, host sleep), each with its fix."""
    remediations: list[RemediationInfo] = []
    """Its newest (up to 20) remediations, newest first: run, waiting for approval, decided."""


class AgentConfigView(BaseModel):
    """The config an agent runs against the pin that applies to it."""

    effective: dict[str, Any] | None
    """The agent's config, asked for now (null when it is not connected)."""
    effective_hash: str | None
    pinned: dict[str, Any] | None
    pinned_hash: str | None
    version: str | None
    pinned_version: str | None
    diff: list[str]
    """Unified diff lines, pinned -> effective."""
    in_sync: bool
    error: str | None
    """Why ``effective`` is missing, if it is."""


class ConnectionProbeAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A connection probed through the agent its route chose."""

    connection: str
    pool: str
    agent_id: str
    result: ProbeResult


class Enrolled(BaseModel):
    """A new agent's identity: its certificate, the CA and where to dial."""

    agent_id: str
    name: str
    pool: str
    certificate_pem: str
    ca_pem: str
    not_after: float
    channel_port: int | None
    """The agents' own channel port, on the host the agent reached us at."""
    release_key: str
    """The public key that signs agent releases (``ed25519:BASE64``): the agent keeps
    it and refuses any release it did not sign."""


class ReleaseInfo(BaseModel):
    """An agent release the control plane stores, signed with its release key."""

    version: str
    sha256: str
    """Hex SHA-256 of the wheel: its name on disk and its ETag."""
    size: int
    signature: str
    """Base64 Ed25519 signature of the release key over
    ``fleet-release-v1\\nversion=V\\nsha256=HEX\\nsize=N\\n``
    (:func:`fleet.protocol.release_message`)."""
    filename: str
    """The name it was uploaded with (shown only)."""
    added_at: float
    added_by: str
    download_path: str
    """Where agents download it (``GET``, with a download token)."""

    @classmethod
    def of(cls, release: Release) -> ReleaseInfo:
        return cls(**asdict(release), download_path=release.download_path)


class UserInfo(BaseModel):
    """An operator, never its token."""

    name: str
    role: str
    created_at: float
    last_used_at: float | None
    """When its token last authenticated a request (null: never)."""
    created_by: str
    revoked_at: float | None = None
    """Set only in ``?all=true`` listings, for revoked operators."""

    @classmethod
    def of(cls, op: OperatorRecord) -> UserInfo:
        return cls(
            name=op.name,
            role=op.role,
            created_at=op.created_at,
            last_used_at=op.last_used_at,
            created_by=op.created_by,
            revoked_at=op.revoked_at,
        )


class UserToken(BaseModel):
    """A new operator token: shown once, never again."""

    name: str
    role: str
    token: str


class UserRevoked(BaseModel):
    name: str
    role: str
    revoked_at: float


class TokenInfo(BaseModel):
    """An enrollment token's metadata (never its value)."""

    id: str
    pool: str
    labels: dict[str, str]
    created_at: float
    expires_at: float
    uses_total: int
    uses_left: int
    created_by: str
    revoked_at: float | None
    state: TokenState

    @classmethod
    def of(cls, t: TokenRecord, now: float) -> TokenInfo:
        return cls(
            id=t.id,
            pool=t.pool,
            labels=t.labels,
            created_at=t.created_at,
            expires_at=t.expires_at,
            uses_total=t.uses_total,
            uses_left=t.uses_left,
            created_by=t.created_by,
            revoked_at=t.revoked_at,
            state=t.state(now),
        )


class TokenCreated(BaseModel):
    """A new enrollment token: its value is shown once."""

    token: str
    id: str
    pool: str
    expires_at: float
    uses: int
    labels: dict[str, str]
    ca_pin: str
    endpoint: str
    server_tls: str = "fleet-ca"
    """``fleet-ca``, ``external`` (agents enroll with ``--ca-file``) or ``off``."""


class TokenRevoked(BaseModel):
    id: str
    revoked_at: float


class AgentRemovedInfo(BaseModel):
    id: str
    name: str
    action: RemovalAction


class ConnectionDeleted(BaseModel):
    name: str


class PinInfo(BaseModel):
    """A pin set on a pool or on one agent."""

    scope: Literal["agent", "pool"]
    name: str
    version: str | None
    config: dict[str, Any] | None
    set_at: float
    set_by: str

    @classmethod
    def of(cls, pin: PinRecord) -> PinInfo:
        scope: Literal["agent", "pool"] = "agent" if pin.scope == "agent" else "pool"
        return cls(
            scope=scope,
            name=pin.name,
            version=pin.version,
            config=pin.config,
            set_at=pin.set_at,
            set_by=pin.set_by,
        )


class PoolInfo(BaseModel):
    name: str
    agents: int
    healthy: int
    pin: PinInfo | None
    policy: dict[str, Any] | None
    pinned_version: str | None
    """The pin's version, kept for clients of the first API."""


class PolicyCleared(BaseModel):
    pool: str
    policy: dict[str, Any]
    """The policy that was cleared."""


class AuditEntry(BaseModel):
    at: float
    actor: str
    action: str
    target: str
    result: str
    detail: str

    @classmethod
    def of(cls, e: AuditRecord) -> AuditEntry:
        return cls(
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            result=e.result,
            detail=e.detail,
        )


SpanState = Literal["pending", "active", "ended", "deleted"]


def _span_state(start: float, end: float, deleted_at: float | None, now: float) -> SpanState:
    if deleted_at is not None:
        return "deleted"
    return "pending" if now < start else "active" if now < end else "ended"


class AckInfo(BaseModel):
    """An acknowledgement: who has seen the alert; repeat notifications stop."""

    alert_id: str
    acked_by: str
    note: str
    at: float
    expires_at: float | None

    @classmethod
    def of(cls, a: AckRecord) -> AckInfo:
        return cls(**asdict(a))


class _Span(BaseModel):
    """What silences and maintenance windows share: when, why, who, and their state."""

    id: str
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    deleted_at: float | None
    deleted_by: str | None
    state: SpanState


class SilenceInfo(_Span):
    """A silence: alerts matching every given matcher are shown but not notified."""

    agent: str | None
    pool: str | None
    connection: str | None
    kind: str | None

    @classmethod
    def of(cls, s: SilenceRecord, now: float) -> SilenceInfo:
        return cls(**asdict(s), state=_span_state(s.starts_at, s.ends_at, s.deleted_at, now))


class MaintenanceInfo(_Span):
    """A maintenance window of an agent or a pool: its alerts are held back."""

    scope: Literal["agent", "pool"]
    target: str
    """The agent's id, or the pool's name."""
    target_name: str
    """The agent's name (the pool's name for a pool)."""

    @classmethod
    def of(cls, w: MaintenanceRecord, now: float, target_name: str) -> MaintenanceInfo:
        state = _span_state(w.starts_at, w.ends_at, w.deleted_at, now)
        return cls(**asdict(w), target_name=target_name, state=state)
