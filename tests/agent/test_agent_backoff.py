"""Reconnect with full jitter: window 1 s doubling to a 60 s cap."""

from __future__ import annotations

import statistics

from agent.backoff import FullJitter
from agent.link import IllegalTransition, Link, LinkState


def test_window_doubles_to_the_cap_and_resets():
    backoff = FullJitter(rng=lambda: 0.999999)
    delays = [backoff.next_delay() for _ in range(9)]
    assert [round(d) for d in delays] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    backoff.reset()
    assert backoff.window() == 1.0


def test_delays_spread_over_the_whole_window():
    delays = []
    for _ in range(2000):
        backoff = FullJitter()
        for _ in range(6):
            backoff.next_delay()
        delays.append(backoff.next_delay())  # the 60 s window
    assert min(delays) < 3 and max(delays) > 57
    assert 27 < statistics.mean(delays) < 33


def test_link_lifecycle_refuses_illegal_transitions():
    link = Link()
    for state in (
        LinkState.CONNECTING,
        LinkState.AUTHENTICATING,
        LinkState.CONNECTED,
        LinkState.BACKING_OFF,
        LinkState.CONNECTING,
        LinkState.STOPPED,
    ):
        link.to(state)
    try:
        link.to(LinkState.CONNECTING)
    except IllegalTransition as exc:
        assert "stopped to connecting" in str(exc)
    else:
        raise AssertionError("a stopped link reconnected")
    fresh = Link()
    try:
        fresh.to(LinkState.CONNECTED)
    except IllegalTransition:
        pass
    else:
        raise AssertionError("connected without authenticating")
