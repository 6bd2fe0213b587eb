"""Job schedules on connections: validate them, and find the next run.

A schedule is a cron expression read in an IANA time zone, as the job's own
scheduler (cron, Airflow, a CI) reads it, so ``0 14 * * *`` in ``Europe/Berlin``
is 13:00 UTC in winter and 12:00 UTC in summer.  croniter does the arithmetic
over time-zone-aware datetimes (docs/decisions.md says why croniter): a run in
the hour that a spring-forward skips falls at the first minute after the gap,
and a run in the hour that an autumn fall-back repeats comes once per offset.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from .alerts import pools_text
from .store.base import ScheduleRecord

__all__ = [
    "NextRun",
    "ScheduleWatch",
    "at_risk_message",
    "describe",
    "next_run",
    "schedule_error",
    "zone_error",
    "zone_of",
]

FIELDS = 5
"""Minute, hour, day of month, month, day of week: what crontab(5) reads.  A sixth
field (seconds, croniter's extension) is refused: jobs are not scheduled by the
second, and a six-field line is more likely a mistake."""


def zone_of(name: str) -> ZoneInfo | None:
    """The IANA time zone ``name``, or None when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def schedule_error(cron: str, timezone: str) -> str | None:
    """Why this schedule cannot be used, with the fix; ``None`` when it can."""
    fields = cron.split()
    macro = len(fields) == 1 and cron.strip().startswith("@")
    if not macro and len(fields) != FIELDS:
        return (
            f"cron {cron!r} has {len(fields)} fields; give the five of crontab "
            "(minute hour day-of-month month day-of-week), e.g. '0 14 * * *', or a macro "
            "such as '@daily'"
        )
    if not croniter.is_valid(cron):
        return (
            f"cron {cron!r} is not a valid expression; e.g. '0 14 * * *' is 14:00 every day, "
            "'*/15 * * * 1-5' every quarter hour on weekdays"
        )
    return zone_error(timezone)


def zone_error(timezone: str) -> str | None:
    """Why ``timezone`` is not a time zone, with the fix; ``None`` when it is one."""
    if zone_of(timezone) is None:
        return (
            f"time zone {timezone!r} is unknown; give an IANA name such as 'Europe/Berlin' "
            "or 'UTC' (see /usr/share/zoneinfo)"
        )
    return None


def _next(schedule: ScheduleRecord, after: float) -> datetime | None:
    zone = zone_of(schedule.timezone)
    if zone is None:
        return None
    try:
        found: datetime = croniter(schedule.cron, datetime.fromtimestamp(after, zone)).get_next(
            datetime
        )
    except (CroniterError, ValueError):
        return None
    return found


class NextRun:
    """The soonest run among a connection's schedules."""

    __slots__ = ("at", "local", "schedule")

    def __init__(self, at: float, local: datetime, schedule: ScheduleRecord) -> None:
        self.at = at
        """Unix time."""
        self.local = local
        """The same instant in the schedule's time zone."""
        self.schedule = schedule


def next_run(schedules: list[ScheduleRecord], now: float | None = None) -> NextRun | None:
    """The first run strictly after ``now`` of any of ``schedules``."""
    after = time.time() if now is None else now
    best: NextRun | None = None
    for schedule in schedules:
        local = _next(schedule, after)
        if local is None:
            continue
        at = local.timestamp()
        if best is None or at < best.at:
            best = NextRun(at, local, schedule)
    return best


def describe(run: NextRun, now: float | None = None) -> str:
    """The run for people, in its own zone: ``14:00 Europe/Berlin``.

    A run more than a day ahead carries its date (``2026-03-29 14:00 Europe/Berlin``),
    so that a weekly job's next run is not read as today's.  The job's name, when it
    has one, follows (``14:00 Europe/Berlin (nightly-etl)``).
    """
    current = time.time() if now is None else now
    pattern = "%H:%M" if run.at - current < 86400 else "%Y-%m-%d %H:%M"
    text = f"{run.local.strftime(pattern)} {run.schedule.timezone}"
    return f"{text} ({run.schedule.name})" if run.schedule.name else text


def at_risk_message(run: NextRun, pools: list[str], now: float | None = None) -> str:
    """The alert's text: which run, and which pools have no healthy agent."""
    return (
        f"connection at risk: next run {describe(run, now)} has no healthy agent in "
        f"{pools_text(pools)}"
    )


class ScheduleWatch:
    """Each connection's next run, computed again only when it has passed or the
    schedules changed: the presence tick asks every second, croniter is not free."""

    def __init__(self) -> None:
        self._runs: dict[str, tuple[list[ScheduleRecord], NextRun | None]] = {}

    def next(
        self, name: str, schedules: list[ScheduleRecord], now: float
    ) -> tuple[NextRun | None, bool]:
        """(the next run of ``name``, whether the run known before has passed since)."""
        known = self._runs.get(name)
        if known is not None and known[0] == schedules:
            run = known[1]
            if run is None or run.at > now:
                return run, False
            passed = True
        else:
            passed = False
        run = next_run(schedules, now)
        self._runs[name] = (list(schedules), run)
        return run, passed

    def forget(self, name: str) -> None:
        self._runs.pop(name, None)
