"""Value formatting: readable without colour."""

from __future__ import annotations

from fleet.protocol import Presence
from fleet_tui import format as fmt


def test_state_labels_carry_a_symbol_and_a_word():
    labels = {fmt.state_label(s) for s in Presence}
    assert len(labels) == len(Presence)
    assert fmt.state_label(Presence.DEGRADED) == "▲ degraded"


def test_age():
    assert fmt.age(None, 100) == "never"
    assert fmt.age(97, 100) == "3s ago"
    assert fmt.age(97, 100, fresh_s=7.5) == "<8s"
    assert fmt.age(40, 100, fresh_s=7.5) == "1m ago"
    assert fmt.age(100 - 7200, 100) == "2h ago"


def test_skew_and_cert():
    assert fmt.skew(12.4) == "+12ms"
    assert fmt.skew(-2350) == "-2.4s"
    assert fmt.skew(-0.2) == "0ms"
    assert fmt.cert_expiry(100 + 6 * 86400 + 5, 100) == "in 6 days"
    assert fmt.cert_expiry(50, 100) == "expired"
    assert fmt.cert_expiry(100 + 3 * 3600 - 60, 100) == "in 3h"  # as the alert says 3.0 h
    assert fmt.cert_expiry(100 + 3599, 100) == "in 1h"
    assert fmt.cert_expiry(100 + 10, 100) == "in 1m"
    assert fmt.cert_expiry(100 + 86000, 100) == "in 1 day"
    assert fmt.cert_warning(100 + 3600, 100)  # renewal overdue
    assert not fmt.cert_warning(100 + 20 * 3600, 100)  # a fresh 24 h certificate


def test_sparkline_width_and_scale():
    line = fmt.sparkline([0, 50, 100], 5, top=100)
    assert len(line) == 5
    assert line.endswith("█") and line[2] == " "


def _agent(**fields):
    from fleet.protocol import AgentState, convert

    base = {"id": "ag-1", "name": "etl-07", "pool": "etl", "heartbeat_interval_s": 5.0}
    return convert(base | fields, AgentState)


def test_an_offline_agent_shows_its_real_heartbeat_age_not_fresh():
    up = _agent(state=Presence.CONNECTED, last_heartbeat_at=97.0)
    assert fmt.heartbeat_age(up, 100.0) == "<8s"
    gone = _agent(state=Presence.OFFLINE, last_heartbeat_at=97.0)
    assert fmt.heartbeat_age(gone, 100.0) == "3s ago"
    assert fmt.heartbeat_age(_agent(state=Presence.STALE, last_heartbeat_at=97.0), 100.0) == (
        "3s ago"
    )


def test_an_agent_said_connected_with_an_old_heartbeat_is_shown_stale():
    old = _agent(state=Presence.CONNECTED, last_heartbeat_at=40.0)
    assert fmt.shown_state(old, 100.0) is Presence.STALE
    assert fmt.heartbeat_age(old, 100.0) == "1m ago"
    assert fmt.shown_state(_agent(state=Presence.CONNECTED, last_heartbeat_at=90.0), 100.0) is (
        Presence.CONNECTED
    )
    # The server's other words stand as they are.
    assert fmt.shown_state(_agent(state=Presence.OFFLINE, last_heartbeat_at=40.0), 100.0) is (
        Presence.OFFLINE
    )


def test_bar_chart_of_percentages_is_on_a_fixed_scale():
    low = fmt.bar_chart([5.0, 5.0, 5.0], 3, 4, top=100.0)
    assert low == ["   ", "   ", "   ", "▂▂▂"]  # 5 % of 32 eighths: a stub, not full bars
    full = fmt.bar_chart([100.0, 50.0, 0.0], 3, 2, top=100.0)
    assert full == ["█  ", "██ "]
    # Counts scale to their own largest value; the series is right-aligned.
    assert fmt.bar_chart([2, 4], 4, 1, top=None) == ["  ▄█"]
