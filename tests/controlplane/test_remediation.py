"""Auto-remediation against a real control plane with simulated agents on the real
protocol: policies, automatic actions within budgets, the approval inbox, restarts
of the server, roles, audit, and the move of connections to their next pool."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.protocol import RemediationUpdate
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import next_event, stop_agent, subscribe
from tests.helpers.stream import start_agent as start_sim

SETTINGS = {**FAST, "remediation_min_check_s": "0.2"}


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(tmp_path / "cp", settings=dict(SETTINGS)).start()
    try:
        yield server
    finally:
        server.stop()


async def start_agent(server: RunningServer, name: str, **attrs):
    """A simulated agent that obeys restart and renew, as a current agent does."""
    return await start_sim(server, name, obeys_actions=True, **attrs)


async def eventually(predicate, timeout: float = 15.0, what: str = "condition"):
    """Await ``predicate()`` (a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


async def remediations(cp: RunningServer, **params: str) -> list[dict]:
    async with cp.aapi() as api:
        r = await api.get("/v1/remediations", params=params)
        assert r.status_code == 200, r.text
        return r.json()


async def one(cp: RunningServer, state: str, **params: str) -> dict | None:
    found = [r for r in await remediations(cp, **params) if r["state"] == state]
    return found[0] if found else None


async def audit(cp: RunningServer) -> list[dict]:
    async with cp.aapi() as api:
        return (await api.get("/v1/audit", params={"limit": 1000})).json()


def rule(condition: str, action: str, automatic: bool, checks: int = 2, **more) -> dict:
    return {
        "condition": condition,
        "action": action,
        "automatic": automatic,
        "checks": checks,
        **more,
    }


async def put_policy(
    cp: RunningServer, pool: str, *rules: dict, token: str | None = None, **fields
):
    body = {"check_interval_s": 0.2, "rules": list(rules), **fields}
    async with cp.aapi(token) as api:
        return await api.put(f"/v1/pools/{pool}/remediation", json=body)


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


async def test_a_wedged_agent_is_restarted_within_budget_then_the_next_restart_waits(cp):
    operator = cp.user("olga", "operator")
    viewer = cp.user("vic", "viewer")
    agent, task = await start_agent(cp, "wedged", pool="etl", queue_depth=500)
    ws = await subscribe(cp)
    r = await put_policy(
        cp,
        "etl",
        rule("queue_over", "restart", True, checks=3, depth=100),
        per_agent_per_hour=1,
        per_pool_per_hour=5,
    )
    assert r.status_code == 200, r.text
    assert r.json()["set_by"] == "admin" and r.json()["policy"]["rules"][0]["depth"] == 100

    # Held 3 checks: restarted by itself, and done once the agent is back.
    done = await eventually(lambda: one(cp, "done", agent="wedged"), what="automatic restart")
    assert agent.restarts == 1
    assert done["automatic"] is True and done["decided_by"] == "remediation:etl"
    assert done["action"] == "restart" and done["condition"] == "queue depth over 100 for 3 checks"
    assert done["detail"].startswith("back after")
    ran = await next_event(ws, lambda m: isinstance(m, RemediationUpdate))
    assert ran.remediation.state == "running" and ran.remediation.id == done["id"]

    # The queue stays over: the next restart is over the agent's budget and waits.
    pending = await eventually(lambda: one(cp, "pending_approval"), what="queued restart")
    assert pending["why_approval"] == "budget spent: 1 restart per agent per hour"
    assert pending["automatic"] is False and pending["expires_at"] > time.time() + 3600
    await next_event(
        ws,
        lambda m: isinstance(m, RemediationUpdate) and m.remediation.state == "pending_approval",
    )
    await asyncio.sleep(1.0)  # checks go on: still one waiting, no second one
    assert len([r for r in await remediations(cp) if r["state"] == "pending_approval"]) == 1
    assert agent.restarts == 1

    async with cp.aapi(viewer) as api:
        r = await api.post(f"/v1/remediations/{pending['id']}/approve")
        assert r.status_code == 403, r.text
    async with cp.aapi(operator) as api:
        r = await api.post(f"/v1/remediations/{pending['id']}/approve", json={"note": "go"})
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "running" and r.json()["decided_by"] == "olga"
        again = await api.post(f"/v1/remediations/{pending['id']}/approve")
        assert again.status_code == 409 and "is running, not waiting" in again.json()["detail"]

    async def approved_done():
        async with cp.aapi() as api:
            got = (await api.get(f"/v1/remediations/{pending['id']}")).json()
        return got["state"] == "done" and got

    finished = await eventually(approved_done, what="approved restart done")
    assert agent.restarts == 2 and finished["decided_by"] == "olga"

    # Still wedged: queued again; this time the operator says no.
    nxt = await eventually(lambda: one(cp, "pending_approval"), what="queued again")
    async with cp.aapi(operator) as api:
        r = await api.post(f"/v1/remediations/{nxt['id']}/reject", json={"note": "investigating"})
        assert r.status_code == 200, r.text
        assert (r.json()["state"], r.json()["detail"]) == ("rejected", "investigating")
        r = await api.get(f"/v1/agents/{agent.identity.agent_id}")
        shown = r.json()["remediations"]
    assert agent.restarts == 2
    assert [x["id"] for x in shown[:3]] == [nxt["id"], pending["id"], done["id"]]
    assert [x["state"] for x in shown[:3]] == ["rejected", "done", "done"]

    rows = await audit(cp)
    mine = [
        (e["actor"], e["action"])
        for e in rows
        if e["action"].startswith(("remediation.", "agent.restart"))
    ]
    for expected in [
        ("admin", "remediation.policy"),
        ("remediation:etl", "remediation.run"),
        ("remediation:etl", "agent.restart"),
        ("remediation:etl", "remediation.finish"),
        ("remediation:etl", "remediation.queue"),
        ("olga", "remediation.approve"),
        ("olga", "agent.restart"),
        ("olga", "remediation.reject"),
    ]:
        assert expected in mine, expected
    assert ("vic", "http.post") in [(e["actor"], e["action"]) for e in rows]
    # A dashboard that connects now finds them in its snapshot.
    late = await subscribe(cp, viewer)
    snapshot = await next_event(late)
    assert {done["id"], pending["id"], nxt["id"]} <= {r.id for r in snapshot.remediations}
    await late.close()
    await ws.close()
    await stop_agent(task)


async def test_approval_required_queues_at_once_and_the_inbox_survives_a_restart(cp):
    operator = cp.user("olga", "operator")
    agent, task = await start_agent(cp, "stuck", pool="batch")
    agent.heartbeating = False  # the socket stays open: stale, and still reachable
    r = await put_policy(cp, "batch", rule("stale_or_offline", "restart", False, checks=2))
    assert r.status_code == 200, r.text
    pending = await eventually(lambda: one(cp, "pending_approval"), what="queued restart")
    assert pending["why_approval"] == "the policy asks for approval"
    assert pending["condition"] == "stale or offline for 2 checks" and agent.restarts == 0

    cp.restart()
    kept = await eventually(lambda: one(cp, "pending_approval"), what="inbox after restart")
    assert kept["id"] == pending["id"] and kept["expires_at"] == pending["expires_at"]
    async with cp.aapi(operator) as api:
        r = await api.put(
            "/v1/pools/batch/remediation", json={"rules": [rule("stale_or_offline", "renew", True)]}
        )
        assert r.status_code == 403 and "needs admin" in r.json()["detail"]
        r = await api.get("/v1/pools/batch/remediation")
        assert r.status_code == 200 and r.json()["policy"]["rules"][0]["action"] == "restart"

    await asyncio.wait_for(agent.connected.wait(), 15)  # back on the new server
    agent.heartbeating = True  # what a restart would mend

    async def approve():
        async with cp.aapi(operator) as api:
            r = await api.post(f"/v1/remediations/{pending['id']}/approve")
        return r.status_code == 200 and r.json()

    assert (await eventually(approve, what="approved"))["state"] == "running"

    async def done():
        async with cp.aapi() as api:
            got = (await api.get(f"/v1/remediations/{pending['id']}")).json()
        return got["state"] == "done" and got

    await eventually(done, what="restart done")
    assert agent.restarts == 1
    await stop_agent(task)


async def test_policy_is_validated_with_messages_that_say_what_to_fix(cp):
    async def refused(*rules: dict, status: int, **fields) -> str:
        r = await put_policy(cp, "val", *rules, **fields)
        assert r.status_code == status, r.text
        return r.json()["detail"]

    says = await refused(rule("disk_full", "restart", True), status=422)
    assert "does not match any of the expected tags: 'stale_or_offline'" in says
    assert "action" in await refused(rule("stale_or_offline", "reboot", True), status=422)
    assert "checks" in await refused(
        rule("stale_or_offline", "restart", True, checks=0), status=422
    )
    says = await refused(rule("probe_failing", "restart", True), status=422)
    assert "connection: Field required" in says
    says = await refused(rule("probe_failing", "restart", True, connection="pg"), status=400)
    assert "no connection 'pg'" in says
    async with cp.aapi() as api:
        r = await api.post(
            "/v1/connections",
            json={"name": "pg", "host": "127.0.0.1", "port": 5432, "pools": ["other"]},
        )
        assert r.status_code == 201, r.text
    says = await refused(rule("probe_failing", "restart", True, connection="pg"), status=400)
    assert "does not route through pool val" in says
    async with cp.aapi() as api:
        r = await api.patch("/v1/connections/pg", json={"pools": ["val", "other"]})
        assert r.status_code == 200, r.text
    says = await refused(rule("probe_failing", "restart", True, connection="pg"), status=400)
    assert "may not probe 127.0.0.1:5432 (the pool has no probe policy)" in says
    assert "PUT /v1/pools/val/policy" in says
    cp.set_policy("val", allow_cidrs=["127.0.0.0/8"], allow_ports=[5432])
    says = await refused(
        rule("stale_or_offline", "restart", True), check_interval_s=0.1, status=400
    )
    assert "shorter than the server's remediation_min_check_s (0.2 s)" in says

    r = await put_policy(
        cp, "val", rule("probe_failing", "move_connections", False, connection="pg")
    )
    assert r.status_code == 200, r.text
    async with cp.aapi() as api:
        r = await api.delete("/v1/pools/val/remediation")
        assert r.status_code == 200 and r.json()["pool"] == "val"
        r = await api.get("/v1/pools/val/remediation")
        assert r.status_code == 404 and "remediation is off in pool 'val'" in r.json()["detail"]
        r = await api.delete("/v1/pools/val/remediation")
        assert r.status_code == 404
        r = await api.post("/v1/remediations/rem_0123456789ab/approve")
        assert r.status_code == 404 and "fleet remediation list" in r.json()["detail"]
    results = [(e["action"], e["result"]) for e in await audit(cp) if "remediation" in e["action"]]
    assert results.count(("remediation.policy", "refused")) == 4
    assert ("remediation.policy", "ok") in results
    assert ("remediation.policy.clear", "ok") in results
    assert ("remediation.policy.clear", "refused") in results
    assert ("remediation.approve", "refused") in results


async def test_a_failing_probe_moves_the_pools_connections_to_the_next_pool(cp):
    operator = cp.user("olga", "operator")
    _east, east_task = await start_agent(cp, "east-1", pool="east")
    _west, west_task = await start_agent(cp, "west-1", pool="west")
    cp.set_policy("east", allow_cidrs=["127.0.0.0/8"], allow_ports=["1024-65535"])
    port = closed_port()
    async with cp.aapi() as api:
        r = await api.post(
            "/v1/connections",
            json={"name": "pg", "host": "127.0.0.1", "port": port, "pools": ["east", "west"]},
        )
        assert r.json()["via_pool"] == "east"
    r = await put_policy(
        cp, "east", rule("probe_failing", "move_connections", True, connection="pg", timeout_s=1)
    )
    assert r.status_code == 200, r.text

    moved = await eventually(lambda: one(cp, "done", pool="east"), what="connections moved")
    assert moved["action"] == "move_connections" and moved["agent_name"] == "east-1"
    assert moved["detail"] == "moved pg: east, west -> west, east"
    async with cp.aapi() as api:
        await api.delete("/v1/pools/east/remediation")  # no further moves while we look
        conn = (await api.get("/v1/connections")).json()[0]
        assert (conn["pools"], conn["via_pool"]) == (["west", "east"], "west")
    rows = await audit(cp)
    assert any(
        e["actor"] == "remediation:east"
        and e["action"] == "connection.update"
        and "pools east, west -> west, east" in e["detail"]
        for e in rows
    )

    async with cp.aapi(operator) as api:
        r = await api.post(f"/v1/remediations/{moved['id']}/revert")
        assert r.status_code == 403
    async with cp.aapi() as api:
        r = await api.post(f"/v1/remediations/{moved['id']}/revert")
        assert r.status_code == 200, r.text
        assert "reverted by admin: put back pg: west, east -> east, west" in r.json()["detail"]
        conn = (await api.get("/v1/connections")).json()[0]
        assert (conn["pools"], conn["via_pool"]) == (["east", "west"], "east")
        r = await api.post(f"/v1/remediations/{moved['id']}/revert")
        assert r.status_code == 409 and "reverted already, by admin" in r.json()["detail"]
    assert any(e["action"] == "remediation.revert" for e in await audit(cp))
    await stop_agent(east_task)
    await stop_agent(west_task)


async def test_a_certificate_past_two_thirds_of_its_life_is_renewed(cp):
    agent, task = await start_agent(cp, "aging", pool="pki")
    # The agent reports a certificate that expires in an hour of its 24 hours.
    agent.cert_not_after = time.time() + 3600
    r = await put_policy(cp, "pki", rule("renewal_failing", "renew", True))
    assert r.status_code == 200, r.text
    done = await eventually(lambda: one(cp, "done", pool="pki"), what="renewal")
    assert done["detail"].startswith("certificate renewed: valid 23h") or done["detail"].startswith(
        "certificate renewed: valid 1d"
    ), done["detail"]
    assert agent.identity.not_after > time.time() + 23 * 3600

    async def reported():
        async with cp.aapi() as api:
            a = (await api.get(f"/v1/agents/{agent.identity.agent_id}")).json()["agent"]
        return a["cert_not_after"] > time.time() + 23 * 3600

    await eventually(reported, what="new expiry in heartbeats")
    await asyncio.sleep(1.0)
    assert len(await remediations(cp, pool="pki")) == 1, "renewed: the condition no longer holds"
    await stop_agent(task)


async def test_pending_ones_expire_and_an_unreachable_agent_is_said_once(tmp_path):
    settings = {**SETTINGS, "remediation_pending_ttl_s": "1"}
    server = RunningServer(tmp_path / "cp", settings=settings).start()
    try:
        _waiting, waiting_task = await start_agent(server, "busy", pool="q", queue_depth=50)
        _gone, gone_task = await start_agent(server, "gone", pool="q")
        await stop_agent(gone_task)  # the channel drops: offline
        r = await put_policy(
            server,
            "q",
            rule("queue_over", "restart", False, depth=10),
            rule("stale_or_offline", "restart", True),
        )
        assert r.status_code == 200, r.text
        expired = await eventually(lambda: one(server, "expired", agent="busy"), what="expired")
        assert expired["detail"] == "not approved within 1s"
        failed = await eventually(lambda: one(server, "failed", agent="gone"), what="unreachable")
        assert "is offline, not connected: a restart cannot reach it" in failed["detail"]
        await asyncio.sleep(1.5)  # many more checks: said once
        assert len(await remediations(server, agent="gone")) == 1
        rows = await audit(server)
        assert any(e["action"] == "remediation.expire" for e in rows)
        assert any(e["action"] == "remediation.fail" and e["result"] == "failed" for e in rows)
        await stop_agent(waiting_task)
    finally:
        server.stop()


async def test_a_rule_rolls_back_an_agent_whose_queue_backs_up_after_an_upgrade(cp):
    """The rollback action: the agent goes back to the version it ran before, the
    remediation is done when it is back on it, and the agent shows the step."""
    agent, task = await start_agent(
        cp, "regressed", pool="etl", version="1.1.0", previous_version="1.0.0", queue_depth=500
    )
    try:
        r = await put_policy(cp, "etl", rule("queue_over", "rollback", True, checks=2, depth=100))
        assert r.status_code == 200, r.text
        done = await eventually(lambda: one(cp, "done", agent="regressed"), what="the rollback")
        assert done["action"] == "rollback" and done["automatic"] is True
        assert done["condition"] == "queue depth over 100 for 2 checks"
        assert done["detail"].startswith("back after") and done["detail"].endswith("running 1.0.0")
        assert agent.version == "1.0.0" and agent.previous_version is None
        async with cp.aapi() as api:
            shown = (await api.get(f"/v1/agents/{agent.identity.agent_id}")).json()
        assert shown["agent"]["version"] == "1.0.0"
        assert shown["agent"]["upgrade"]["step"] == "rolled_back"
        assert shown["remediations"][0]["id"] == done["id"]
        actions = [(e["actor"], e["action"]) for e in await audit(cp)]
        assert ("remediation:etl", "agent.rollback") in actions
    finally:
        await stop_agent(task)
