"""The agent channel with real TLS: heartbeats to events, skew, stale, revocation, bad frames."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from fleet.protocol import AgentUpdate, AlertRaised, CloseCode, Snapshot
from tests.helpers.server import wait_for
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe


def agent_state(server, agent_id):
    with server.api() as api:
        return api.get(f"/v1/agents/{agent_id}").json()["agent"]


async def test_heartbeat_reaches_a_subscriber(control_plane):
    ws = await subscribe(control_plane)
    snap = await next_event(ws)
    assert isinstance(snap, Snapshot) and snap.agents == [] and snap.role == "admin"
    _agent, task = await start_agent(control_plane, "hb-1", queue_depth=7, cpu_percent=12.5)
    update = await next_event(ws, lambda m: isinstance(m, AgentUpdate) and m.agent.queue_depth == 7)
    assert update.agent.name == "hb-1"
    assert update.agent.state == "connected"
    assert update.agent.cpu_percent == 12.5
    assert update.seq > snap.seq
    await ws.close()
    await stop_agent(task)


async def test_skew_is_measured_against_an_offset_clock(control_plane):
    agent, task = await start_agent(control_plane, "skewed", clock_offset_s=42.0)
    state = await asyncio.to_thread(
        wait_for,
        lambda: (s := agent_state(control_plane, agent.identity.agent_id))["skew_ms"] and s,
        what="a skew measurement",
    )
    assert abs(state["skew_ms"] - 42_000) < 200, state["skew_ms"]
    assert 0 <= state["rtt_ms"] < 200
    assert state["state"] == "degraded"
    assert any("clock is off by +42" in r for r in state["reasons"])
    with control_plane.api() as api:
        alerts = api.get("/v1/alerts").json()
    assert any(a["kind"] == "clock_skew" and a["severity"] == "critical" for a in alerts)
    await stop_agent(task)


async def test_small_skew_is_healthy(control_plane):
    agent, task = await start_agent(control_plane, "ok-clock", clock_offset_s=0.0)
    state = await asyncio.to_thread(
        wait_for,
        lambda: (
            (s := agent_state(control_plane, agent.identity.agent_id))["skew_ms"] is not None and s
        ),
    )
    assert abs(state["skew_ms"]) < 100 and state["state"] == "connected"
    # A clock that drifts later is caught by the periodic probes (one sweeper task
    # for the fleet, every time_probe_interval_s: 2 s here).
    agent.clock_offset_s = 5.0
    state = await asyncio.to_thread(
        wait_for,
        lambda: (s := agent_state(control_plane, agent.identity.agent_id))["skew_ms"] > 4_000 and s,
        timeout=10,
        what="the drift measured by a later probe",
    )
    assert abs(state["skew_ms"] - 5_000) < 200
    await stop_agent(task)


async def test_stale_when_heartbeats_stop_but_socket_stays_open(control_plane):
    ws = await subscribe(control_plane)
    await next_event(ws)
    agent, task = await start_agent(control_plane, "quiet")
    await next_event(ws, lambda m: isinstance(m, AgentUpdate) and m.agent.state == "connected")
    agent.heartbeating = False
    seen = []

    def stale_and_alerted(m):
        if isinstance(m, AgentUpdate) and m.agent.state == "stale":
            seen.append(m)
        if isinstance(m, AlertRaised) and m.alert.kind == "stale":
            seen.append(m)
        return len(seen) == 2

    await next_event(ws, stale_and_alerted, timeout=10)
    stale = next(m for m in seen if isinstance(m, AgentUpdate))
    alert = next(m for m in seen if isinstance(m, AlertRaised))
    assert stale.agent.reasons and "no heartbeat" in stale.agent.reasons[0]
    assert alert.alert.target == agent.identity.agent_id
    assert agent.connected.is_set(), "the socket stayed open"
    agent.heartbeating = True
    back = await next_event(
        ws, lambda m: isinstance(m, AgentUpdate) and m.agent.state == "connected", timeout=10
    )
    assert back.agent.name == "quiet"
    await ws.close()
    await stop_agent(task)


async def test_a_silent_agent_goes_offline_and_its_channel_is_closed(control_plane):
    # A host that died without a FIN leaves its socket open; once its agent is
    # offline the server closes that channel (4009), so it holds nothing and a
    # command gets a clear 409.
    agent, task = await start_agent(control_plane, "mute")
    agent.heartbeating = False
    agent.close_code = None
    for _ in range(100):
        if agent.close_code == CloseCode.SILENT:
            break
        await asyncio.sleep(0.1)
    assert agent.close_code == CloseCode.SILENT, agent.close_code
    assert "no heartbeat" in (agent.close_message or "")
    aid = agent.identity.agent_id
    assert agent_state(control_plane, aid)["state"] in ("offline", "pending", "connected")
    agent.heartbeating = True  # it dials in again, as a live agent would
    await asyncio.to_thread(
        wait_for,
        lambda: agent_state(control_plane, aid)["state"] == "connected",
        timeout=15,
        what="the agent back after its channel was closed",
    )
    await stop_agent(task)


async def test_offline_when_the_channel_closes(control_plane):
    agent, task = await start_agent(control_plane, "leaver")
    await stop_agent(task)
    state = await asyncio.to_thread(
        wait_for,
        lambda: (
            (s := agent_state(control_plane, agent.identity.agent_id))["state"] == "offline" and s
        ),
    )
    assert state["state"] == "offline"


async def test_revocation_closes_the_channel_and_refuses_reconnects(control_plane):
    agent, task = await start_agent(control_plane, "doomed")
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{agent.identity.agent_id}/revoke")
        assert r.status_code == 200 and r.json()["state"] == "revoked"
    await asyncio.wait_for(task, 10)  # run() returns on its own after 4004
    assert agent.close_code == CloseCode.REVOKED
    assert "revoked" in (agent.close_message or "")
    # A reconnect with the same identity is refused with the same code.
    agent.close_code = None
    await asyncio.wait_for(agent.run(reconnect=False), 10)
    assert agent.close_code == CloseCode.REVOKED
    with control_plane.api() as api:
        assert api.get(f"/v1/agents/{agent.identity.agent_id}").json()["agent"]["state"] == (
            "revoked"
        )


async def test_malformed_frame_gets_error_and_close_code(control_plane):
    agent, task = await start_agent(control_plane, "garbled")
    await agent.send_raw("{not json")
    await asyncio.wait_for(agent.connected.wait(), 1)
    await asyncio.sleep(0.5)
    assert agent.close_code == CloseCode.PROTOCOL_ERROR
    assert "not valid JSON" in (agent.close_message or "")
    await stop_agent(task)
    # The server goes on serving others.
    other, task2 = await start_agent(control_plane, "fine")
    assert other.connected.is_set()
    await stop_agent(task2)


async def test_oversized_frame_is_closed_with_1009(control_plane):
    agent, task = await start_agent(control_plane, "big")
    await agent.send_raw(json.dumps({"type": "heartbeat", "pad": "x" * (2 << 20)}))
    await asyncio.sleep(1.0)
    # The server closes with 1009; the client may see only the reset (1006) when the
    # kernel drops the close frame along with the unread rest of its upload.
    assert agent.close_code in (1009, 1006)
    await stop_agent(task)
    with control_plane.api() as api:
        audit = api.get("/v1/audit").json()
    assert any("close 1009" in e["detail"] for e in audit)
    _other, task2 = await start_agent(control_plane, "small")
    await stop_agent(task2)


async def test_wrong_signature_is_refused(control_plane):
    from cryptography.hazmat.primitives.asymmetric import ec

    agent, task = await start_agent(control_plane, "imposter")
    await stop_agent(task)
    agent.identity.key = ec.generate_private_key(ec.SECP256R1())  # not the cert's key
    agent.close_code = None
    await asyncio.wait_for(agent.run(reconnect=False), 10)
    assert agent.close_code == CloseCode.UNAUTHENTICATED
    assert "signature" in (agent.close_message or "")


async def test_certificate_renewal_over_the_channel(control_plane):
    agent, task = await start_agent(control_plane, "renewer")
    old = agent.identity.certificate_pem
    await agent.renew()
    await asyncio.to_thread(
        wait_for, lambda: agent.identity.certificate_pem != old, what="a renewed certificate"
    )
    # The renewed identity authenticates.
    await stop_agent(task)
    agent.close_code = None
    agent.connected.clear()
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 10)
    await stop_agent(task)


async def test_event_stream_refuses_bad_tokens(control_plane):
    try:
        ws = await subscribe(control_plane, token="flta_" + "x" * 40)
        await ws.recv()
        await ws.recv()
    except websockets.ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == CloseCode.UNAUTHENTICATED
    else:
        raise AssertionError("stream must close")


async def test_agents_have_a_port_of_their_own_and_the_api_route_still_works(control_plane):
    # Enrollment names the agents' port; the data directory records it, so it
    # survives restarts (enrolled agents know no other).
    recorded = int((control_plane.data_dir / "agent.port").read_text())
    own, task = await start_agent(control_plane, "own-port")
    assert own.identity.channel_port == recorded != control_plane.port
    assert own.channel_url.endswith(f":{recorded}/v1/agent/connect")
    # The API port's route serves the same channel, for agents that know only it.
    legacy, task2 = await start_agent(control_plane, "api-route", api_route=True)
    assert legacy.channel_url == control_plane.ws_url + "/v1/agent/connect"
    for name in ("own-port", "api-route"):
        with control_plane.api() as api:
            found = {a["name"]: a for a in api.get("/v1/agents").json()}
        assert found[name]["state"] == "connected"
    await stop_agent(task)
    await stop_agent(task2)


async def test_the_agents_port_serves_nothing_else(control_plane):
    port = int((control_plane.data_dir / "agent.port").read_text())
    ctx = control_plane.ssl_context()
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"wss://127.0.0.1:{port}/v1/events", ssl=ctx):
            pass
    assert refused.value.response.status_code == 404
    assert b"serves only the agent channel" in refused.value.response.body
    async with httpx.AsyncClient(verify=ctx) as client:
        r = await client.get(f"https://127.0.0.1:{port}/v1/agents")
    assert r.status_code in (400, 404, 426)  # not an API: no data, whatever the path
