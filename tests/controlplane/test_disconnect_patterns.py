"""The patterns read from an agent's disconnect history (controlplane/disconnects.py)."""

from __future__ import annotations

import calendar

from controlplane.disconnects import read_patterns
from fleet.protocol import Disconnect

DAY = 86400.0
BASE = float(calendar.timegm((2026, 11, 20, 3, 0, 0)))
"""2026-11-20 03:00:00 UTC."""


def closed(at: float, age: float | None = None, **fields: object) -> Disconnect:
    kw: dict[str, object] = {"cause": "reset", "detail": "closed", "ended_at": at}
    if age is not None:
        kw |= {"connected_at": at - age, "age_s": age}
    return Disconnect(**(kw | fields))  # type: ignore[arg-type]


def kinds(records: list[Disconnect]) -> list[str]:
    return [h.kind for h in read_patterns(records)]


def test_three_closes_after_the_same_age_name_the_seconds_and_the_fix():
    records = [closed(BASE + i * 1000, age) for i, age in enumerate([349.0, 352.0, 361.0, 12.0])]
    [hint] = read_patterns(records)
    assert hint.kind == "same_age"
    assert hint.count == 3
    assert "closed after ~352 s each time (3 of the last 4 channels)" in hint.message
    assert "idle timeout above the agent's ping interval (20 s)" in hint.message
    assert "channel_keepalive_s below 352 s" in hint.message


def test_ages_more_than_ten_percent_apart_are_no_pattern():
    records = [closed(BASE + i * 1000, age) for i, age in enumerate([300.0, 350.0, 400.0])]
    assert kinds(records) == []


def test_two_are_not_enough_and_short_or_stopped_channels_do_not_count():
    assert kinds([closed(BASE, 350.0), closed(BASE + 999, 351.0)]) == []
    short = [closed(BASE + i * 100, 2.0) for i in range(5)]
    assert kinds(short) == []
    stopped = [closed(BASE + i * 1000, 350.0, cause="stopped") for i in range(3)]
    assert "same_age" not in kinds(stopped)


def test_closes_at_the_same_time_on_three_days_point_at_a_patch_window():
    records = [closed(BASE + d * DAY + d * 60) for d in range(3)]  # 03:00, 03:01, 03:02
    [hint] = read_patterns(records)
    assert hint.kind == "same_time"
    assert hint.count == 3
    assert "at about 03:01 UTC on 3 days (last 2026-11-22)" in hint.message
    assert "maintenance window" in hint.message


def test_the_same_time_on_one_day_is_a_flap_not_a_window():
    records = [closed(BASE + i * 20) for i in range(6)]
    assert kinds(records) == []


def test_the_time_of_day_wraps_around_midnight():
    midnight = float(calendar.timegm((2026, 11, 20, 0, 0, 0)))
    records = [closed(midnight - 60), closed(midnight + DAY + 60), closed(midnight + 2 * DAY)]
    assert kinds(records) == ["same_time"]


def test_a_changed_tls_issuer_says_ssl_inspection_with_both_issuers():
    records = [
        closed(BASE, 100.0, tls_issuer="CN=fleet CA"),
        closed(BASE + 200, 100.0, tls_issuer="CN=fleet CA"),
        closed(BASE + 400, cause="tls", tls_issuer="CN=Corp Inspect CA"),
        closed(BASE + 600, cause="tls", tls_issuer="CN=Corp Inspect CA"),
    ]
    [hint] = [h for h in read_patterns(records) if h.kind == "tls_issuer"]
    assert hint.count == 2
    assert "from 'CN=fleet CA' to 'CN=Corp Inspect CA'" in hint.message
    assert "SSL-inspecting proxy" in hint.message
    assert "2026-11-20 03:06 UTC" in hint.message


def test_one_issuer_throughout_is_no_pattern():
    records = [closed(BASE + i, tls_issuer="CN=fleet CA") for i in range(5)]
    assert kinds(records) == []


def test_host_sleep_is_reported_with_how_long():
    records = [closed(BASE, 600.0, cause="sleep", slept_s=7200.0)]
    [hint] = read_patterns(records)
    assert hint.kind == "sleep"
    assert "slept once (last for 2.0 h" in hint.message


def test_hints_are_ordered_by_evidence_and_records_in_any_order():
    ages = [closed(BASE + i * 5000, 350.0) for i in range(4)]
    sleep = [closed(BASE + 99, cause="sleep", slept_s=50.0)]
    assert kinds(list(reversed(ages + sleep))) == ["same_age", "sleep"]
