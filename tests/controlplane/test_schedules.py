"""Next-run computation: cron read in the schedule's own zone, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.schedules import (
    ScheduleWatch,
    at_risk_message,
    describe,
    next_run,
    schedule_error,
)
from controlplane.store.base import ScheduleRecord

BERLIN = "Europe/Berlin"


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_14h_berlin_is_13h_utc_in_winter_and_12h_utc_after_the_spring_change():
    daily = [ScheduleRecord("0 14 * * *", BERLIN)]
    # Saturday 28 March 2026, before the change (CET, +1).
    run = next_run(daily, utc(2026, 3, 28, 10, 0))
    assert run is not None and run.at == utc(2026, 3, 28, 13, 0)
    # Sunday 29 March 2026: clocks went forward at 02:00 (CEST, +2).
    run = next_run(daily, run.at)
    assert run is not None and run.at == utc(2026, 3, 29, 12, 0)
    assert describe(run, run.at - 3600) == "14:00 Europe/Berlin"


def test_back_to_13h_utc_after_the_autumn_change():
    daily = [ScheduleRecord("0 14 * * *", BERLIN)]
    run = next_run(daily, utc(2026, 10, 24, 13, 0))
    assert run is not None and run.at == utc(2026, 10, 25, 13, 0)  # CET again


def test_a_run_in_the_skipped_hour_comes_right_after_the_gap():
    # 02:30 does not exist on 29 March 2026 in Berlin: like cron, it runs at 03:00 CEST.
    run = next_run([ScheduleRecord("30 2 * * *", BERLIN)], utc(2026, 3, 28, 23, 0))
    assert run is not None and run.at == utc(2026, 3, 29, 1, 0)
    assert run.local.strftime("%H:%M %Z") == "03:00 CEST"


def test_the_soonest_of_several_schedules_wins_and_names_its_job():
    schedules = [
        ScheduleRecord("0 14 * * *", BERLIN, "afternoon"),
        ScheduleRecord("0 9 * * *", "America/New_York", "morning-ny"),
    ]
    # 12:00 UTC in winter: New York's 09:00 is 14:00 UTC, Berlin's 14:00 is 13:00 UTC.
    now = utc(2026, 1, 15, 12, 0)
    run = next_run(schedules, now)
    assert run is not None and run.schedule.name == "afternoon"
    assert describe(run, now) == "14:00 Europe/Berlin (afternoon)"
    message = at_risk_message(run, ["db-east", "db-west"], now)
    assert message == (
        "connection at risk: next run 14:00 Europe/Berlin (afternoon) has no healthy agent "
        "in pools db-east, db-west"
    )
    assert at_risk_message(run, ["legacy"], now).endswith("in pool legacy")


def test_a_run_more_than_a_day_ahead_carries_its_date():
    now = utc(2026, 1, 15, 12, 0)  # a Thursday
    run = next_run([ScheduleRecord("0 6 * * 1", "UTC")], now)
    assert run is not None and describe(run, now) == "2026-01-19 06:00 UTC"


def test_the_watch_recomputes_only_when_the_run_has_passed_or_the_schedules_change():
    watch = ScheduleWatch()
    hourly = [ScheduleRecord("0 * * * *", "UTC")]
    first, passed = watch.next("c", hourly, utc(2026, 1, 15, 12, 10))
    assert first is not None and not passed and first.at == utc(2026, 1, 15, 13, 0)
    same, passed = watch.next("c", hourly, utc(2026, 1, 15, 12, 50))
    assert same is first and not passed
    after, passed = watch.next("c", hourly, utc(2026, 1, 15, 13, 0))
    assert passed and after is not None and after.at == utc(2026, 1, 15, 14, 0)
    other, passed = watch.next("c", [ScheduleRecord("30 * * * *", "UTC")], utc(2026, 1, 15, 13, 5))
    assert not passed and other is not None and other.at == utc(2026, 1, 15, 13, 30)
    assert watch.next("c", [], 0.0) == (None, False)


@pytest.mark.parametrize(
    ("cron", "zone", "words"),
    [
        ("0 14 * * *", BERLIN, None),
        ("@daily", "UTC", None),
        ("*/15 * * * 1-5", "America/New_York", None),
        ("0 14 * *", "UTC", "has 4 fields"),
        ("0 14 * * * 0", "UTC", "has 6 fields"),
        ("0 25 * * *", "UTC", "not a valid expression"),
        ("@sometimes", "UTC", "not a valid expression"),
        ("0 14 * * *", "Europe/Atlantis", "time zone 'Europe/Atlantis' is unknown"),
        ("0 14 * * *", "../../etc/passwd", "is unknown"),
        ("0 14 * * *", "", "is unknown"),
    ],
)
def test_schedule_errors_say_what_is_wrong(cron: str, zone: str, words: str | None):
    problem = schedule_error(cron, zone)
    if words is None:
        assert problem is None
    else:
        assert problem is not None and words in problem, problem
