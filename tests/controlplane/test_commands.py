"""Commands relayed to agents: probe with policy, logs, config diff, pins, connections."""

from __future__ import annotations

import asyncio
import socket

from fleet.protocol import CommandEvent
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe


def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, sock.getsockname()[1]


def closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


async def test_probe_allowed_by_policy_reaches_a_real_listener(control_plane):
    sock, port = listener()
    control_plane.set_policy("db", allow_cidrs=["127.0.0.0/8"], allow_ports=["1024-65535"])
    agent, task = await start_agent(control_plane, "prober", pool="db")
    ws = await subscribe(control_plane)
    async with control_plane.aapi() as api:
        r = await api.post(
            f"/v1/agents/{agent.identity.agent_id}/probe", json={"host": "127.0.0.1", "port": port}
        )
        assert r.status_code == 200, r.text
        assert r.json()["ok"] is True and r.json()["connect_ms"] >= 0
        r = await api.post(
            f"/v1/agents/{agent.identity.agent_id}/probe",
            json={"host": "127.0.0.1", "port": closed_port()},
        )
        assert r.json()["ok"] is False and r.json()["failure"] == "refused"
        audit = (await api.get("/v1/audit")).json()
    assert [e["result"] for e in audit if e["action"] == "agent.probe"] == ["failed", "ok"]
    event = await next_event(ws, lambda m: isinstance(m, CommandEvent))
    assert event.kind == "agent.probe" and event.actor == "admin" and event.ok
    sock.close()
    await ws.close()
    await stop_agent(task)


async def test_probe_outside_policy_is_refused_and_audited(control_plane):
    control_plane.set_policy("db", allow_hosts=["*.db.internal"], allow_ports=[5432])
    agent, task = await start_agent(control_plane, "guarded", pool="db")
    async with control_plane.aapi() as api:
        for host, port, why in [
            ("10.0.0.5", 5432, "not in the pool's allowed networks"),
            ("pg.db.internal", 22, "port 22 is not in"),
            ("evil.example.com", 5432, "matches none of the pool's allowed hosts"),
        ]:
            r = await api.post(
                f"/v1/agents/{agent.identity.agent_id}/probe", json={"host": host, "port": port}
            )
            assert r.status_code == 403 and why in r.json()["detail"], r.text
        audit = (await api.get("/v1/audit")).json()
    assert sum(e["result"] == "denied" for e in audit) == 3
    await stop_agent(task)


async def test_pool_without_policy_denies_probes(control_plane):
    agent, task = await start_agent(control_plane, "nopolicy", pool="bare")
    async with control_plane.aapi() as api:
        r = await api.post(
            f"/v1/agents/{agent.identity.agent_id}/probe", json={"host": "127.0.0.1", "port": 80}
        )
    assert r.status_code == 403 and "has no probe policy" in r.json()["detail"]
    await stop_agent(task)


async def test_offline_agent_gives_409_not_a_hang(control_plane):
    control_plane.set_policy("db", allow_cidrs=["127.0.0.0/8"], allow_ports=["1-65535"])
    agent, task = await start_agent(control_plane, "gone", pool="db")
    await stop_agent(task)
    await asyncio.sleep(0.5)
    async with control_plane.aapi() as api:
        r = await api.post(
            f"/v1/agents/{agent.identity.agent_id}/probe", json={"host": "127.0.0.1", "port": 9}
        )
        assert r.status_code == 409 and "not connected" in r.json()["detail"]
        r = await api.post(f"/v1/agents/{agent.identity.agent_id}/logs", json={})
        assert r.status_code == 409


async def test_logs_download_as_attachment(control_plane):
    agent, task = await start_agent(control_plane, "talker")
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{agent.identity.agent_id}/logs", json={"lines": 5})
    assert r.status_code == 200
    assert 'attachment; filename="talker-' in r.headers["content-disposition"]
    assert r.text.count("\n") == 5 and "simulated agent line 19" in r.text
    await stop_agent(task)


