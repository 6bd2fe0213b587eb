"""The agent's memory budget, held by every test run, not only by ``make bench``."""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from tests.agent.agents import AgentProcess, enroll
from tests.helpers.server import RunningServer, wait_for

pytestmark = pytest.mark.timeout(120)

RSS_BUDGET_MIB = 35
"""DESIGN.md, targets: "agent: at most 35 MB RSS" (bench/agent_footprint.py counts MiB)."""

SUPERVISOR_BUDGET_MIB = 15
"""The supervisor (agent/supervisor.py, standard library only) beside it: 13.2 MiB
measured; the ``fleet`` command line it replaces (exec) holds 23."""

HEARTBEATS_MEASURED = 4


@pytest.fixture
def agent(control_plane: RunningServer, tmp_path) -> Iterator[AgentProcess]:
    state_dir = tmp_path / "lean-1"
    done = enroll(control_plane, state_dir, name="lean-1")
    assert done.returncode == 0, done.stderr
    process = AgentProcess(state_dir).start()
    try:
        yield process
    finally:
        process.stop()


def _heartbeat_at(server: RunningServer, agent_id: str) -> str | None:
    with server.api() as api:
        response = api.get(f"/v1/agents/{agent_id}")
        response.raise_for_status()
        doc = response.json()["agent"]
    # uptime_s comes only with a heartbeat (last_heartbeat_at is set on connect).
    if doc["state"] != "connected" or doc["uptime_s"] is None:
        return None
    return str(doc["last_heartbeat_at"])


def _next_heartbeat(server: RunningServer, agent_id: str, after: str) -> str:
    def later() -> str | None:
        beat = _heartbeat_at(server, agent_id)
        return beat if beat is not None and beat != after else None

    return str(wait_for(later, 5, 0.05, "the next heartbeat"))


def test_a_connected_agent_stays_within_its_rss_budget(control_plane, agent):
    assert agent.proc is not None
    # The agent itself: the supervisor's child, not the short-lived `python -m
    # agent.keys` child that signs.
    measured = agent.child()
    supervisor = psutil.Process(agent.proc.pid)
    assert supervisor.cmdline()[1:4] == ["-P", "-m", "agent.supervisor"]
    beat = wait_for(
        lambda: _heartbeat_at(control_plane, agent.agent_id), 20, 0.05, "a connected agent"
    )
    peak = supervisor_peak = 0
    for _ in range(HEARTBEATS_MEASURED):
        beat = _next_heartbeat(control_plane, agent.agent_id, beat)
        peak = max(peak, measured.memory_info().rss)
        supervisor_peak = max(supervisor_peak, supervisor.memory_info().rss)
    assert agent.proc.poll() is None, agent.output()
    rss_mib = peak / 2**20
    assert rss_mib <= RSS_BUDGET_MIB, (
        f"the agent holds {rss_mib:.1f} MiB RSS after {HEARTBEATS_MEASURED} heartbeats; "
        f"DESIGN.md budgets at most {RSS_BUDGET_MIB} MB"
    )
    supervisor_mib = supervisor_peak / 2**20
    assert supervisor_mib <= SUPERVISOR_BUDGET_MIB, (
        f"the supervisor holds {supervisor_mib:.1f} MiB RSS (budget {SUPERVISOR_BUDGET_MIB})"
    )
    print(f"agent {rss_mib:.1f} MiB, supervisor {supervisor_mib:.1f} MiB")
