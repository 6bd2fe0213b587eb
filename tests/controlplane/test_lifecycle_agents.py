"""Decommission a connected real agent, forget a pending one, clear a pin (real agents)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.cli import EXIT_REVOKED
from fleet.protocol import AgentRemoved, AlertCleared, ConnectionUpdate, Snapshot
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.server import RunningServer, wait_for
from tests.helpers.stream import next_event, subscribe

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def enrolled(server: RunningServer, tmp_path: Path, name: str) -> Path:
    state_dir = tmp_path / name
    done = enroll(server, state_dir, name=name)
    assert done.returncode == 0, done.stderr
    return state_dir


def state_of(server: RunningServer, agent_id: str) -> dict | None:
    with server.api() as api:
        return next((a for a in api.get("/v1/agents").json() if a["id"] == agent_id), None)


def wait_state(server: RunningServer, agent_id: str, state: str, timeout: float = 20) -> dict:
    def check() -> dict | None:
        agent = state_of(server, agent_id)
        return agent if agent and agent["state"] == state else None

    return wait_for(check, timeout, 0.1, f"agent {agent_id} {state}")


def agent_alerts(server: RunningServer, agent_id: str) -> list[dict]:
    with server.api() as api:
        return [a for a in api.get("/v1/alerts").json() if a["target"] == agent_id]


async def test_decommission_a_connected_agent_removes_it_everywhere(
    control_plane, tmp_path, agents
):
    agent = AgentProcess(enrolled(control_plane, tmp_path, "old-box")).start()
    agents.append(agent)
    agent_id = agent.agent_id
    with control_plane.api() as api:
        api.post(
            "/v1/connections",
            json={"name": "db", "host": "127.0.0.1", "port": 5432, "pools": ["default"]},
        ).raise_for_status()
        # A version it does not run: a drift alert on the agent.
        api.put("/v1/pools/default/pin", json={"version": "0.0.0-other"}).raise_for_status()
    wait_state(control_plane, agent_id, "degraded")
    alert = wait_for(lambda: agent_alerts(control_plane, agent_id), 10, 0.1, "drift alert")[0]
    assert alert["kind"] == "version_drift"
    with control_plane.api() as api:
        assert api.get("/v1/connections").json()[0]["via_agent"] == "old-box"

    ws = await subscribe(control_plane)
    assert isinstance(await next_event(ws), Snapshot)
    async with control_plane.aapi() as api:
        response = await api.delete("/v1/agents/old-box")  # by name, as everywhere
    assert response.status_code == 200, response.text
    assert response.json() == {"id": agent_id, "name": "old-box", "action": "agent.decommission"}

    seen: list[object] = []

    def wanted(msg: object) -> bool:
        seen.append(msg)
        return isinstance(msg, AgentRemoved)

    removed = await next_event(ws, wanted)
    assert isinstance(removed, AgentRemoved) and removed.agent_id == agent_id
    cleared = [m for m in seen if isinstance(m, AlertCleared)]
    assert alert["id"] in {m.alert.id for m in cleared}
    await ws.close()

    assert await asyncio.to_thread(agent.wait, 15) == EXIT_REVOKED
    assert state_of(control_plane, agent_id) is None
    assert agent_alerts(control_plane, agent_id) == []
    with control_plane.api() as api:
        pool = api.get("/v1/pools/default").json()
        conn = api.get("/v1/connections").json()[0]
        gone = api.get(f"/v1/agents/{agent_id}")
        again = api.delete(f"/v1/agents/{agent_id}")
        audit = api.get("/v1/audit").json()
    assert pool["agents"] == 0 and pool["healthy"] == 0
    assert conn["routable"] is False and conn["via_agent"] is None
    assert gone.status_code == 404 and "GET /v1/agents" in gone.json()["detail"]
    assert again.status_code == 404
    actions = [(r["action"], r["target"], r["result"]) for r in audit]
    assert ("agent.decommission", agent_id, "ok") in actions
    assert ("agent.revoke", agent_id, "ok") in actions

    # Gone for good: not back after a restart, and its identity stays refused.
    control_plane.restart()
    assert state_of(control_plane, agent_id) is None
    comeback = AgentProcess(agent.state_dir).start()
    agents.append(comeback)
    assert await asyncio.to_thread(comeback.wait, 15) == EXIT_REVOKED
    assert "decommissioned" in comeback.output()


async def test_forget_a_pending_agent_that_never_connected(control_plane, tmp_path, agents):
    state_dir = enrolled(control_plane, tmp_path, "never-ran")
    agent_id = AgentProcess(state_dir).agent_id
    assert state_of(control_plane, agent_id)["state"] == "pending"
    ws = await subscribe(control_plane)
    assert isinstance(await next_event(ws), Snapshot)
    async with control_plane.aapi() as api:
        response = await api.delete(f"/v1/agents/{agent_id}")
    assert response.status_code == 200, response.text
    assert response.json()["action"] == "agent.forget"
    removed = await next_event(ws, lambda m: isinstance(m, AgentRemoved))
    assert isinstance(removed, AgentRemoved) and removed.agent_id == agent_id
    await ws.close()
    assert state_of(control_plane, agent_id) is None
    with control_plane.api() as api:
        audit = api.get("/v1/audit", params={"actor": "admin"}).json()
    assert audit[0]["action"] == "agent.forget" and audit[0]["target"] == agent_id

    late = AgentProcess(state_dir).start()  # it may not come in afterwards
    agents.append(late)
    assert await asyncio.to_thread(late.wait, 15) == EXIT_REVOKED


async def test_clearing_a_pin_recomputes_drift_at_once(control_plane, tmp_path, agents):
    agent = AgentProcess(enrolled(control_plane, tmp_path, "drifter")).start()
    agents.append(agent)
    wait_state(control_plane, agent.agent_id, "connected")
    with control_plane.api() as api:
        api.put(f"/v1/agents/{agent.agent_id}/pin", json={"version": "9.9.9"}).raise_for_status()
        pin = api.get(f"/v1/agents/{agent.agent_id}/pin").json()
    assert pin["scope"] == "agent" and pin["version"] == "9.9.9" and pin["set_by"] == "admin"
    wait_state(control_plane, agent.agent_id, "degraded")
    assert [a["kind"] for a in agent_alerts(control_plane, agent.agent_id)] == ["version_drift"]

    with control_plane.api() as api:
        cleared = api.delete(f"/v1/agents/{agent.agent_id}/pin")
        assert cleared.status_code == 200 and cleared.json()["version"] == "9.9.9"
        # No heartbeat needed: the agent's state changes with the request.
        now = next(a for a in api.get("/v1/agents").json() if a["id"] == agent.agent_id)
        missing = api.get(f"/v1/agents/{agent.agent_id}/pin")
        twice = api.delete(f"/v1/agents/{agent.agent_id}/pin")
    assert now["state"] == "connected" and now["pinned_version"] is None
    assert agent_alerts(control_plane, agent.agent_id) == []
    assert missing.status_code == 404 and "PUT /v1/agents/" in missing.json()["detail"]
    assert twice.status_code == 404


async def test_a_decommissioned_route_moves_to_another_agent(control_plane, tmp_path, agents):
    first = AgentProcess(enrolled(control_plane, tmp_path, "a-first")).start()
    second = AgentProcess(enrolled(control_plane, tmp_path, "b-second")).start()
    agents += [first, second]
    wait_state(control_plane, first.agent_id, "connected")
    wait_state(control_plane, second.agent_id, "connected")
    with control_plane.api() as api:
        via = api.post(
            "/v1/connections",
            json={"name": "cache", "host": "127.0.0.1", "port": 6379, "pools": ["default"]},
        ).json()["via_agent"]
    ws = await subscribe(control_plane)
    assert isinstance(await next_event(ws), Snapshot)
    async with control_plane.aapi() as api:
        assert (await api.delete(f"/v1/agents/{via}")).status_code == 200
    update = await next_event(
        ws, lambda m: isinstance(m, ConnectionUpdate) and m.connection.via_agent != via
    )
    await ws.close()
    assert isinstance(update, ConnectionUpdate)
    assert update.connection.routable and update.connection.via_agent in {"a-first", "b-second"}
