"""Health checks and the alerts they raise.

The same checks decide whether a connected agent is ``degraded`` (and why) and
which alerts are open.  Alerts are keyed by (kind, target): raised once when a
check starts failing, cleared once when it has passed for the hold time (a
check that fails again within it keeps the alert open and counts a flap).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from fleet.protocol import AlertInfo, Presence

from .config import Settings
from .live import LiveAgent
from .store.base import AlertRecord

__all__ = [
    "AGENT_KINDS",
    "HELD_KINDS",
    "PRESENCE_KINDS",
    "AlertBook",
    "Finding",
    "agent_findings",
    "pools_text",
    "stopped_reason",
    "to_info",
]


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    message: str


def _human(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def agent_findings(agent: LiveAgent, settings: Settings, now: float) -> list[Finding]:
    """Failing checks of a live agent (presence aside)."""
    out: list[Finding] = []
    if agent.skew_ms is not None and abs(agent.skew_ms) >= settings.skew_warn_ms:
        severity = "critical" if abs(agent.skew_ms) >= settings.skew_critical_ms else "warning"
        out.append(
            Finding("clock_skew", severity, f"clock is off by {agent.skew_ms / 1000:+.1f} s")
        )
    if agent.cert_not_after is not None:
        left = agent.cert_not_after - now
        if left <= 0:
            out.append(Finding("cert_expiring", "critical", "certificate expired"))
        elif left <= settings.cert_warn_s:
            out.append(
                Finding(
                    "cert_expiring",
                    "warning",
                    f"certificate expires in {_human(left)}; renewal is overdue",
                )
            )
    if agent.queue_depth is not None and agent.queue_depth >= settings.queue_warn:
        out.append(
            Finding(
                "queue_depth",
                "warning",
                f"queue depth {agent.queue_depth} (threshold {settings.queue_warn})",
            )
        )
    if (
        agent.pinned_version
        and agent.version
        and agent.version != agent.pinned_version
        and agent.rollout is None
    ):
        out.append(
            Finding(
                "version_drift",
                "warning",
                f"runs {agent.version}, pinned {agent.pinned_version}",
            )
        )
    if (
        agent.pinned_config_hash
        and agent.config_hash
        and agent.config_hash != agent.pinned_config_hash
    ):
        out.append(
            Finding("config_drift", "warning", "effective config differs from the pinned one")
        )
    return out


def presence_finding(agent: LiveAgent) -> Finding | None:
    if agent.state == Presence.STALE:
        # A fixed time, not an age: the message must not go stale itself, and a
        # changing text would republish the agent on every tick.
        if agent.last_heartbeat_at is None:
            return Finding("stale", "warning", "no heartbeat since it connected")
        at = time.strftime("%H:%M:%S UTC", time.gmtime(agent.last_heartbeat_at))
        return Finding("stale", "warning", f"no heartbeat since {at}")
    if agent.state == Presence.OFFLINE:
        return Finding("offline", "critical", "agent is offline")
    return None


def stopped_reason(agent: LiveAgent) -> str:
    """A stopped agent's reason line: what it said and when (a fixed time, as for stale)."""
    said = agent.stop_reason or "no reason given"
    if agent.stopped_at is None:
        return f"stopped on purpose: {said}"
    at = time.strftime("%H:%M:%S UTC", time.gmtime(agent.stopped_at))
    return f"stopped on purpose at {at}: {said}"


