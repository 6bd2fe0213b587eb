"""The store interface and its records.

One interface, so that the SQLite default and a later PostgreSQL backend are
interchangeable.  The live fleet state is in memory; the store holds what must
survive a restart and is written behind, in batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "AckRecord",
    "AgentRecord",
    "AlertRecord",
    "AuditRecord",
    "ConnectionRecord",
    "MaintenanceRecord",
    "OperatorRecord",
    "PinRecord",
    "PoolRecord",
    "ScheduleRecord",
    "SilenceRecord",
    "Store",
    "TokenRecord",
    "TokenState",
]

TokenState = Literal["active", "expired", "used", "revoked"]


@dataclass
class AgentRecord:
    id: str
    name: str
    pool: str
    labels: dict[str, str]
    enrolled_at: float
    cert_serial: str
    cert_not_after: float
    revoked: bool = False
    status: dict[str, Any] = field(default_factory=dict)
    """Last known status (version, last heartbeat, samples) written behind."""


@dataclass
class TokenRecord:
    id: str
    token_hash: str
    pool: str
    labels: dict[str, str]
    created_at: float
    expires_at: float
    uses_total: int
    uses_left: int
    created_by: str
    revoked_at: float | None = None

    def state(self, now: float) -> TokenState:
        """``revoked``, ``used``, ``expired`` or ``active``, in that order of precedence."""
        if self.revoked_at is not None:
            return "revoked"
        if self.uses_left <= 0:
            return "used"
        if self.expires_at <= now:
            return "expired"
        return "active"


@dataclass
class OperatorRecord:
    name: str
    role: str
    token_hash: str
    created_at: float
    created_by: str = ""
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass
class PinRecord:
    scope: str
    """``agent`` or ``pool``."""
    name: str
    version: str | None
    config: dict[str, Any] | None
    set_at: float
    set_by: str


@dataclass
class PoolRecord:
    name: str
    policy: dict[str, Any]
    min_healthy: int = 0


@dataclass(frozen=True)
class ScheduleRecord:
    """A job's schedule on a connection: cron read in an IANA time zone."""

    cron: str
    timezone: str
    name: str | None = None


@dataclass
class ConnectionRecord:
    name: str
    host: str
    port: int
    pools: list[str]
    created_at: float
    schedules: list[ScheduleRecord] = field(default_factory=list)
    """The runs of the jobs that use it, checked for a route ahead of time."""


@dataclass
class AlertRecord:
    id: str
    kind: str
    severity: str
    target: str
    message: str
    raised_at: float
    cleared_at: float | None = None
    flaps: int = 0
    """Times the check passed and failed again within the hold time (one alert kept)."""


@dataclass
class AckRecord:
    """An operator has seen an open alert: repeat notifications stop, it stays shown."""

    alert_id: str
    acked_by: str
    note: str
    at: float
    expires_at: float | None = None
    """When the acknowledgement lapses by itself (None: while the alert is open)."""


@dataclass
class SilenceRecord:
    """Alerts matching every given matcher are held (not notified) from start to end.

    A matcher left None matches anything; at least one is given."""

    id: str
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    agent: str | None = None
    """An agent's id or name."""
    pool: str | None = None
    connection: str | None = None
    kind: str | None = None
    deleted_at: float | None = None
    deleted_by: str | None = None


@dataclass
class MaintenanceRecord:
    """A planned window for one agent or one pool: its alerts are held, and a pool's
    minimum is not checked against the agents in maintenance."""

    id: str
    scope: Literal["agent", "pool"]
    target: str
    """The agent's id, or the pool's name."""
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    deleted_at: float | None = None
    deleted_by: str | None = None


