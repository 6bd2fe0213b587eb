"""Health checks and the alerts they raise.

The same checks decide whether a connected agent is ``degraded`` (and why) and
which alerts are open.  Alerts are keyed by (kind, target): raised once when a
check starts failing, cleared once when it passes again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from fleet.protocol import AlertInfo, Presence

from .config import Settings
from .live import LiveAgent
from .store.base import AlertRecord

__all__ = ["AlertBook", "Finding", "agent_findings"]


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
    if agent.pinned_version and agent.version and agent.version != agent.pinned_version:
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


class AlertBook:
    """Open alerts by (kind, target); returns what changed so the caller can publish."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], AlertRecord] = {}

    def load(self, records: Iterable[AlertRecord]) -> None:
        for r in records:
            if r.cleared_at is None:
                self.open[(r.kind, r.target)] = r

    def reconcile(
        self, target: str, kinds: set[str], findings: list[Finding]
    ) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """Make the open alerts of ``target`` among ``kinds`` match ``findings``.

        Returns:
            (raised or changed, cleared).
        """
        raised: list[AlertRecord] = []
        cleared: list[AlertRecord] = []
        now = time.time()
        wanted = {f.kind: f for f in findings}
        for kind in kinds:
            key = (kind, target)
            current = self.open.get(key)
            finding = wanted.get(kind)
            if finding is None:
                if current is not None:
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
            elif current.severity != finding.severity:
                current.severity = finding.severity
                current.message = finding.message
                raised.append(current)
        return raised, cleared

    def clear_target(self, target: str) -> list[AlertRecord]:
        cleared = []
        now = time.time()
        for key in [k for k in self.open if k[1] == target]:
            rec = self.open.pop(key)
            rec.cleared_at = now
            cleared.append(rec)
        return cleared

    def infos(self) -> list[AlertInfo]:
        return sorted(
            (to_info(r) for r in self.open.values()), key=lambda a: a.raised_at, reverse=True
        )


def to_info(r: AlertRecord) -> AlertInfo:
    return AlertInfo(
        id=r.id,
        kind=r.kind,
        severity="critical" if r.severity == "critical" else "warning",
        target=r.target,
        message=r.message,
        raised_at=r.raised_at,
        cleared_at=r.cleared_at,
    )


AGENT_KINDS = {
    "clock_skew",
    "cert_expiring",
    "queue_depth",
    "version_drift",
    "config_drift",
    "stale",
    "offline",
}
