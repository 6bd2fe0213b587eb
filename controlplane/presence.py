"""Presence: an explicit state machine per agent, driven by server-side timers.

::

    pending ──▶ connected ◀──▶ degraded
                   │  ▲           │
                   ▼  │           ▼
                  stale ──────▶ offline
    (any) ──▶ revoked  (final)
    connected, degraded, stale ──▶ stopped ──▶ connected, degraded

``stopped``: the agent said goodbye before it closed (SIGTERM, ``systemctl stop``):
away on purpose, so no timer moves it and no alert is raised; it returns to
``connected`` when it dials in again.

``connected`` and ``degraded`` differ only in whether a check fails (skew,
certificate, queue, version); the fleet decides which on every heartbeat.
"""

from __future__ import annotations

from fleet.protocol import Presence

__all__ = ["IllegalTransition", "Presence", "check_transition"]

_LIVE = {Presence.CONNECTED, Presence.DEGRADED}

_ALLOWED: dict[Presence, set[Presence]] = {
    Presence.PENDING: {*_LIVE, Presence.REVOKED},
    Presence.CONNECTED: {
        Presence.DEGRADED,
        Presence.STALE,
        Presence.OFFLINE,
        Presence.STOPPED,
        Presence.REVOKED,
    },
    Presence.DEGRADED: {
        Presence.CONNECTED,
        Presence.STALE,
        Presence.OFFLINE,
        Presence.STOPPED,
        Presence.REVOKED,
    },
    Presence.STALE: {*_LIVE, Presence.OFFLINE, Presence.STOPPED, Presence.REVOKED},
    Presence.OFFLINE: {*_LIVE, Presence.STALE, Presence.REVOKED},
    Presence.STOPPED: {*_LIVE, Presence.REVOKED},
    Presence.REVOKED: set(),
}


class IllegalTransition(RuntimeError):
    """A presence change the state machine does not allow: a bug, not bad input."""


def check_transition(old: Presence, new: Presence) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed (or a no-op)."""
    if old != new and new not in _ALLOWED[old]:
        raise IllegalTransition(f"presence cannot go from {old.value} to {new.value}")
