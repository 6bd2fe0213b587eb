"""Maintenance and freeze windows of a pool: when they open, when they end.

Pure functions of the windows and a ``now`` (Unix time), so that tests give the
time rather than wait for it.  A recurring window opens on some weekdays at a
wall-clock time in an IANA time zone and lasts a duration of elapsed time; a
window may also open once (from, until): a freeze over a launch, a one-off
maintenance slot.

Daylight saving time, read as people write a window (and as Python's zoneinfo
resolves a wall time, ``fold=0``): a start in the hour a spring-forward skips
opens at the same distance past the gap (02:30 on the night clocks jump from
02:00 to 03:00 opens at 03:30); a start in the hour an autumn fall-back repeats
opens once, at its first occurrence (summer time).  A window lasts its duration
of real time, so a 4 h window over a fall-back ends at 05:00 by the clock, not
06:00.  Times are told to people in the window's own zone: ``Tue 02:00
Europe/Berlin``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from .schedules import zone_of

__all__ = [
    "WEEKDAYS",
    "Absolute",
    "Hold",
    "Recurring",
    "Window",
    "current_end",
    "freeze_in_force",
    "hold",
    "is_open",
    "local_text",
    "maintenance_open",
    "next_start",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as windows are written, Monday first (``datetime.weekday()`` order)."""

MAX_DURATION_S = 7 * 86400.0
"""A recurring window lasts at most a week (longer would never close)."""

_LOOKAHEAD_DAYS = 8
"""A weekly window opens within 8 days of any instant: how far to look for the next."""
_MERGE_LIMIT = 64
"""Overlapping occurrences merged into one span at most (a window open all week)."""


@dataclass(frozen=True)
class Recurring:
    """Opens on ``weekdays`` at ``hour:minute`` in ``timezone``, for ``duration_s``."""

    name: str
    weekdays: tuple[int, ...]
    """0 is Monday, 6 Sunday."""
    hour: int
    minute: int
    duration_s: float
    timezone: str = "UTC"


@dataclass(frozen=True)
class Absolute:
    """Open from ``starts_at`` until ``ends_at`` (Unix times); told in ``timezone``."""

    name: str
    starts_at: float
    ends_at: float
    timezone: str = "UTC"


Window = Recurring | Absolute


def _zone(window: Window) -> ZoneInfo:
    return zone_of(window.timezone) or ZoneInfo("UTC")


def _starts(window: Recurring, first: dt.date, days: int) -> list[float]:
    """The window's starts on the local dates ``first`` .. ``first + days``, in order."""
    zone = _zone(window)
    out = []
    for offset in range(days + 1):
        day = first + dt.timedelta(days=offset)
        if day.weekday() in window.weekdays:
            local = dt.datetime(day.year, day.month, day.day, window.hour, window.minute)
            out.append(local.replace(tzinfo=zone).timestamp())
    return out


def _local_date(now: float, zone: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(now, zone).date()


def _open_span(window: Window, now: float) -> tuple[float, float] | None:
    """(start, end) of the occurrence open at ``now``, else None."""
    if isinstance(window, Absolute):
        return (
            (window.starts_at, window.ends_at) if window.starts_at <= now < window.ends_at else None
        )
    back = int(window.duration_s // 86400) + 2
    first = _local_date(now, _zone(window)) - dt.timedelta(days=back)
    latest = [s for s in _starts(window, first, back + 1) if s <= now]
    # Every occurrence lasts as long: the latest start before now ends last.
    if latest and now < latest[-1] + window.duration_s:
        return latest[-1], latest[-1] + window.duration_s
    return None


def is_open(window: Window, now: float) -> bool:
    """Whether ``window`` is open at ``now``."""
    return _open_span(window, now) is not None


def next_start(window: Window, now: float) -> float | None:
    """When ``window`` next opens after ``now`` (None: never again)."""
    if isinstance(window, Absolute):
        return window.starts_at if window.starts_at > now else None
    first = _local_date(now, _zone(window))
    return next((s for s in _starts(window, first, _LOOKAHEAD_DAYS) if s > now), None)


def current_end(window: Window, now: float) -> float | None:
    """When ``window``, open at ``now``, closes (occurrences that overlap count as one);
    None when it is not open."""
    span = _open_span(window, now)
    if span is None:
        return None
    end = span[1]
    for _ in range(_MERGE_LIMIT):
        following = _open_span(window, end)
        if following is None or following[1] <= end:
            break
        end = following[1]
    return end


def local_text(at: float, timezone: str, now: float) -> str:
    """``at`` for people in ``timezone``: ``Tue 02:00 Europe/Berlin``, with the date
    when it is six days or more away (``2026-12-01 02:00 Europe/Berlin``)."""
    local = dt.datetime.fromtimestamp(at, zone_of(timezone) or ZoneInfo("UTC"))
    pattern = "%a %H:%M" if abs(at - now) < 6 * 86400 else "%Y-%m-%d %H:%M"
    return f"{local.strftime(pattern)} {timezone}"


def freeze_in_force(freezes: list[Window], now: float) -> tuple[Window, float] | None:
    """The freeze in force at ``now`` and when the freezes end (one that opens as
    another closes continues it); None when no freeze holds."""
    current = [w for w in freezes if is_open(w, now)]
    if not current:
        return None
    until = now
    for _ in range(_MERGE_LIMIT):
        ends = [e for w in freezes if (e := current_end(w, until)) is not None]
        if not ends or max(ends) <= until:
            break
        until = max(ends)
    first = max(current, key=lambda w: current_end(w, now) or now)
    return first, until


def maintenance_open(windows: list[Window], now: float) -> tuple[Window, float] | None:
    """The maintenance window open at ``now`` and when it closes, else None."""
    spans = [(w, e) for w in windows if (e := current_end(w, now)) is not None]
    return max(spans, key=lambda pair: pair[1]) if spans else None


@dataclass(frozen=True)
class Hold:
    """Why a change to a pool must wait now, and until when."""

    kind: str
    """``freeze`` or ``maintenance`` (outside every maintenance window)."""
    window: Window | None
    """The freeze in force, or the maintenance window that opens next (None: none will)."""
    until: float | None
    """When the freeze ends or the next maintenance window opens (None: never)."""
    text: str
    """In words, for people: ``frozen by black-friday until Mon 00:00 Europe/Berlin``."""


def hold(maintenance: list[Window], freezes: list[Window], now: float) -> Hold | None:
    """Whether a change (a rollout step, a pin) must wait at ``now``: a freeze holds
    it; so does being outside every maintenance window when there are any."""
    frozen = freeze_in_force(freezes, now)
    if frozen is not None:
        window, until = frozen
        text = f"frozen by {window.name} until {local_text(until, window.timezone, now)}"
        return Hold("freeze", window, until, text)
    if not maintenance or maintenance_open(maintenance, now) is not None:
        return None
    upcoming = [(s, w) for w in maintenance if (s := next_start(w, now)) is not None]
    if not upcoming:
        return Hold("maintenance", None, None, "outside its maintenance windows, none ahead")
    at, window = min(upcoming, key=lambda pair: pair[0])
    text = (
        f"outside its maintenance windows until {local_text(at, window.timezone, now)} "
        f"({window.name})"
    )
    return Hold("maintenance", window, at, text)
