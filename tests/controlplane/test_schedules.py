"""Next-run computation: cron read in the schedule's own zone, across DST changes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

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


async def test_the_fleet_raises_at_risk_within_the_lead_and_clears_when_the_run_passed(tmp_path):
    from controlplane.config import Settings
    from controlplane.fleet import Fleet
    from controlplane.store.base import ConnectionRecord
    from controlplane.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "fleet.db")
    await store.open()
    try:
        fleet = Fleet(Settings(restart_grace_s=0, schedule_lead_s=900), store)
        daily = [ScheduleRecord("0 14 * * *", BERLIN)]
        await fleet.add_connection(ConnectionRecord("pg", "127.0.0.1", 5432, ["db"], 0.0, daily))
        key = ("connection_at_risk", "connection:pg")
        # The next 14:00 in Berlin from now; the checks below move the clock up to it.
        run = fleet.connection_state["pg"].next_run_at
        assert run is not None and datetime.fromtimestamp(run, ZoneInfo(BERLIN)).hour == 14

        fleet.check_schedules(now=run - 3600)  # an hour ahead: not yet
        assert key not in fleet.alerts.open
        assert fleet.connection_state["pg"].next_run_at == run

        fleet.check_schedules(now=run - 600)  # within the 15 min lead, no agent in "db"
        assert fleet.alerts.open[key].message == (
            "connection at risk: next run 14:00 Europe/Berlin has no healthy agent in pool db"
        )
        assert fleet.connection_state["pg"].at_risk

        fleet.check_schedules(now=run + 1)  # the run passed; the next is a day away
        assert key not in fleet.alerts.open
        info = fleet.connection_state["pg"]
        assert not info.at_risk and info.next_run_at is not None and info.next_run_at > run
        await fleet.store_alerts()
        stored = [a for a in await store.list_alerts(include_cleared=True) if a.kind == key[0]]
        assert len(stored) == 1 and stored[0].cleared_at is not None
    finally:
        await store.close()