@dataclass
class AuditRecord:
    at: float
    actor: str
    action: str
    target: str
    result: str
    detail: str = ""


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def claim(self) -> None:
        """Take the store for this control plane alone, until :meth:`close`: one
        control plane per store (two would each write the fleet as they see it).
        Raises StoreError naming the holder when another control plane has it."""
        ...

    async def add_agent(self, agent: AgentRecord) -> None: ...
    async def list_agents(self) -> list[AgentRecord]: ...
    async def set_agent_cert(self, agent_id: str, serial: str, not_after: float) -> None: ...
    async def revoke_agent(self, agent_id: str, at: float) -> None: ...
    async def save_agent_status(self, rows: list[tuple[str, dict[str, Any]]]) -> None: ...
    async def delete_agent(self, agent_id: str) -> None:
        """Drop the agent's row and its own pin; its certificates stay (revoked) and refused."""
        ...

    async def add_certificate(
        self, serial: str, agent_id: str, not_after: float, *, pending: bool = False
    ) -> None:
        """Record an issued certificate; ``pending``: issued for a new key, not used yet."""
        ...

    async def revoked_serials(self, valid_at: float | None = None) -> set[str]:
        """Serials of the revoked (and superseded) certificates; with ``valid_at``, only
        those not expired then (an expired certificate is refused as expired anyway)."""
        ...

    async def pending_serials(self) -> set[str]:
        """Certificates issued for a new key that have not authenticated yet (nor been revoked)."""
        ...

    async def supersede_certificates(self, agent_id: str, keep: str, at: float) -> list[str]:
        """``keep`` authenticated: refuse every other certificate of the agent from ``at``
        on, mark ``keep`` no longer pending and make it the agent's current certificate,
        in one transaction.  Returns the serials refused now."""
        ...

    async def add_token(self, token: TokenRecord) -> None: ...
    async def get_token(self, token_hash: str) -> TokenRecord | None: ...
    async def use_token(self, token_id: str) -> bool: ...
    async def list_tokens(self) -> list[TokenRecord]: ...
    async def revoke_token(self, token_id: str, at: float) -> None: ...

    async def add_operator(self, op: OperatorRecord) -> None: ...
    async def list_operators(self) -> list[OperatorRecord]: ...
    async def replace_operator(self, op: OperatorRecord) -> None:
        """Overwrite the operator of that name (a rotated token, a revocation, a re-creation)."""
        ...

    async def save_operators_last_used(self, rows: list[tuple[str, float]]) -> None: ...

    async def set_pin(self, pin: PinRecord) -> None: ...
    async def list_pins(self) -> list[PinRecord]: ...
    async def delete_pin(self, scope: str, name: str) -> None: ...

    async def set_pool(self, pool: PoolRecord) -> None: ...
    async def list_pools(self) -> list[PoolRecord]: ...
    async def delete_pool(self, name: str) -> None: ...

    async def add_connection(self, conn: ConnectionRecord) -> None: ...
    async def list_connections(self) -> list[ConnectionRecord]: ...
    async def update_connection(self, conn: ConnectionRecord) -> None: ...
    async def delete_connection(self, name: str) -> None: ...

    async def save_alert(self, alert: AlertRecord) -> None: ...
    async def save_alerts(self, alerts: list[AlertRecord]) -> None:
        """Insert or update these alerts in one transaction (all or none)."""
        ...

    async def list_alerts(self, include_cleared: bool) -> list[AlertRecord]: ...

    async def add_disconnects(
        self, batch: list[tuple[str, list[dict[str, Any]]]], keep: int
    ) -> None:
        """Append disconnect records (plain JSON data) of each agent in ``batch``,
        then drop all but each one's newest ``keep``, in one transaction."""
        ...

    async def list_disconnects(self, agent_id: str, limit: int) -> list[dict[str, Any]]:
        """An agent's newest ``limit`` disconnect records, oldest first."""
        ...

    async def save_ack(self, ack: AckRecord) -> None:
        """Insert or replace the acknowledgement of ``ack.alert_id``."""
        ...

    async def delete_ack(self, alert_id: str) -> None: ...
    async def list_acks(self) -> list[AckRecord]: ...

    async def save_silence(self, silence: SilenceRecord) -> None:
        """Insert or update (a deletion sets ``deleted_at``) one silence."""
        ...

    async def list_silences(self, ended_after: float | None) -> list[SilenceRecord]:
        """Silences not deleted that end after ``ended_after``; None: every one, ever."""
        ...

    async def save_maintenance(self, window: MaintenanceRecord) -> None: ...
    async def list_maintenance(self, ended_after: float | None) -> list[MaintenanceRecord]:
        """Like :meth:`list_silences`, for maintenance windows."""
        ...

    async def put_document(self, kind: str, key: str, body: dict[str, Any], at: float) -> None:
        """Insert or replace the document ``(kind, key)``: plain JSON data.

        Documents hold what the control plane keeps whole and reads whole: releases,
        rollouts, pools' windows, remediation policies and actions.
        """
        ...

    async def get_document(self, kind: str, key: str) -> dict[str, Any] | None: ...
    async def list_documents(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """Every document of ``kind`` as ``(key, body)``, oldest change first."""
        ...

    async def delete_document(self, kind: str, key: str) -> None: ...

    async def put_release_file(self, sha256: str, body: bytes) -> None:
        """Keep a release's wheel (once per content), for replicas without the file."""
        ...

    async def get_release_file(self, sha256: str) -> bytes | None: ...
    async def delete_release_file(self, sha256: str) -> None: ...

    async def audit(self, entry: AuditRecord) -> None: ...
    async def list_audit(
        self, limit: int, since: float | None = None, actor: str | None = None
    ) -> list[AuditRecord]:
        """Newest first, at most ``limit``, filtered by the store (not in Python)."""
        ...