class AlertBook:
    """Open alerts by (kind, target); returns what changed so the caller can publish.

    Hysteresis: an alert of a :data:`HELD_KINDS` kind whose check passes is held
    open for ``hold_s``; if the check fails again within it, the same alert goes on
    (its ``raised_at`` kept) and its ``flaps`` count rises; if not, it clears
    (``cleared_at`` = when the check passed) at :meth:`expire`.

    Args:
        hold_s: The hold time, seconds; 0 clears at once.
    """

    def __init__(self, hold_s: float = 0.0) -> None:
        self.hold_s = hold_s
        self.open: dict[tuple[str, str], AlertRecord] = {}
        self.passing: dict[tuple[str, str], float] = {}
        """Open alerts whose check passes, held open: key -> when it passed (wall clock)."""

    def load(self, records: Iterable[AlertRecord]) -> None:
        for r in records:
            if r.cleared_at is None:
                self.open[(r.kind, r.target)] = r

    def reconcile(
        self,
        target: str,
        kinds: Iterable[str],
        findings: list[Finding],
        unknown: Collection[str] = (),
    ) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """Make the open alerts of ``target`` among ``kinds`` match ``findings``.

        Kinds in ``unknown`` are left as they are: a check that cannot be judged
        now (after a restart, or a pause of the server) neither raises nor clears.

        Returns:
            (raised or changed, cleared).
        """
        raised: list[AlertRecord] = []
        cleared: list[AlertRecord] = []
        now = time.time()
        wanted = {f.kind: f for f in findings}
        for kind in kinds:
            if kind in unknown:
                continue
            key = (kind, target)
            current = self.open.get(key)
            finding = wanted.get(kind)
            if finding is None:
                if current is None:
                    continue
                if self.hold_s > 0 and kind in HELD_KINDS:
                    self.passing.setdefault(key, now)
                else:
                    current.cleared_at = now
                    cleared.append(self.open.pop(key))
            elif current is None:
                rec = AlertRecord(
                    id=uuid.uuid4().hex[:12],
                    kind=kind,
                    severity=finding.severity,
                    target=target,
                    message=finding.message,
                    raised_at=now,
                )
                self.open[key] = rec
                raised.append(rec)
            else:
                flapped = self.passing.pop(key, None) is not None
                if flapped:
                    current.flaps += 1
                if flapped or current.severity != finding.severity:
                    current.severity = finding.severity
                    current.message = finding.message
                    raised.append(current)
        return raised, cleared

    def expire(self, now: float) -> list[AlertRecord]:
        """Clear the held alerts whose check has passed for the whole hold time."""
        cleared = []
        for key, since in list(self.passing.items()):
            if now - since >= self.hold_s:
                del self.passing[key]
                rec = self.open.pop(key)
                rec.cleared_at = since
                cleared.append(rec)
        return cleared

    def shift(self, seconds: float) -> None:
        """Move the hold timers on by ``seconds`` (a pause of the server does not count)."""
        for key in self.passing:
            self.passing[key] += seconds

    def clear_target(self, target: str) -> list[AlertRecord]:
        """Clear every alert of ``target`` at once (it was revoked or removed)."""
        cleared = []
        now = time.time()
        for key in [k for k in self.open if k[1] == target]:
            rec = self.open.pop(key)
            self.passing.pop(key, None)
            rec.cleared_at = now
            cleared.append(rec)
        return cleared


def pools_text(pools: list[str]) -> str:
    """``pool db-east`` or ``pools db-east, db-west``: for people, not Python's repr."""
    return f"{'pool' if len(pools) == 1 else 'pools'} {', '.join(pools)}"


def to_info(r: AlertRecord) -> AlertInfo:
    return AlertInfo(
        id=r.id,
        kind=r.kind,
        severity="critical" if r.severity == "critical" else "warning",
        target=r.target,
        message=r.message,
        raised_at=r.raised_at,
        cleared_at=r.cleared_at,
        flaps=r.flaps,
    )


PRESENCE_KINDS = frozenset({"stale", "offline"})
"""The agent alerts about its absence: unknown while the server cannot have heard it."""

HELD_KINDS = frozenset(
    {"stale", "offline", "unroutable", "pool_below_min", "clock_skew", "queue_depth"}
)
"""Alerts on measurements that come and go (presence, routes, skew, queues): held open
for ``alert_hold_s`` after their check passes.  Drift and certificate alerts follow
pins and renewals, and clear at once."""

AGENT_KINDS = {
    "clock_skew",
    "cert_expiring",
    "queue_depth",
    "version_drift",
    "config_drift",
    "stale",
    "offline",
}
