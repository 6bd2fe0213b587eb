"""Enrollment tokens, connections, pool pins and policies, the audit's filters."""

from __future__ import annotations

import time

import pytest

from fleet.protocol import AlertCleared, ConnectionRemoved, ConnectionUpdate, Snapshot
from tests.agent.agents import enroll
from tests.helpers.server import RunningServer, wait_for
from tests.helpers.stream import next_event, subscribe

pytestmark = pytest.mark.timeout(90)


def tokens_by_id(server: RunningServer) -> dict[str, dict]:
    with server.api() as api:
        return {t["id"]: t for t in api.get("/v1/tokens").json()}


def alerts_of(server: RunningServer, target: str) -> list[dict]:
    with server.api() as api:
        return [a for a in api.get("/v1/alerts").json() if a["target"] == target]


def make_token(server: RunningServer, **body: object) -> dict:
    with server.api() as api:
        response = api.post("/v1/tokens", json={"pool": "default", **body})
        response.raise_for_status()
        return dict(response.json())


def test_token_states_and_a_revoked_token_is_refused_at_enrollment(control_plane, tmp_path):
    used = make_token(control_plane)
    assert enroll(control_plane, tmp_path / "a", token=used["token"]).returncode == 0
    brief = make_token(control_plane, ttl_s=0.2)
    doomed = make_token(control_plane, uses=5)
    time.sleep(0.3)  # let the brief one expire
    listed = tokens_by_id(control_plane)
    assert listed[used["id"]]["state"] == "used"
    assert listed[brief["id"]]["state"] == "expired"
    assert listed[doomed["id"]]["state"] == "active"
    assert listed[doomed["id"]]["revoked_at"] is None
    for t in listed.values():
        assert "token" not in t and "token_hash" not in t

    with control_plane.api() as api:
        response = api.delete(f"/v1/tokens/{doomed['id']}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["id"] == doomed["id"] and body["revoked_at"] > 0
        assert api.delete(f"/v1/tokens/{doomed['id']}").json() == body  # the first time stays
        unknown = api.delete("/v1/tokens/nope")
    assert unknown.status_code == 404 and "GET /v1/tokens" in unknown.json()["detail"]
    assert tokens_by_id(control_plane)[doomed["id"]]["state"] == "revoked"

    refused = enroll(control_plane, tmp_path / "b", token=doomed["token"])
    assert refused.returncode != 0
    assert "was revoked" in refused.stderr, refused.stderr
    with control_plane.api() as api:
        audit = api.get("/v1/audit").json()
    actions = [(r["action"], r["target"], r["result"]) for r in audit]
    assert ("token.revoke", doomed["id"], "ok") in actions
    assert ("token.revoke", "nope", "refused") in actions
    assert ("enroll", f"token:{doomed['id']}", "refused") in actions


async def test_connections_409_patch_and_delete(control_plane):
    conn = {"name": "pg", "host": "127.0.0.1", "port": 5432, "pools": ["default"]}
    ws = await subscribe(control_plane)
    assert isinstance(await next_event(ws), Snapshot)
    async with control_plane.aapi() as api:
        assert (await api.post("/v1/connections", json=conn)).status_code == 201
        dup = await api.post("/v1/connections", json=conn)
        assert dup.status_code == 409
        assert dup.json()["detail"] == (
            "connection pg exists; change it with PATCH /v1/connections/pg "
            "(fleet connections update pg)"
        )
        patched = await api.patch("/v1/connections/pg", json={"port": 6432, "pools": ["a", "b"]})
        assert patched.status_code == 200, patched.text
        info = patched.json()
        assert info["port"] == 6432 and info["pools"] == ["a", "b"] and info["host"] == "127.0.0.1"
        assert (await api.patch("/v1/connections/pg", json={"colour": 1})).status_code == 422
        missing = await api.patch("/v1/connections/nope", json={"port": 1})
        assert missing.status_code == 404 and "GET /v1/connections" in missing.json()["detail"]
    update = await next_event(
        ws, lambda m: isinstance(m, ConnectionUpdate) and m.connection.port == 6432
    )
    assert isinstance(update, ConnectionUpdate) and update.connection.pools == ["a", "b"]

    # Unroutable (no agent in a or b): an alert, cleared with the connection.
    alert = wait_for(lambda: alerts_of(control_plane, "connection:pg"), 10, 0.1, "unroutable")[0]
    async with control_plane.aapi() as api:
        deleted = await api.delete("/v1/connections/pg")
        assert deleted.status_code == 200 and deleted.json() == {"name": "pg"}
        assert (await api.get("/v1/connections")).json() == []
        assert (await api.delete("/v1/connections/pg")).status_code == 404
        audit = (await api.get("/v1/audit")).json()
    seen: list[object] = []

    def removed(msg: object) -> bool:
        seen.append(msg)
        return isinstance(msg, ConnectionRemoved)

    gone = await next_event(ws, removed)
    await ws.close()
    assert isinstance(gone, ConnectionRemoved) and gone.name == "pg"
    assert alert["id"] in {m.alert.id for m in seen if isinstance(m, AlertCleared)}
    actions = [(r["action"], r["result"]) for r in audit]
    for step in [
        ("connection.create", "ok"),
        ("connection.create", "refused"),
        ("connection.update", "ok"),
        ("connection.delete", "ok"),
    ]:
        assert step in actions, step
    detail = next(
        r["detail"] for r in audit if r["action"] == "connection.update" and r["result"] == "ok"
    )
    assert "port 5432 -> 6432" in detail


def test_pool_pin_and_policy_show_and_clear(control_plane):
    with control_plane.api() as api:
        assert api.get("/v1/pools/web").status_code == 404
        assert "GET /v1/pools" in api.get("/v1/pools/web").json()["detail"]
        api.put("/v1/pools/web/pin", json={"version": "1.2.3", "config": {"a": 1}})
        api.put("/v1/pools/web/policy", json={"allow_ports": [443], "min_healthy": 1})
        pool = api.get("/v1/pools/web").json()
        assert pool["name"] == "web" and pool["agents"] == 0 and pool["healthy"] == 0
        assert pool["pin"]["version"] == "1.2.3" and pool["pin"]["config"] == {"a": 1}
        assert pool["pin"]["set_by"] == "admin" and pool["pin"]["set_at"] > 0
        assert pool["policy"]["allow_ports"] == [443]
        assert api.get("/v1/pools/web/pin").json()["version"] == "1.2.3"
        assert api.get("/v1/pools/web/policy").json()["min_healthy"] == 1
        # Below its minimum: an alert, which goes with the policy.
        wait_for(
            lambda: any(a["target"] == "pool:web" for a in api.get("/v1/alerts").json()),
            10,
            0.1,
            "pool below minimum",
        )

        cleared = api.delete("/v1/pools/web/policy")
        assert cleared.status_code == 200 and cleared.json()["policy"]["allow_ports"] == [443]
        assert not any(a["target"] == "pool:web" for a in api.get("/v1/alerts").json())
        missing = api.get("/v1/pools/web/policy")
        assert missing.status_code == 404 and "PUT /v1/pools/web/policy" in missing.text
        assert api.delete("/v1/pools/web/policy").status_code == 404

        unpinned = api.delete("/v1/pools/web/pin")
        assert unpinned.status_code == 200 and unpinned.json()["scope"] == "pool"
        assert api.get("/v1/pools/web/pin").status_code == 404
        assert api.delete("/v1/pools/web/pin").status_code == 404
        assert api.get("/v1/pools/web").status_code == 404  # nothing names it any more
        # A connection that routes through a pool names it too.
        conn = {"name": "orders", "host": "127.0.0.1", "port": 5432, "pools": ["web"]}
        assert api.post("/v1/connections", json=conn).status_code == 201
        assert api.get("/v1/pools/web").json()["agents"] == 0
        assert "web" in [p["name"] for p in api.get("/v1/pools").json()]
        audit = [(r["action"], r["result"]) for r in api.get("/v1/audit").json()]
    for step in [
        ("pool.pin", "ok"),
        ("pool.policy.clear", "ok"),
        ("pool.policy.clear", "refused"),
        ("pool.unpin", "ok"),
        ("pool.unpin", "refused"),
    ]:
        assert step in audit, step


def test_audit_filters_by_actor_and_time_in_the_store(control_plane):
    bob = control_plane.user("bob", "admin")
    with control_plane.api(bob) as api:
        api.post("/v1/tokens", json={"pool": "p"}).raise_for_status()
    time.sleep(0.05)
    mark = time.time()
    time.sleep(0.05)
    with control_plane.api() as api:
        api.post("/v1/tokens", json={"pool": "q"}).raise_for_status()
        mine = api.get("/v1/audit", params={"actor": "bob"}).json()
        recent = api.get("/v1/audit", params={"since": mark}).json()
        one = api.get("/v1/audit", params={"limit": 1}).json()
        both = api.get("/v1/audit", params={"since": mark, "actor": "bob"}).json()
        bad = api.get("/v1/audit", params={"since": "yesterday"})
    assert [(r["actor"], r["action"]) for r in mine] == [("bob", "token.create")]
    assert recent and all(r["at"] >= mark for r in recent)
    assert [r["target"] for r in recent] == ["pool:q"]
    assert len(one) == 1 and one[0]["target"] == "pool:q"
    assert both == []
    assert bad.status_code == 422 and "since" in bad.json()["detail"]
