"""Text for the values the dashboard shows, readable without colour."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from fleet.protocol import Presence

__all__ = [
    "STATE_RANK",
    "STATE_SYMBOL",
    "age",
    "cert_expiry",
    "cert_warning",
    "count",
    "percent",
    "skew",
    "sparkline",
    "state_label",
]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 connection``, ``2 connections``, ``1,204 agents``: never "1 connections"."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"


STATE_SYMBOL: dict[Presence, str] = {
    Presence.CONNECTED: "✓",
    Presence.DEGRADED: "▲",
    Presence.STALE: "?",
    Presence.OFFLINE: "✗",
    Presence.REVOKED: "⊘",
    Presence.PENDING: "○",
    Presence.STOPPED: "■",
}
"""A symbol per state, so a state reads in monochrome and at a glance."""

STATE_RANK: dict[Presence, int] = {
    Presence.OFFLINE: 0,
    Presence.STALE: 1,
    Presence.DEGRADED: 2,
    Presence.STOPPED: 3,
    Presence.PENDING: 4,
    Presence.REVOKED: 5,
    Presence.CONNECTED: 6,
}
"""Unhealthy first: the default sort order of states.  ``stopped`` (said goodbye,
away on purpose) is not unhealthy, but it is away: after the unhealthy ones."""

CERT_WARN_S = 6 * 3600.0
"""Certificates closer than this to expiry are shown in the warning colour.

Agent certificates live 24 h and renew at two thirds of their life (8 h left);
under 6 h the renewal is overdue.  The control plane uses the same window."""

_BARS = " ▁▂▃▄▅▆▇█"


def state_label(state: Presence) -> str:
    """Symbol and word: ``"▲ degraded"``."""
    return f"{STATE_SYMBOL[state]} {state.value}"


def age(then: float | None, now: float, fresh_s: float | None = None, coarse: bool = False) -> str:
    """How long ago, compact: ``"3s ago"``, ``"4m ago"``, ``"never"``.

    Args:
        then: The event's time, or None when it never happened.
        now: The current time on the same clock.
        fresh_s: When given, ages below it read ``"<Ns"`` so that a healthy
            agent's cell does not change with every tick (no redraw, no bytes).
        coarse: Minutes at best (``"<1m ago"``), for ages that need no more.
    """
    if then is None:
        return "never"
    delta = max(0.0, now - then)
    if fresh_s is not None and delta < fresh_s:
        return f"<{math.ceil(fresh_s)}s"
    if delta < 60:
        return "<1m ago" if coarse else f"{int(delta)}s ago"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    return f"{int(delta // 86400)}d ago"


def skew(ms: float | None) -> str:
    """Clock offset with its sign: ``"+12ms"``, ``"-1.5s"``, ``"-"``."""
    if ms is None:
        return "-"
    if abs(ms) >= 1000:
        return f"{ms / 1000:+.1f}s"
    if abs(ms) < 0.5:
        return "0ms"  # not "-0ms"
    return f"{ms:+.0f}ms"


def percent(value: float | None) -> str:
    """``"12%"`` or ``"-"``."""
    return "-" if value is None else f"{value:.0f}%"


def cert_expiry(not_after: float | None, now: float) -> str:
    """``"in 6 days"``, ``"in 5h"``, ``"expired"``, ``"-"``."""
    if not_after is None:
        return "-"
    left = not_after - now
    if left <= 0:
        return "expired"
    # Minutes and hours round to nearest, so 2 h 59 m reads "in 3h" as the
    # control plane's alert ("expires in 3.0 h") does; days count whole days.
    if left < 3570:
        return f"in {max(1, round(left / 60))}m"
    if left < 84600:
        return f"in {round(left / 3600)}h"
    days = max(1, int(left // 86400))
    return f"in {days} day" if days == 1 else f"in {days} days"


def utc_minute(ts: float | None) -> str:
    """``"2026-11-28 05:53Z"``, or ``"-"``."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%MZ")


def cert_warning(not_after: float | None, now: float) -> bool:
    """True when the certificate is expired or close to it."""
    return not_after is not None and not_after - now < CERT_WARN_S


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as block characters, scaled to ``top`` (or their max)."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    if not tail:
        return " " * width
    peak = top if top is not None else max(max(tail), 1e-9)
    steps = len(_BARS) - 1
    chars = []
    for value in tail:
        level = 0 if peak <= 0 else round(min(max(value, 0.0), peak) / peak * steps)
        chars.append(_BARS[max(level, 1) if value > 0 else 0])
    return "".join(chars).rjust(width)
