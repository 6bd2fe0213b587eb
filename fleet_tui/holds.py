"""Silences and maintenance windows as the dashboard lists them: what each holds
back, who made it and why, when it starts and ends.  No Textual here.

The event stream carries them (in the snapshot, then ``holds`` updates: every one
not ended, each time one is made, ended or over); from a server older than that, the
list comes from ``GET /v1/silences`` and ``GET /v1/maintenance`` instead, see
:class:`~fleet_tui.screens.holds.HoldsScreen`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fleet.protocol import HoldInfo
from fleet.units import format_duration

__all__ = ["MATCHER_KEYS", "Hold", "clock_time", "hold_from", "hold_of", "in_order"]

MATCHER_KEYS = ("agent", "pool", "connection", "kind")
"""A silence's matchers, in the order they are written."""

HoldKind = Literal["silence", "maintenance"]


@dataclass(frozen=True)
class Hold:
    """A silence or a maintenance window."""

    kind: HoldKind
    id: str
    what: str
    """``pool=etl kind=stale`` (a silence's matchers) or ``pool etl``, ``agent etl-07``."""
    starts_at: float
    ends_at: float
    created_by: str
    reason: str

    @property
    def noun(self) -> str:
        """``silence`` or ``maintenance window``, for sentences."""
        return "silence" if self.kind == "silence" else "maintenance window"

    def active(self, now: float) -> bool:
        """Started and not yet ended."""
        return self.starts_at <= now < self.ends_at

    @property
    def mark(self) -> str:
        """``⊘`` for a silence, ``⚒`` for a maintenance window."""
        return "⊘" if self.kind == "silence" else "⚒"

    def title(self) -> str:
        """``⊘ silence  pool=etl kind=stale``, ``⚒ maintenance  pool etl``."""
        return f"{self.mark} {self.kind}  {self.what}"

    def timing(self, now: float) -> str:
        """``active, ends 15:30Z (1h20m left)`` or ``starts 14:30Z (in 25m), ends 15:30Z``.

        Minutes at best, so the line changes once a minute, not every tick.
        """
        end = clock_time(self.ends_at, now)
        if self.active(now):
            return f"active, ends {end} ({_minutes(self.ends_at - now)} left)"
        start = clock_time(self.starts_at, now)
        return f"starts {start} (in {_minutes(self.starts_at - now)}), ends {end}"

    def said(self) -> str:
        """``by alice: patching``, or ``by alice`` without a reason."""
        return f"by {self.created_by}: {self.reason}" if self.reason else f"by {self.created_by}"


def _minutes(seconds: float) -> str:
    """``1h20m``, ``25m``, ``<1m``: a duration to the minute, rounded up."""
    if seconds < 60:
        return "<1m"
    return format_duration(-(-seconds // 60) * 60)


def clock_time(at: float, now: float) -> str:
    """A UTC time, as the alerts say it: ``15:30Z`` within a day, else with the date."""
    fmt = "%H:%MZ" if abs(at - now) < 86400 else "%Y-%m-%d %H:%MZ"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime(fmt)


def hold_from(kind: HoldKind, data: Any) -> Hold | None:
    """A :class:`Hold` from an item of ``GET /v1/silences`` or ``/v1/maintenance``;
    None for an item this dashboard does not understand (a newer server's)."""
    if not isinstance(data, dict):
        return None
    try:
        if kind == "silence":
            what = " ".join(f"{k}={data[k]}" for k in MATCHER_KEYS if data.get(k))
        else:
            what = f"{data['scope']} {data.get('target_name') or data['target']}"
        return Hold(
            kind=kind,
            id=str(data["id"]),
            what=what,
            starts_at=float(data["starts_at"]),
            ends_at=float(data["ends_at"]),
            created_by=str(data.get("created_by") or "?"),
            reason=str(data.get("reason") or ""),
        )
    except (KeyError, TypeError, ValueError):
        return None


def hold_of(info: HoldInfo) -> Hold:
    """A :class:`Hold` from the stream's :class:`~fleet.protocol.HoldInfo`."""
    return Hold(
        kind=info.kind,
        id=info.id,
        what=info.what,
        starts_at=info.starts_at,
        ends_at=info.ends_at,
        created_by=info.created_by,
        reason=info.reason,
    )


def in_order(holds: Iterable[Hold], now: float) -> list[Hold]:
    """Those not ended by ``now``: silences first, then windows; in each, the active
    ones first (the soonest to end first), then the planned ones (the soonest to start)."""
    return sorted(
        (h for h in holds if h.ends_at > now),
        key=lambda h: (
            h.kind != "silence",
            not h.active(now),
            h.ends_at if h.active(now) else h.starts_at,
            h.id,
        ),
    )
