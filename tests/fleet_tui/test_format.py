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
