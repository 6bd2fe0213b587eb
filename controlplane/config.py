"""Control-plane settings: thresholds and timers, all with defaults that match DESIGN.md."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    heartbeat_interval_s: float = 5.0
    stale_after_intervals: float = 3.0
    """An agent is stale when no heartbeat came for this many intervals."""
    offline_after_stale_s: float = 60.0
    """A stale agent becomes offline after this long."""
    restart_grace_s: float = 30.0
    """After a restart, agents are not alerted as stale before this."""
    skew_warn_ms: float = 1_000.0
    skew_critical_ms: float = 30_000.0
    cert_warn_s: float = 6 * 3600.0
    """Warn when a certificate expires within this window (renewal is overdue)."""
    queue_warn: int = 100
    cert_lifetime_s: float = 24 * 3600.0
    time_probe_interval_s: float = 30.0
    heap_trim_s: float = 30.0
    """Seconds between returns of freed heap memory to the system (glibc)."""
    auth_timeout_s: float = 10.0
    command_timeout_s: float = 15.0
    history_len: int = 60
    """Samples per agent kept in memory for sparklines."""
    flush_interval_s: float = 10.0
    """Write-behind: how often changed agents and alerts are flushed to the store, in
    one batch.  Profiled at 2 s, serialising every agent's status took 40 % of the
    control plane's busy time; what is lost on a crash is at most this many seconds
    of samples (alerts and presence are recomputed from live data)."""
    tick_s: float = 1.0
    """How often presence timers are evaluated."""
    subscriber_buffer: int = 2_000
    """Deltas a subscriber may have pending before it gets a fresh snapshot."""
    replay_len: int = 10_000
    """Deltas kept for ``since=SEQ`` resumption."""
