"""Acknowledgements, silences and maintenance windows: which alerts are held back.

Alertmanager's model: a held alert still exists, is still shown (marked, with who
and why) and still clears; only its notifications stop.  :class:`Suppression` keeps
the live acknowledgements, silences and windows in memory (loaded at start, changed
by the API) and answers, without I/O, why an alert is held: :meth:`Suppression.hold`
is the notifier's ``hold`` hook (silences and maintenance only; an acknowledgement
stops repeats, through :meth:`Suppression.ack_of`, not the alert itself),
:meth:`Suppression.annotate` fills the fields of :class:`~fleet.protocol.AlertInfo`
that the dashboard shows.

What an alert is about (its labels, as Alertmanager would see them):

- an agent's alert (``target`` an agent id): ``agent`` (its id and its name both
  match), ``pool`` (the agent's), ``kind``;
- a pool's (``pool:NAME``): ``pool``, ``kind``;
- a connection's (``connection:NAME``): ``connection``, ``kind``.

A silence matches when every matcher it gives equals the alert's label.  A
maintenance window of an agent holds that agent's alerts; of a pool, the pool's
alerts, its agents' alerts, and a connection's when every pool it routes through
is in maintenance.  A pool's minimum alert is also held when the agents in
maintenance explain the whole shortfall (patching one agent of three, minimum
three, is planned, not an incident).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from fleet.protocol import AlertInfo

from .store.base import AckRecord, MaintenanceRecord, SilenceRecord

__all__ = ["AlertLabels", "Resolver", "Suppression", "hold_reason", "labels_of", "until"]


@dataclass(frozen=True)
class AlertLabels:
    kind: str
    agent_id: str | None = None
    agent_name: str | None = None
    pool: str | None = None
    connection: str | None = None


class Resolver(Protocol):
    """What suppression needs to know about the fleet (the live :class:`~.fleet.Fleet`)."""

    def agent_of(self, agent_id: str) -> tuple[str, str] | None:
        """The agent's (name, pool), or None for an unknown id."""
        ...

    def pools_of_connection(self, name: str) -> list[str]: ...

    def pool_shortfall(self, pool: str) -> tuple[int, list[str]]:
        """(healthy agents missing to reach the pool's minimum, ids of its unusable agents)."""
        ...


def labels_of(alert: AlertInfo, fleet: Resolver) -> AlertLabels:
    """The labels of ``alert`` (see the module docstring)."""
    scope, _, name = alert.target.partition(":")
    if scope == "pool" and name:
        return AlertLabels(alert.kind, pool=name)
    if scope == "connection" and name:
        return AlertLabels(alert.kind, connection=name)
    agent = fleet.agent_of(alert.target)
    return AlertLabels(
        alert.kind,
        agent_id=alert.target,
        agent_name=agent[0] if agent else None,
        pool=agent[1] if agent else None,
    )


def until(at: float, now: float) -> str:
    """A short UTC time for a reason: ``14:00 UTC`` within a day, else with the date."""
    fmt = "%H:%M UTC" if at - now < 86400 else "%Y-%m-%d %H:%M UTC"
    return time.strftime(fmt, time.gmtime(at))


def _matches(s: SilenceRecord, labels: AlertLabels) -> bool:
    if s.agent is not None and s.agent not in (labels.agent_id, labels.agent_name):
        return False
    return all(
        want is None or want == have
        for want, have in (
            (s.pool, labels.pool),
            (s.connection, labels.connection),
            (s.kind, labels.kind),
        )
    )


def _active(start: float, end: float, now: float) -> bool:
    return start <= now < end


