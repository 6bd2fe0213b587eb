"""Acknowledge, silence and maintenance on a real server: the stream shows the held
alerts again, expiry releases them, every change is audited and survives a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from fleet.protocol import AlertInfo, AlertRaised
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cp(tmp_path: Path):
    server = RunningServer(tmp_path / "cp", settings=dict(FAST)).start()
    try:
        yield server
    finally:
        server.stop()


async def republished(
    ws: websockets.ClientConnection, target: str, check: Any, timeout: float = 15.0
) -> AlertInfo:
    """The next AlertRaised of ``target`` for which ``check(alert)`` holds."""
    msg = await next_event(
        ws,
        lambda m: isinstance(m, AlertRaised) and m.alert.target == target and check(m.alert),
        timeout,
    )
    assert isinstance(msg, AlertRaised)
    return msg.alert


async def call(cp: RunningServer, method: str, path: str, **kw: Any) -> Any:
    async with cp.aapi(kw.pop("token", None)) as api:
        return await api.request(method, path, **kw)


async def ok(cp: RunningServer, method: str, path: str, **kw: Any) -> Any:
    response = await call(cp, method, path, **kw)
    assert response.status_code == 200, response.text
    return response.json()


async def audit_actions(cp: RunningServer) -> list[str]:
    return [e["action"] for e in await ok(cp, "GET", "/v1/audit", params={"limit": 200})]


async def test_a_silence_by_pool_holds_an_agents_alert_until_it_expires(cp):
    ws = await subscribe(cp)
    await next_event(ws)
    agent, task = await start_agent(cp, "etl-07", pool="etl", interval_s=0.2)
    agent_id = agent.identity.agent_id
    await stop_agent(task)
    await republished(ws, agent_id, lambda a: a.kind == "offline")

    made = await ok(
        cp, "POST", "/v1/silences", json={"pool": "etl", "duration_s": 3, "reason": "patching"}
    )
    assert made["state"] == "active" and made["created_by"] == "admin"
    held = await republished(ws, agent_id, lambda a: a.suppressed is not None)
    assert held.suppressed.startswith("silenced by admin until ")  # type: ignore[union-attr]
    assert held.suppressed.endswith(": patching")  # type: ignore[union-attr]
    assert held.silenced_until == pytest.approx(made["ends_at"])
    listed = await ok(cp, "GET", "/v1/silences")
    assert [s["id"] for s in listed] == [made["id"]]

    # It ends by itself: the alert is published again, no longer held.
    released = await republished(ws, agent_id, lambda a: a.suppressed is None, timeout=20)
    assert released.kind == "offline" and released.silenced_until is None
    assert await ok(cp, "GET", "/v1/silences") == []
    ended = await ok(cp, "GET", "/v1/silences", params={"all": "true"})
    assert [s["state"] for s in ended] == ["ended"]
    assert "silence.add" in await audit_actions(cp)
    await ws.close()


async def test_an_acknowledgement_and_a_silence_survive_a_restart_and_can_be_taken_back(cp):
    ws = await subscribe(cp)
    await next_event(ws)
    agent, task = await start_agent(cp, "db-01", pool="db", interval_s=0.2)
    agent_id = agent.identity.agent_id
    await stop_agent(task)
    offline = await republished(ws, agent_id, lambda a: a.kind == "offline")

    ack = await ok(cp, "POST", f"/v1/alerts/{offline.id}/ack", json={"note": "on it"})
    assert ack["acked_by"] == "admin"
    acked = await republished(ws, agent_id, lambda a: a.acked_by is not None)
    assert (acked.ack_note, acked.suppressed) == ("on it", None)
    silence = await ok(cp, "POST", "/v1/silences", json={"agent": "db-01", "duration_s": 3600})
    await ws.close()

    cp.restart()
    [alert] = [a for a in await ok(cp, "GET", "/v1/alerts") if a["id"] == offline.id]
    assert alert["acked_by"] == "admin" and alert["ack_note"] == "on it"
    assert alert["suppressed"].startswith("silenced by admin")
    assert [s["id"] for s in await ok(cp, "GET", "/v1/silences")] == [silence["id"]]

    ws = await subscribe(cp)
    await next_event(ws)
    await ok(cp, "DELETE", f"/v1/alerts/{offline.id}/ack")
    await republished(ws, agent_id, lambda a: a.acked_by is None)
    gone = await ok(cp, "DELETE", f"/v1/silences/{silence['id']}")
    assert gone["state"] == "deleted" and gone["deleted_by"] == "admin"
    await republished(ws, agent_id, lambda a: a.suppressed is None and a.acked_by is None)
    actions = await audit_actions(cp)
    for action in ("alert.ack", "alert.unack", "silence.add", "silence.delete"):
        assert action in actions
    await ws.close()


async def test_maintenance_of_a_pool_holds_its_minimum_alert_across_a_restart(cp):
    ws = await subscribe(cp)
    await next_event(ws)
    await ok(cp, "PUT", "/v1/pools/db/policy", json={"allow_ports": [5432], "min_healthy": 1})
    below = await republished(ws, "pool:db", lambda a: a.kind == "pool_below_min")
    assert below.suppressed is None

    window = await ok(
        cp, "POST", "/v1/maintenance", json={"pool": "db", "duration_s": 3600, "reason": "move"}
    )
    assert (window["scope"], window["target"], window["state"]) == ("pool", "db", "active")
    held = await republished(ws, "pool:db", lambda a: a.suppressed is not None)
    assert held.suppressed.startswith("maintenance of pool db until ")  # type: ignore[union-attr]
    await ws.close()

    cp.restart()
    [alert] = [a for a in await ok(cp, "GET", "/v1/alerts") if a["target"] == "pool:db"]
    assert alert["suppressed"].startswith("maintenance of pool db")
    ws = await subscribe(cp)
    await next_event(ws)
    await ok(cp, "DELETE", f"/v1/maintenance/{window['id']}")
    await republished(ws, "pool:db", lambda a: a.suppressed is None)
    actions = await audit_actions(cp)
    assert "maintenance.add" in actions and "maintenance.delete" in actions
    await ws.close()


async def test_maintenance_of_an_agent_holds_its_offline_alert_and_its_pools_shortfall(cp):
    ws = await subscribe(cp)
    await next_event(ws)
    agent, task = await start_agent(cp, "web-01", pool="web", interval_s=0.2)
    agent_id = agent.identity.agent_id
    await ok(cp, "PUT", "/v1/pools/web/policy", json={"allow_ports": [443], "min_healthy": 1})
    window = await ok(cp, "POST", "/v1/maintenance", json={"agent": "web-01", "duration_s": 600})
    assert (window["target"], window["target_name"]) == (agent_id, "web-01")
    await stop_agent(task)
    seen: dict[str, AlertInfo] = {}
    while len(seen) < 2:  # in either order
        msg = await next_event(ws, lambda m: isinstance(m, AlertRaised), 15.0)
        assert isinstance(msg, AlertRaised)
        if msg.alert.kind in ("offline", "pool_below_min"):
            seen[msg.alert.kind] = msg.alert
    # Raised already held: never notified, still shown.
    assert seen["offline"].target == agent_id
    assert seen["offline"].suppressed.startswith("maintenance of agent web-01")  # type: ignore[union-attr]
    # The pool is short by exactly the agent in maintenance: planned, held too.
    assert seen["pool_below_min"].target == "pool:web"
    assert seen["pool_below_min"].suppressed.startswith("maintenance of agent web-01")  # type: ignore[union-attr]
    clash = await call(cp, "POST", "/v1/maintenance", json={"agent": agent_id, "duration_s": 60})
    assert clash.status_code == 409 and window["id"] in clash.json()["detail"]
    await ws.close()


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/silences", {"duration_s": 60}, 400, "at least one matcher"),
        ("/v1/silences", {"pool": "db"}, 400, "how long"),
        ("/v1/silences", {"pool": "db", "ends_at": 1000}, 400, "in the past"),
        ("/v1/silences", {"pool": "db", "duration_s": 30 * 86400}, 400, "silence_max_s"),
        ("/v1/silences", {"pool": "db", "duration_s": -5}, 422, "duration_s"),
        ("/v1/silences", {"pool": "bad name", "duration_s": 60}, 422, "pool"),
        ("/v1/maintenance", {"duration_s": 60}, 400, "an agent or a pool"),
        ("/v1/maintenance", {"agent": "nobody", "duration_s": 60}, 404, "no agent"),
        ("/v1/alerts/abc123/ack", {"note": "x"}, 404, "no open alert"),
    ],
)
async def test_bad_requests_are_refused_with_what_to_do(cp, path, body, status, says):
    response = await call(cp, "POST", path, json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


async def test_a_viewer_may_read_but_not_silence_and_the_refusal_is_audited(cp):
    viewer = cp.user("wall", "viewer")
    assert (await call(cp, "GET", "/v1/silences", token=viewer)).status_code == 200
    assert (await call(cp, "GET", "/v1/maintenance", token=viewer)).status_code == 200
    body = {"pool": "db", "duration_s": 60}
    refused = await call(cp, "POST", "/v1/silences", json=body, token=viewer)
    assert refused.status_code == 403
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = await ok(cp, "GET", "/v1/audit", params={"actor": "wall"})
        if any(e["result"] == "forbidden" for e in entries):
            break
    else:
        raise AssertionError("the refusal was not audited")
