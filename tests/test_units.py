"""fleet/units.py: durations, start times and names, one rule for every side."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fleet.units import check_name, format_duration, parse_duration, parse_start


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 604800),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1.5h", 5400),
        (" 2W ", 1209600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bare_number_says_to_add_a_unit() -> None:
    with pytest.raises(ValueError, match=r"no unit: write 30s, 30m"):
        parse_duration("30")


@pytest.mark.parametrize("text", ["", "m", "30x", "30m junk", "-5m", "1h 30m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(5400, "1h30m"), (86400, "1d"), (0.25, "250ms")])
def test_format_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("name", ["db-east", "alice@corp", "a", "x" * 64, "build_07.eu"])
def test_good_names(name: str) -> None:
    assert check_name("pool", name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "a b", "a\r\nb", 'a"b', "../etc", "a;b", "-lead", "a\x00b", "a/b"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"pool name .* is not allowed"):
        check_name("pool", name)


def test_format_ago_says_past_future_and_never() -> None:
    from fleet.units import format_ago

    assert format_ago(None, 100.0) == "-"
    assert format_ago(99.6, 100.0) == "just now"
    assert format_ago(0.0, 200.0) == "3m20s ago"
    assert format_ago(0.0, 90061.0) == "1d1h ago"  # two units at most
    assert format_ago(1000.0, 0.0) == "in 16m40s"


def test_label_values_are_printable_and_bounded():
    from fleet.units import LABEL_VALUE_MAX, check_label_value

    for value in ["", "prod", "eu west 1", "Données & co", "x" * LABEL_VALUE_MAX]:
        assert check_label_value("env", value) == value
    bad = ["a\r\nb", "a\x00", "\x1b[31m", "a\u2028b", "\u202eevil", "x" * (LABEL_VALUE_MAX + 1)]
    for value in bad:
        with pytest.raises(ValueError, match="none of them a control character"):
            check_label_value("env", value)


NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch):
    """The local zone is Europe/Berlin (UTC+2 in May) for the test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("text", "after_now"),
    [
        ("now", 0),
        ("+30m", 1800),
        ("+1h30m", 5400),
        ("2026-05-01T14:00Z", 7200),
        ("2026-05-01 14:00+00:00", 7200),
        ("2026-05-01T18:00+02:00", 4 * 3600),
        ("2026-05-01T16:00", 2 * 3600),  # local: Berlin, UTC+2
        ("2026-05-02", 10 * 3600),  # local midnight
        ("2026-05-01T11:59:30Z", -30),  # within the slack: a slow typist
    ],
)
def test_starts(berlin, text: str, after_now: float) -> None:
    assert parse_start(text, NOW) - NOW == pytest.approx(after_now)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("14:00", r"'14:00' has no date: write 2026-05-01T14:00 \(local time\), or a delay"),
        ("9:30", r"write 2026-05-01T09:30"),
        ("30m", r"'30m' is a duration: write \+30m to start in 30m"),
        ("+30", r"not a delay: write \+ and a duration, e.g. \+30m"),
        ("soon", r"not a start time: write now, \+30m, 2026-05-01T14:00 \(local time\)"),
        ("2026-05-01T10:00Z", r"in the past \(2026-05-01 10:00Z, 2h ago\): give a later time"),
    ],
)
def test_bad_starts_say_what_to_write(berlin, text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_start(text, NOW)


@pytest.mark.parametrize("version", ["0.2.0", "0.3.0rc1", "1.0.0+build.7", "2", "v1_2-3", "9" * 64])
def test_good_versions(version: str) -> None:
    from fleet.units import check_version

    assert check_version(version) == version


@pytest.mark.parametrize(
    "version", ["", "9" * 65, ".1", "-1", "0.2 beta", "0.2/../x", "0.2\n", "1;2", "1@2", "é"]
)
def test_bad_versions_say_the_rule(version: str) -> None:
    from fleet.units import check_version

    with pytest.raises(ValueError, match=r"version .* is not allowed: use 1 to 64 letters"):
        check_version(version)


def test_a_version_the_cli_accepts_is_one_the_channel_accepts() -> None:
    import msgspec

    from fleet.protocol import VersionText
    from fleet.units import check_version

    for version in ["0.2.0", "1.0.0+build.7", "0.2 beta", "9" * 65, "-1"]:
        try:
            check_version(version)
            ok = True
        except ValueError:
            ok = False
        try:
            msgspec.convert(version, VersionText)
            wire = True
        except msgspec.ValidationError:
            wire = False
        assert ok == wire, version


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (64 << 20, "64.0 MiB"),
        (5 << 30, "5.0 GiB"),
        (3 << 40, "3072.0 GiB"),
    ],
)
def test_sizes_in_binary_units(size: int, text: str) -> None:
    from fleet.units import format_size

    assert format_size(size) == text
