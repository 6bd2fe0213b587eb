"""Maintenance and freeze windows as pure functions of a given time: weekdays, zones,
DST edges, windows over midnight, absolute freezes, and what a pool's hold says."""

from __future__ import annotations

import datetime as dt

from controlplane.windows import (
    Absolute,
    Recurring,
    current_end,
    freeze_in_force,
    hold,
    is_open,
    local_text,
    maintenance_open,
    next_start,
)

UTC = dt.UTC


def at(text: str) -> float:
    """An ISO time with its offset (``2026-01-05T02:00+00:00``) as Unix time."""
    return dt.datetime.fromisoformat(text).timestamp()


def utc(value: float) -> str:
    return dt.datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M")


MON_WED = Recurring("nightly", (0, 2), 2, 0, 2 * 3600, "UTC")


def test_weekdays_open_and_close_on_their_days_only() -> None:
    monday = "2026-01-05"
    assert not is_open(MON_WED, at(f"{monday}T01:59:59+00:00"))
    assert utc(next_start(MON_WED, at(f"{monday}T01:59:59+00:00"))) == "2026-01-05 02:00"
    assert is_open(MON_WED, at(f"{monday}T02:00:00+00:00"))  # the start is inside
    assert utc(current_end(MON_WED, at(f"{monday}T03:00:00+00:00"))) == "2026-01-05 04:00"
    assert not is_open(MON_WED, at(f"{monday}T04:00:00+00:00"))  # the end is not
    # Tuesday is not one of its days: closed all day, next on Wednesday.
    tuesday_3am = at("2026-01-06T03:00:00+00:00")
    assert not is_open(MON_WED, tuesday_3am)
    assert current_end(MON_WED, tuesday_3am) is None
    assert utc(next_start(MON_WED, tuesday_3am)) == "2026-01-07 02:00"
    # From Wednesday after it closed, the next is next Monday.
    assert utc(next_start(MON_WED, at("2026-01-07T05:00:00+00:00"))) == "2026-01-12 02:00"


def test_a_window_is_read_in_its_own_time_zone_summer_and_winter() -> None:
    berlin = Recurring("nightly", tuple(range(7)), 2, 0, 3600, "Europe/Berlin")
    # 02:00 in Berlin is 01:00 UTC in winter (CET) and 00:00 UTC in summer (CEST).
    assert utc(next_start(berlin, at("2026-01-05T00:00:00+00:00"))) == "2026-01-05 01:00"
    assert utc(next_start(berlin, at("2026-07-06T00:00:00+00:00"))) == "2026-07-07 00:00"
    assert is_open(berlin, at("2026-07-06T00:30:00+00:00"))
    # The same instant, another zone: New York's 02:00 is 07:00 UTC in winter.
    new_york = Recurring("nightly", tuple(range(7)), 2, 0, 3600, "America/New_York")
    assert not is_open(new_york, at("2026-01-05T01:30:00+00:00"))
    assert utc(next_start(new_york, at("2026-01-05T01:30:00+00:00"))) == "2026-01-05 07:00"


def test_spring_forward_a_start_in_the_skipped_hour_opens_past_the_gap() -> None:
    # Berlin, Sunday 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST.
    window = Recurring("sunday", (6,), 2, 30, 3600, "Europe/Berlin")
    start = next_start(window, at("2026-03-28T12:00:00+00:00"))
    # 02:30 does not exist that night: it opens at 03:30 CEST (01:30 UTC), once.
    assert utc(start) == "2026-03-29 01:30"
    assert local_text(start, "Europe/Berlin", start) == "Sun 03:30 Europe/Berlin"
    assert utc(current_end(window, start)) == "2026-03-29 02:30"
    assert utc(next_start(window, start)) == "2026-04-05 00:30"  # summer time since


def test_fall_back_a_start_in_the_repeated_hour_opens_once_and_lasts_real_time() -> None:
    # Berlin, Sunday 2026-10-25: clocks go back from 03:00 CEST to 02:00 CET.
    window = Recurring("sunday", (6,), 2, 30, 3600, "Europe/Berlin")
    start = next_start(window, at("2026-10-24T12:00:00+00:00"))
    assert utc(start) == "2026-10-25 00:30"  # the first 02:30 (CEST)
    assert utc(current_end(window, start)) == "2026-10-25 01:30"
    # The second 02:30 (CET, 01:30 UTC) is not another opening.
    assert not is_open(window, at("2026-10-25T01:45:00+00:00"))
    assert utc(next_start(window, start)) == "2026-11-01 01:30"
    # A 4 h window from midnight lasts 4 h of real time: 03:00 by the clock, not 04:00.
    long = Recurring("long", (6,), 0, 0, 4 * 3600, "Europe/Berlin")
    opened = next_start(long, at("2026-10-24T12:00:00+00:00"))
    end = current_end(long, opened)
    assert end - opened == 4 * 3600
    assert local_text(end, "Europe/Berlin", opened) == "Sun 03:00 Europe/Berlin"


