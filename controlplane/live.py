"""One agent's live state in memory: what heartbeats update and dashboards read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from fleet.protocol import AgentHistory, AgentState, Heartbeat, Presence, UpgradeInfo

from .presence import check_transition
from .series import Series
from .store.base import AgentRecord

if TYPE_CHECKING:
    from .channel import AgentChannel

__all__ = ["LiveAgent"]

_FOLLOWED = (
    "version",
    "connected_at",
    "last_heartbeat_at",
    "heartbeat_interval_s",
    "uptime_s",
    "cpu_percent",
    "mem_rss_bytes",
    "mem_host_percent",
    "queue_depth",
    "cert_not_after",
    "config_hash",
    "skew_ms",
    "rtt_ms",
    "remote_addr",
    "stopped_at",
    "stop_reason",
    "upgrade",
)
"""The fields of an announced :class:`AgentState` a replica keeps on its copy."""


@dataclass
class LiveAgent:
    record: AgentRecord
    history_len: int
    state: Presence = Presence.PENDING
    reasons: list[str] = field(default_factory=list)
    version: str | None = None
    pinned_version: str | None = None
    pinned_config_hash: str | None = None
    connected_at: float | None = None
    last_heartbeat_at: float | None = None
    last_heartbeat_mono: float | None = None
    stale_since_mono: float | None = None
    heartbeat_interval_s: float = 5.0
    uptime_s: float | None = None
    cpu_percent: float | None = None
    mem_rss_bytes: int | None = None
    mem_host_percent: float | None = None
    queue_depth: int | None = None
    cert_not_after: float | None = None
    key_der: bytes = b""
    """The key the agent proved on its current channel (a renewal compares to it)."""
    config_hash: str | None = None
    skew_ms: float | None = None
    rtt_ms: float | None = None
    remote_addr: str | None = None
    stopped_at: float | None = None
    """When the agent said goodbye; None unless ``state`` is ``stopped``."""
    stop_reason: str | None = None
    upgrade: UpgradeInfo | None = None
    """Its latest upgrade step (:mod:`controlplane.upgrades`), kept across restarts."""
    rollout: str | None = None
    """The id of the active rollout that moves its version (waiting for its turn,
    upgrading or upgraded): its version is in hand, so no version-drift alert."""
    rollout_version: str | None = None
    """The version that rollout upgraded it to, once it did: what it should run now,
    shown as its pinned version until the rollout pins the pool."""
    channel: AgentChannel | None = None
    usable: bool = False
    """Healthy with an open channel, as of the last refresh: can carry a probe."""
    cpu: Series = field(init=False)
    mem: Series = field(init=False)
    queue: Series = field(init=False)
    dirty: bool = False
    """Changed since the last write-behind flush."""
    holder: str | None = None
    """The replica that holds its channel (:mod:`controlplane.replicas`); None on a
    single control plane, and for an agent nobody holds."""
    epoch: int = 0
    """The holder's session lease: a newer connection elsewhere has a higher one."""
    remote: AgentState | None = None
    """Its state as its holder, another replica, last announced it: what this replica
    shows of it (the fields above follow it too, for routing and the timers)."""

    def __post_init__(self) -> None:
        self.cpu = Series(self.history_len, scale=10)
        self.mem = Series(self.history_len, scale=10)
        self.queue = Series(self.history_len)
        self.cert_not_after = self.record.cert_not_after
        if self.record.revoked:
            self.state = Presence.REVOKED
        self._restore(self.record.status)

    @property
    def id(self) -> str:
        return self.record.id

    def set_state(self, new: Presence) -> bool:
        """Move to ``new``; True when it changed."""
        check_transition(self.state, new)
        if new == self.state:
            return False
        self.state = new
        self.dirty = True
        return True

    def apply(self, hb: Heartbeat, now: float, mono: float) -> None:
        self.version = hb.version
        self.uptime_s = hb.uptime_s
        self.cpu_percent = hb.cpu_percent
        self.mem_rss_bytes = hb.mem_rss_bytes
        self.mem_host_percent = hb.mem_host_percent
        self.queue_depth = hb.queue_depth
        if hb.cert_not_after is not None:
            self.cert_not_after = hb.cert_not_after
        self.config_hash = hb.config_hash
        self.last_heartbeat_at = now
        self.last_heartbeat_mono = mono
        self.stale_since_mono = None
        if hb.cpu_percent is not None:
            self.cpu.append(hb.cpu_percent)
        if hb.mem_host_percent is not None:
            self.mem.append(hb.mem_host_percent)
        self.queue.append(hb.queue_depth)
        self.dirty = True

    def take_remote(self, state: AgentState, mono: float) -> None:
        """Follow the state another replica announced; never marks the agent dirty
        (its holder writes it behind)."""
        if state.last_heartbeat_at != self.last_heartbeat_at:
            self.last_heartbeat_mono = mono
            if state.cpu_percent is not None:
                self.cpu.append(state.cpu_percent)
            if state.mem_host_percent is not None:
                self.mem.append(state.mem_host_percent)
            if state.queue_depth is not None:
                self.queue.append(state.queue_depth)
        self.remote = state
        self.state = state.state
        self.reasons = state.reasons
        for name in _FOLLOWED:
            setattr(self, name, getattr(state, name))

    def to_state(self) -> AgentState:
        if self.remote is not None:
            return self.remote
        r = self.record
        return AgentState(
            id=r.id,
            name=r.name,
            pool=r.pool,
            labels=r.labels,
            state=self.state,
            reasons=self.reasons,
            version=self.version,
            pinned_version=self.rollout_version or self.pinned_version,
            enrolled_at=r.enrolled_at,
            connected_at=self.connected_at,
            last_heartbeat_at=self.last_heartbeat_at,
            heartbeat_interval_s=self.heartbeat_interval_s,
            uptime_s=self.uptime_s,
            cpu_percent=self.cpu_percent,
            mem_rss_bytes=self.mem_rss_bytes,
            mem_host_percent=self.mem_host_percent,
            queue_depth=self.queue_depth,
            cert_not_after=self.cert_not_after,
            config_hash=self.config_hash,
            pinned_config_hash=self.pinned_config_hash,
            skew_ms=self.skew_ms,
            rtt_ms=self.rtt_ms,
            remote_addr=self.remote_addr,
            stopped_at=self.stopped_at,
            stop_reason=self.stop_reason,
            upgrade=self.upgrade,
            replica=self.holder,
        )

    def history(self) -> AgentHistory:
        return AgentHistory(cpu=list(self.cpu), mem=list(self.mem), queue=self.queue.counts())

    def status(self) -> dict[str, Any]:
        """What the write-behind flush stores, so a restart rebuilds the view."""
        return {
            "version": self.version,
            "last_heartbeat_at": self.last_heartbeat_at,
            "connected_at": self.connected_at,
            "ever_connected": self.connected_at is not None or self.last_heartbeat_at is not None,
            "uptime_s": self.uptime_s,
            "cpu_percent": self.cpu_percent,
            "mem_rss_bytes": self.mem_rss_bytes,
            "mem_host_percent": self.mem_host_percent,
            "queue_depth": self.queue_depth,
            "cert_not_after": self.cert_not_after,
            "config_hash": self.config_hash,
            "skew_ms": self.skew_ms,
            "rtt_ms": self.rtt_ms,
            # In tenths, as kept: tolist() and whole numbers make the flush of 19,000
            # agents 3 times cheaper than lists of floats (docs/scaling.md).
            "cpu_x10": self.cpu.units(),
            "mem_x10": self.mem.units(),
            "queue": self.queue.units(),
            "stopped": (
                {"at": self.stopped_at, "reason": self.stop_reason or ""}
                if self.state == Presence.STOPPED
                else None
            ),
            "upgrade": msgspec.to_builtins(self.upgrade) if self.upgrade else None,
        }

    def _restore(self, status: dict[str, Any]) -> None:
        if not status:
            return
        for key in (
            "version",
            "last_heartbeat_at",
            "uptime_s",
            "cpu_percent",
            "mem_rss_bytes",
            "mem_host_percent",
            "queue_depth",
            "config_hash",
            "skew_ms",
            "rtt_ms",
        ):
            if key in status:
                setattr(self, key, status[key])
        if status.get("cert_not_after"):
            self.cert_not_after = status["cert_not_after"]
        if isinstance(status.get("upgrade"), dict):
            try:
                self.upgrade = msgspec.convert(status["upgrade"], UpgradeInfo)
            except msgspec.ValidationError:
                self.upgrade = None  # written by another version: shown again at the next step
        for series, key in ((self.cpu, "cpu"), (self.mem, "mem")):
            if isinstance(status.get(f"{key}_x10"), list):
                series.extend_units(status[f"{key}_x10"])
            else:  # written before 2026-12-07: floats
                series.extend(status.get(key, []))
        self.queue.extend_units(status.get("queue", []))
        if status.get("ever_connected") and self.state != Presence.REVOKED:
            stopped = status.get("stopped")
            if isinstance(stopped, dict):
                # It said goodbye before the restart: still away on purpose.
                self.state = Presence.STOPPED
                self.stopped_at = stopped.get("at")
                self.stop_reason = str(stopped.get("reason") or "")
                return
            # Known before the restart, not connected since: offline until it dials in.
            self.state = Presence.OFFLINE
