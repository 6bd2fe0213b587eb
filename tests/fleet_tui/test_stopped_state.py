"""The ``stopped`` state in the dashboard's formatting, ordering and filters."""

from __future__ import annotations

from collections import Counter

from fleet.protocol import AgentState, Presence
from fleet_tui import format as fmt
from fleet_tui.model import UNHEALTHY, AgentFilter
from fleet_tui.screens.wall import wall_order
from fleet_tui.widgets.summary import summary_markup


def agent(name: str, state: Presence) -> AgentState:
    return AgentState(id=name, name=name, pool="p", state=state)


def test_stopped_reads_in_monochrome_and_is_not_unhealthy():
    assert fmt.state_label(Presence.STOPPED) == "■ stopped"
    assert Presence.STOPPED not in UNHEALTHY


def test_stopped_sorts_after_the_unhealthy_and_before_the_healthy():
    agents = [
        agent(n, s)
        for n, s in (
            ("a", Presence.CONNECTED),
            ("b", Presence.STOPPED),
            ("c", Presence.OFFLINE),
            ("d", Presence.DEGRADED),
        )
    ]
    assert [a.name for a in wall_order(agents)] == ["c", "d", "b", "a"]


def test_the_filter_and_the_summary_know_stopped():
    f = AgentFilter.parse("state:stopped")
    assert f.matches(agent("x", Presence.STOPPED))
    assert not f.matches(agent("y", Presence.OFFLINE))
    text = summary_markup(Counter({Presence.CONNECTED: 3, Presence.STOPPED: 2}), 0)
    assert "■ 2 stopped" in text