async def test_config_diff_and_version_pin(control_plane):
    agent, task = await start_agent(control_plane, "drifter", version="1.0.0")
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        unpinned = (await api.get(f"/v1/agents/{aid}/config")).json()
        assert unpinned["pinned_hash"] is None and unpinned["in_sync"] is True
        assert unpinned["diff"] == []  # nothing pinned: nothing to diff against
        assert unpinned["effective"]["samples"] is True
        assert unpinned["effective_hash"] == agent.config_hash  # the heartbeat's hash
        r = await api.put(
            "/v1/pools/default/pin", json={"version": "1.1.0", "config": {"heartbeat": 10}}
        )
        assert r.status_code == 200
        cfg = (await api.get(f"/v1/agents/{aid}/config")).json()
        assert cfg["pinned_version"] == "1.1.0" and cfg["version"] == "1.0.0"
        assert cfg["in_sync"] is False
        assert '-  "heartbeat": 10,' in cfg["diff"] or '-  "heartbeat": 10' in cfg["diff"]
        assert any(line.startswith("+") and '"samples": true' in line for line in cfg["diff"])
        await asyncio.sleep(0.3)
        state = (await api.get(f"/v1/agents/{aid}")).json()["agent"]
        assert state["state"] == "degraded"
        assert any("runs 1.0.0, pinned 1.1.0" in r for r in state["reasons"])
        alerts = (await api.get("/v1/alerts")).json()
        assert any(a["kind"] == "version_drift" and a["target"] == aid for a in alerts)
        # An agent pin overrides the pool's version; the pool's config pin still applies.
        await api.put(f"/v1/agents/{aid}/pin", json={"version": "1.0.0"})
        await asyncio.sleep(0.3)
        state = (await api.get(f"/v1/agents/{aid}")).json()["agent"]
        assert state["pinned_version"] == "1.0.0"
        assert state["reasons"] == ["effective config differs from the pinned one"]
    await stop_agent(task)


async def test_connection_routes_to_first_pool_with_a_healthy_agent(control_plane):
    sock, port = listener()
    for pool in ("primary", "fallback"):
        control_plane.set_policy(pool, allow_cidrs=["127.0.0.0/8"], allow_ports=[port])
    async with control_plane.aapi() as api:
        r = await api.post(
            "/v1/connections",
            json={
                "name": "orders-db",
                "host": "127.0.0.1",
                "port": port,
                "pools": ["primary", "fallback"],
            },
        )
        assert r.status_code == 201 and r.json()["routable"] is False
        alerts = (await api.get("/v1/alerts")).json()
        assert any(
            a["kind"] == "unroutable" and a["target"] == "connection:orders-db" for a in alerts
        )
        r = await api.post("/v1/connections/orders-db/probe", json={})
        assert r.status_code == 409 and "unroutable" in r.json()["detail"]

        _agent, task = await start_agent(control_plane, "fb-1", pool="fallback")
        await asyncio.sleep(0.3)
        conns = (await api.get("/v1/connections")).json()
        assert conns[0]["routable"] is True and conns[0]["via_pool"] == "fallback"
        r = await api.post("/v1/connections/orders-db/probe", json={})
        assert r.status_code == 200, r.text
        assert r.json()["pool"] == "fallback" and r.json()["result"]["ok"] is True
        alerts = (await api.get("/v1/alerts")).json()
        assert not any(a["kind"] == "unroutable" for a in alerts)
    sock.close()
    await stop_agent(task)


async def test_connection_reroutes_to_the_preferred_pool_and_off_a_lost_agent(control_plane):
    async with control_plane.aapi() as api:
        await api.post(
            "/v1/connections",
            json={"name": "pg", "host": "127.0.0.1", "port": 5432, "pools": ["a", "b"]},
        )

        async def via():
            await asyncio.sleep(0.3)
            conn = (await api.get("/v1/connections")).json()[0]
            return conn["routable"], conn["via_pool"], conn["via_agent"]

        _, b1 = await start_agent(control_plane, "b-1", pool="b")
        assert await via() == (True, "b", "b-1")
        _, b2 = await start_agent(control_plane, "b-2", pool="b")
        assert await via() == (True, "b", "b-1"), "another agent of the same pool changes nothing"
        _, a1 = await start_agent(control_plane, "a-1", pool="a")
        assert await via() == (True, "a", "a-1"), "the first pool is preferred"
        await stop_agent(a1)
        assert (await via())[1] == "b"
        await stop_agent(b1)
        assert await via() == (True, "b", "b-2"), "moved off the agent that left"
        await stop_agent(b2)
        assert await via() == (False, None, None)
