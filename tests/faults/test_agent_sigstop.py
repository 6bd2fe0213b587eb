"""A SIGSTOPped agent: stale within three intervals plus a second, back after SIGCONT."""

from __future__ import annotations

import os
import signal
import time

import pytest

from fleet.protocol import AlertCleared, AlertRaised
from tests.faults.conftest import real_agent
from tests.faults.watch import EventLog
from tests.helpers.server import FAST

pytestmark = pytest.mark.timeout(60)

INTERVAL_S = float(FAST["heartbeat_interval_s"])
STALE_BOUND_S = 3 * INTERVAL_S + 1.0
"""docs/server.md: stale after ``stale_after_intervals`` (3) missed heartbeats; +1 s slack."""


async def test_a_sigstopped_agent_goes_stale_in_time_recovers_and_its_alert_clears(
    control_plane, tmp_path, running
):
    agent = real_agent(control_plane, tmp_path, running, "frozen")
    agent_id = agent.agent_id
    assert agent.proc is not None
    events = await EventLog.open(control_plane)
    try:
        await events.agent(
            agent_id,
            lambda a: a.state == "connected" and a.uptime_s is not None,
            20,
            "the agent connected and heartbeating",
        )
        frozen = agent.child_pid  # the agent itself, not its supervisor
        stopped = time.monotonic()
        os.kill(frozen, signal.SIGSTOP)
        try:
            stale = await events.agent(
                agent_id, lambda a: a.state == "stale", STALE_BOUND_S + 5, "stale", stopped
            )
            raised = await events.wait(
                lambda m: (
                    isinstance(m, AlertRaised)
                    and m.alert.kind == "stale"
                    and m.alert.target == agent_id
                ),
                5,
                "a stale alert",
                stopped,
            )
        finally:
            resumed = time.monotonic()
            os.kill(frozen, signal.SIGCONT)
        took = stale.at - stopped
        assert took <= STALE_BOUND_S, f"stale after {took:.2f} s, bound {STALE_BOUND_S} s"
        assert isinstance(raised.message, AlertRaised)
        alert_id = raised.message.alert.id

        back = await events.agent(
            agent_id,
            lambda a: a.state == "connected",
            3 * INTERVAL_S + 5,
            "connected again after SIGCONT",
            resumed,
        )
        await events.wait(
            lambda m: isinstance(m, AlertCleared) and m.alert.id == alert_id,
            10,
            "the stale alert cleared",
            resumed,
        )
        async with control_plane.aapi() as api:
            open_alerts = (await api.get("/v1/alerts")).json()
        assert not [a for a in open_alerts if a["target"] == agent_id], open_alerts
        print(
            f"stale {took:.2f} s after SIGSTOP; connected {back.at - resumed:.2f} s after SIGCONT"
        )
    finally:
        await events.close()
    assert agent.proc.poll() is None, "the agent survived the stop"
    assert agent.child_pid == frozen, "the same agent process came back, not a restart"
