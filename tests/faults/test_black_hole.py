"""A black-holed path between agent and server: sockets open, every byte dropped.

The server must see the agent stale, then offline, within its documented
bounds (docs/server.md: stale after 3 missed heartbeats, offline
``offline_after_stale_s`` later, and then it closes the silent channel).  The
agent itself would notice only by its websocket ping (every 20 s, 20 s timeout:
docs/agent.md), too slow for a test, so its side is checked after the path
heals: it reconnects on its own within its first reconnect window.
"""

from __future__ import annotations

import time

import pytest

from fleet.protocol import AlertCleared, AlertRaised
from tests.faults.conftest import real_agent
from tests.faults.watch import EventLog
from tests.helpers.blackhole import BlackHoleRelay
from tests.helpers.server import FAST, RunningServer

pytestmark = pytest.mark.timeout(60)

ALIAS = "127.0.0.3"
INTERVAL_S = float(FAST["heartbeat_interval_s"])
TICK_S = float(FAST["tick_s"])
STALE_BOUND_S = 3 * INTERVAL_S + 1.0
OFFLINE_BOUND_S = STALE_BOUND_S + float(FAST["offline_after_stale_s"]) + 2 * TICK_S
BACK_BOUND_S = 1.0 + 4.0
"""The agent's first reconnect window (1 s, docs/agent.md) plus the handshake."""


async def test_a_black_holed_path_is_seen_stale_then_offline_and_the_agent_returns_after(
    tmp_path, running
):
    server = RunningServer(tmp_path / "cp", extra_args=["--san", ALIAS]).start()
    running.append(server)
    with BlackHoleRelay(ALIAS, server.agent_port, "127.0.0.1") as relay:
        agent = real_agent(
            server,
            tmp_path,
            running,
            "cut-off",
            args=["--server", f"https://{ALIAS}:{server.port}"],
        )
        agent_id = agent.agent_id
        events = await EventLog.open(server)
        try:
            await events.agent(
                agent_id,
                lambda a: a.state == "connected" and a.uptime_s is not None,
                20,
                "the agent connected through the relay",
            )
            assert relay.connections == 1, "the agent's channel goes through the relay"

            holed = time.monotonic()
            relay.black_hole()
            stale = await events.agent(
                agent_id, lambda a: a.state == "stale", STALE_BOUND_S + 5, "stale", holed
            )
            offline = await events.agent(
                agent_id, lambda a: a.state == "offline", OFFLINE_BOUND_S + 5, "offline", holed
            )
            raised = await events.wait(
                lambda m: (
                    isinstance(m, AlertRaised)
                    and m.alert.kind == "offline"
                    and m.alert.target == agent_id
                ),
                5,
                "an offline alert",
                holed,
            )
            assert stale.at - holed <= STALE_BOUND_S, f"stale after {stale.at - holed:.2f} s"
            assert offline.at - holed <= OFFLINE_BOUND_S, (
                f"offline after {offline.at - holed:.2f} s"
            )
            assert relay.dropped_bytes > 0, "the agent kept sending into the hole"
            assert agent.proc is not None and agent.proc.poll() is None

            healed = time.monotonic()
            relay.heal()
            back = await events.agent(
                agent_id,
                lambda a: a.state == "connected" and a.connected_at is not None,
                BACK_BOUND_S + 5,
                "connected again after the path healed",
                healed,
            )
            assert back.at - healed <= BACK_BOUND_S, f"back after {back.at - healed:.2f} s"
            assert isinstance(raised.message, AlertRaised)
            alert_id = raised.message.alert.id
            await events.wait(
                lambda m: isinstance(m, AlertCleared) and m.alert.id == alert_id,
                10,
                "the offline alert cleared",
                healed,
            )
            assert relay.connections == 1, "the new channel goes through the healed relay"
            print(
                f"stale {stale.at - holed:.2f} s, offline {offline.at - holed:.2f} s after the "
                f"hole; back {back.at - healed:.2f} s after healing"
            )
        finally:
            await events.close()
        assert "channel failed" in agent.output()
