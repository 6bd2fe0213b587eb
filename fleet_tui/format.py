"""Text for the values the dashboard shows, readable without colour."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from fleet.protocol import AgentState, Presence
from fleet.units import count

__all__ = [
    "LATE_INTERVALS",
    "STATE_RANK",
    "STATE_SYMBOL",
    "age",
    "bar_chart",
    "cert_expiry",
    "cert_warning",
    "count",
    "elide",
    "heartbeat_age",
    "heartbeat_late",
    "percent",
    "shown_state",
    "skew",
    "sparkline",
    "state_label",
]


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

LATE_INTERVALS = 3.0
"""Heartbeat intervals without one after which an agent is late: the control
plane's default ``stale_after_intervals``."""

_UP = frozenset({Presence.CONNECTED, Presence.DEGRADED})


def shown_state(a: AgentState, now: float) -> Presence:
    """The state to show for ``a``, the same in the table, the detail and the wall.

    The control plane's word, except when it says the agent is up while its last
    heartbeat is older than the stale threshold: then that word is older than the
    data it is about (a hung control plane, a stream gone quiet), and the agent
    reads ``stale``, as the server itself will say once it catches up.
    """
    if a.state in _UP and heartbeat_late(a, now):
        return Presence.STALE
    return a.state


def heartbeat_late(a: AgentState, now: float) -> bool:
    """True when ``a``'s last heartbeat is over :data:`LATE_INTERVALS` old."""
    last = a.last_heartbeat_at
    return last is not None and now - last > LATE_INTERVALS * a.heartbeat_interval_s


def heartbeat_age(a: AgentState, now: float) -> str:
    """The last heartbeat's age for the table: ``<8s`` while the agent is up and
    on time (a cell that does not tick every second), its real age otherwise:
    an offline agent's ``<8s`` read as healthy."""
    fresh = a.heartbeat_interval_s * 1.5 if shown_state(a, now) in _UP else None
    return age(a.last_heartbeat_at, now, fresh_s=fresh)


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


def bar_chart(values: Sequence[float], width: int, height: int, top: float | None) -> list[str]:
    """The last ``width`` values as ``height`` rows of bars, top row first.

    Args:
        top: The value of a full bar: 100 for percentages, so 5 % memory is a
            stub and not a full bar; None scales to the largest value (counts).
    """
    if width <= 0 or height <= 0:
        return []
    tail = [max(0.0, float(v)) for v in list(values)[-width:]]
    peak = top if top is not None else max([*tail, 1e-9])
    eighths = [0 if v <= 0 else max(1, round(min(v, peak) / peak * height * 8)) for v in tail]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = "".join(_BARS[min(8, max(0, e - row * 8))] for e in eighths)
        rows.append(cells.rjust(width))
    return rows


def elide(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, its middle replaced by an ellipsis
    (names often differ at both ends: ``build-eu-0001`` and ``build-us-0001``)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1 + 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")
