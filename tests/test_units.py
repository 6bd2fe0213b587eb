"""fleet/units.py: durations and names, one rule for every side."""

from __future__ import annotations

import pytest

from fleet.units import check_name, format_duration, parse_duration


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