def test_a_window_over_midnight_belongs_to_the_day_it_starts() -> None:
    friday_night = Recurring("late", (4,), 23, 0, 3 * 3600, "UTC")
    saturday_1am = at("2026-01-10T01:00:00+00:00")
    assert is_open(friday_night, saturday_1am)
    assert utc(current_end(friday_night, saturday_1am)) == "2026-01-10 02:00"
    # Saturday itself is not a day of the window: nothing opens on Saturday night.
    assert utc(next_start(friday_night, saturday_1am)) == "2026-01-16 23:00"


def test_overlapping_occurrences_count_as_one_span() -> None:
    # Monday and Tuesday at 00:00 for 30 h: open from Monday 00:00 to Wednesday 06:00.
    window = Recurring("long", (0, 1), 0, 0, 30 * 3600, "UTC")
    assert utc(current_end(window, at("2026-01-05T12:00:00+00:00"))) == "2026-01-07 06:00"
    always = Recurring("always", tuple(range(7)), 0, 0, 2 * 86400, "UTC")
    end = current_end(always, at("2026-01-05T12:00:00+00:00"))
    assert end is not None and end > at("2026-02-01T00:00:00+00:00")


def test_an_absolute_freeze_opens_once() -> None:
    freeze = Absolute(
        "black-friday",
        at("2026-11-27T00:00:00+01:00"),
        at("2026-11-30T00:00:00+01:00"),
        "Europe/Berlin",
    )
    before = at("2026-11-26T12:00:00+00:00")
    assert not is_open(freeze, before)
    assert next_start(freeze, before) == freeze.starts_at
    inside = at("2026-11-28T12:00:00+00:00")
    assert is_open(freeze, inside) and current_end(freeze, inside) == freeze.ends_at
    assert not is_open(freeze, freeze.ends_at)
    assert next_start(freeze, freeze.ends_at) is None  # never again


def test_freezes_that_follow_each_other_hold_until_the_last_ends() -> None:
    first = Absolute(
        "release-week", at("2026-12-01T00:00:00+00:00"), at("2026-12-03T00:00:00+00:00")
    )
    # A daily freeze from 00:00 for 24 h on Thursday continues it.
    thursday = Recurring("thursday", (3,), 0, 0, 86400, "UTC")
    found = freeze_in_force([first, thursday], at("2026-12-02T12:00:00+00:00"))
    assert found is not None
    window, until = found
    assert window.name == "release-week" and utc(until) == "2026-12-04 00:00"
    assert freeze_in_force([first, thursday], at("2026-12-04T00:00:00+00:00")) is None


def test_a_hold_says_which_window_and_until_when_in_its_zone() -> None:
    nightly = Recurring("nightly", (1,), 2, 0, 2 * 3600, "Europe/Berlin")
    monday_noon = at("2026-12-07T12:00:00+01:00")
    waiting = hold([nightly], [], monday_noon)
    assert waiting is not None and waiting.kind == "maintenance"
    assert waiting.text == (
        "outside its maintenance windows until Tue 02:00 Europe/Berlin (nightly)"
    )
    assert waiting.until == at("2026-12-08T02:00:00+01:00")
    # Inside the window nothing holds; with no maintenance window at all neither.
    assert hold([nightly], [], at("2026-12-08T03:00:00+01:00")) is None
    assert hold([], [], monday_noon) is None
    assert maintenance_open([nightly], at("2026-12-08T03:00:00+01:00")) == (
        nightly,
        at("2026-12-08T04:00:00+01:00"),
    )
    # A freeze holds whatever the maintenance windows say, and names itself.
    freeze = Absolute(
        "black-friday",
        at("2026-12-07T00:00:00+01:00"),
        at("2026-12-08T02:30:00+01:00"),
        "Europe/Berlin",
    )
    frozen = hold([nightly], [freeze], at("2026-12-08T02:00:00+01:00"))
    assert frozen is not None and frozen.kind == "freeze" and frozen.window == freeze
    assert frozen.text == "frozen by black-friday until Tue 02:30 Europe/Berlin"


def test_far_times_carry_their_date() -> None:
    now = at("2026-01-05T00:00:00+00:00")
    assert local_text(at("2026-01-06T02:00:00+00:00"), "UTC", now) == "Tue 02:00 UTC"
    assert local_text(at("2026-02-01T02:00:00+00:00"), "UTC", now) == "2026-02-01 02:00 UTC"