class Suppression:
    """The live acknowledgements, silences and maintenance windows.

    Args:
        fleet: answers what an alert's target is (agent name and pool, a
            connection's pools, a pool's shortfall).
    """

    def __init__(self, fleet: Resolver) -> None:
        self.fleet = fleet
        self.acks: dict[str, AckRecord] = {}
        """Alert id -> its acknowledgement."""
        self.silences: dict[str, SilenceRecord] = {}
        self.windows: dict[str, MaintenanceRecord] = {}

    def load(
        self,
        acks: Iterable[AckRecord],
        silences: Iterable[SilenceRecord],
        windows: Iterable[MaintenanceRecord],
    ) -> None:
        self.acks = {a.alert_id: a for a in acks}
        self.silences = {s.id: s for s in silences if s.deleted_at is None}
        self.windows = {w.id: w for w in windows if w.deleted_at is None}

    def expire(self, now: float) -> bool:
        """Forget what has ended by itself; True when anything did."""
        before = len(self.acks) + len(self.silences) + len(self.windows)
        self.acks = {
            k: a for k, a in self.acks.items() if a.expires_at is None or a.expires_at > now
        }
        self.silences = {k: s for k, s in self.silences.items() if s.ends_at > now}
        self.windows = {k: w for k, w in self.windows.items() if w.ends_at > now}
        return before != len(self.acks) + len(self.silences) + len(self.windows)

    def next_change(self, now: float) -> float:
        """When something starts, ends or lapses next (inf: nothing pending)."""
        times = [a.expires_at for a in self.acks.values() if a.expires_at is not None]
        spans: list[SilenceRecord | MaintenanceRecord] = [
            *self.silences.values(),
            *self.windows.values(),
        ]
        times += [s.starts_at if s.starts_at > now else s.ends_at for s in spans]
        return min(times, default=float("inf"))

    @property
    def agent_windows(self) -> bool:
        """Any agent in maintenance: a pool's shortfall may be held, as the fleet changes."""
        return any(w.scope == "agent" for w in self.windows.values())

    # ------------------------------------------------------------ questions

    def ack_of(self, alert_id: str, now: float) -> AckRecord | None:
        ack = self.acks.get(alert_id)
        if ack is None or (ack.expires_at is not None and ack.expires_at <= now):
            return None
        return ack

    def in_maintenance(self, scope: str, target: str, now: float) -> MaintenanceRecord | None:
        """The active window of that agent (id) or pool that ends last, if any."""
        found = [
            w
            for w in self.windows.values()
            if w.scope == scope and w.target == target and _active(w.starts_at, w.ends_at, now)
        ]
        return max(found, key=lambda w: w.ends_at, default=None)

    def _window_for(self, labels: AlertLabels, now: float) -> tuple[str, float] | None:
        """Why a maintenance window holds an alert with these labels: (reason, end)."""
        if labels.agent_id is not None:
            w = self.in_maintenance("agent", labels.agent_id, now)
            if w is not None:
                name = labels.agent_name or labels.agent_id
                text = f"maintenance of agent {name} until {until(w.ends_at, now)}"
                return _said(text, w.reason), w.ends_at
        pools = (
            self.fleet.pools_of_connection(labels.connection)
            if labels.connection is not None
            else [labels.pool]
            if labels.pool is not None
            else []
        )
        windows = [self.in_maintenance("pool", p, now) for p in pools]
        if pools and all(w is not None for w in windows):
            end = min(w.ends_at for w in windows if w is not None)
            reasons = sorted({w.reason for w in windows if w is not None and w.reason})
            text = f"maintenance of pool {', '.join(pools)} until {until(end, now)}"
            return _said(text, "; ".join(reasons)), end
        if labels.agent_id is None and labels.connection is None and labels.pool is not None:
            return self._shortfall_in_maintenance(labels.pool, now)
        return None

    def _shortfall_in_maintenance(self, pool: str, now: float) -> tuple[str, float] | None:
        missing, down = self.fleet.pool_shortfall(pool)
        held = [(a, w) for a in down if (w := self.in_maintenance("agent", a, now)) is not None]
        if missing <= 0 or len(held) < missing:
            return None
        names = [(self.fleet.agent_of(a) or (a, ""))[0] for a, _ in held]
        end = min(w.ends_at for _, w in held)
        return f"maintenance of agent {', '.join(sorted(names))} until {until(end, now)}", end

    def _silence_for(self, labels: AlertLabels, now: float) -> SilenceRecord | None:
        found = [
            s
            for s in self.silences.values()
            if _active(s.starts_at, s.ends_at, now) and _matches(s, labels)
        ]
        return max(found, key=lambda s: s.ends_at, default=None)

    def suppressed(self, alert: AlertInfo, now: float) -> tuple[str, float] | None:
        """Why a silence or a maintenance window holds ``alert``, and until when."""
        labels = labels_of(alert, self.fleet)
        window = self._window_for(labels, now)
        if window is not None:
            return window
        s = self._silence_for(labels, now)
        if s is None:
            return None
        return _said(
            f"silenced by {s.created_by} until {until(s.ends_at, now)}", s.reason
        ), s.ends_at

    def hold(self, alert: AlertInfo, now: float | None = None) -> str | None:
        """Why ``alert`` must not be notified now (None: notify it).

        The notifier's ``hold`` hook: a maintenance window or a silence.  Not an
        acknowledgement: that only stops the repeats to webhook and Slack (the
        notifier's ``ack`` hook), while an escalation still notifies and
        Alertmanager keeps getting the alert in its re-sends.
        """
        return hold_reason(self, alert, time.time() if now is None else now)

    def annotate(self, alert: AlertInfo, now: float) -> AlertInfo:
        """``alert`` with its acknowledgement and suppression fields as they are now."""
        ack = self.ack_of(alert.id, now)
        held = self.suppressed(alert, now) if alert.cleared_at is None else None
        return msgspec.structs.replace(
            alert,
            acked_by=ack.acked_by if ack else None,
            acked_at=ack.at if ack else None,
            ack_note=ack.note if ack else None,
            silenced_until=held[1] if held else None,
            suppressed=held[0] if held else None,
        )


def hold_reason(suppression: Suppression, alert: AlertInfo, now: float) -> str | None:
    """Why a silence or a maintenance window holds ``alert`` back from notifications
    at ``now``, or None (a cleared alert is never held)."""
    if alert.cleared_at is not None:
        return None
    held = suppression.suppressed(alert, now)
    return held[0] if held is not None else None


def _said(text: str, reason: str) -> str:
    """``text``, then the reason people gave, when they gave one."""
    return f"{text}: {reason}" if reason else text
