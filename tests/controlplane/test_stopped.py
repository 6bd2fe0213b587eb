"""The ``stopped`` presence: after a goodbye, no alert; kept across a restart; left on connect."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from controlplane.config import Settings
from controlplane.fleet import Fleet
from controlplane.live import LiveAgent
from controlplane.presence import IllegalTransition, check_transition
from controlplane.store.base import AgentRecord
from controlplane.store.sqlite import SQLiteStore
from fleet.protocol import Presence


def fleet_with_agent(tmp_path) -> tuple[Fleet, LiveAgent]:
    settings = Settings(restart_grace_s=0, alert_hold_s=0, offline_after_stale_s=0.01)
    fleet = Fleet(settings, SQLiteStore(tmp_path / "fleet.db"))
    rec = AgentRecord("ag_1", "db-1", "p", {}, time.time(), "01", time.time() + 86400)
    agent = LiveAgent(rec, 60)
    fleet.add_agent(agent)
    fleet.on_connect(agent, "127.0.0.1:5000")
    return fleet, agent


def open_kinds(fleet: Fleet) -> set[str]:
    return {kind for kind, target in fleet.alerts.open if target == "ag_1"}


def test_a_goodbye_makes_the_agent_stopped_and_clears_its_absence_alerts(tmp_path):
    fleet, agent = fleet_with_agent(tmp_path)
    agent.last_heartbeat_mono = time.monotonic() - 3600  # silent: stale at the next tick
    fleet.tick()
    assert agent.state == Presence.STALE and open_kinds(fleet) == {"stale"}
    fleet.on_disconnect(agent, "received SIGTERM")
    assert agent.state == Presence.STOPPED
    assert agent.reasons[0].startswith("stopped on purpose at ")
    assert agent.reasons[0].endswith(": received SIGTERM")
    assert open_kinds(fleet) == set()
    for _ in range(3):  # timers leave it alone: never offline, never alerted
        fleet.tick()
        time.sleep(0.02)
    assert agent.state == Presence.STOPPED and open_kinds(fleet) == set()
    state = agent.to_state()
    assert state.stop_reason == "received SIGTERM" and state.stopped_at is not None


def test_without_a_goodbye_it_is_offline_and_alerted(tmp_path):
    fleet, agent = fleet_with_agent(tmp_path)
    fleet.on_disconnect(agent)
    assert agent.state == Presence.OFFLINE and open_kinds(fleet) == {"offline"}


def test_stopped_survives_a_restart_and_ends_on_connect(tmp_path):
    fleet, agent = fleet_with_agent(tmp_path)
    fleet.on_disconnect(agent, "systemctl stop")
    restored = LiveAgent(replace(agent.record, status=agent.status()), 60)
    assert restored.state == Presence.STOPPED
    assert (restored.stop_reason, restored.stopped_at) == ("systemctl stop", agent.stopped_at)
    fleet.agents[restored.id] = restored
    fleet.on_connect(restored, "127.0.0.1:5001")
    assert restored.state == Presence.CONNECTED
    assert restored.stop_reason is None and restored.stopped_at is None
    assert LiveAgent(replace(agent.record, status=restored.status()), 60).state == Presence.OFFLINE


def test_the_transitions_of_stopped():
    for old in (Presence.CONNECTED, Presence.DEGRADED, Presence.STALE):
        check_transition(old, Presence.STOPPED)
    for new in (Presence.CONNECTED, Presence.DEGRADED, Presence.REVOKED):
        check_transition(Presence.STOPPED, new)
    with pytest.raises(IllegalTransition):
        check_transition(Presence.STOPPED, Presence.OFFLINE)
    with pytest.raises(IllegalTransition):
        check_transition(Presence.OFFLINE, Presence.STOPPED)
