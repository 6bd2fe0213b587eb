"""Pins hold a version and a config each on its own: setting one keeps the other, an
agent's pin overrides its pool's field by field, one part can be cleared, and a
freeze of the pool refuses every change (409 naming the window, audited)."""

from __future__ import annotations

import time

from tests.helpers.stream import eventually, start_agent, stop_agent

PINNED_CONFIG = {"heartbeat_s": 10.0}
"""A config the simulated agents do not run: a config-drift alert."""


async def alert_kinds(api, agent_id: str) -> set[str]:
    return {a["kind"] for a in (await api.get("/v1/alerts")).json() if a["target"] == agent_id}


async def test_pinning_a_version_keeps_the_pools_config_pin_and_its_drift_alert(control_plane):
    agent, task = await start_agent(control_plane, "local-3", pool="local", version="0.1.0")
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        r = await api.put("/v1/pools/local/pin", json={"config": PINNED_CONFIG})
        assert r.status_code == 200, r.text
        assert "config_drift" in await eventually(
            lambda: alert_kinds(api, aid), what="config drift alert"
        )
        # What the dashboard's `v` sends: a version alone.
        r = await api.put("/v1/pools/local/pin", json={"version": "0.2.0"})
        assert r.status_code == 200, r.text
        assert r.json()["version"] == "0.2.0" and r.json()["config"] == PINNED_CONFIG
        config = (await api.get(f"/v1/agents/{aid}/config")).json()
        assert config["pinned"] == PINNED_CONFIG and config["pinned_version"] == "0.2.0"
        assert config["in_sync"] is False
        kinds = await eventually(
            lambda: _both(api, aid), what="config and version drift alerts together"
        )
        assert kinds >= {"config_drift", "version_drift"}
        # And a config alone keeps the version.
        r = await api.put("/v1/pools/local/pin", json={"config": {"heartbeat_s": 20.0}})
        assert r.json()["version"] == "0.2.0"
        audit = [
            (e["action"], e["detail"])
            for e in (await api.get("/v1/audit")).json()
            if e["action"] == "pool.pin"
        ]
    assert audit[1] == ("pool.pin", "version 0.2.0, config True (config kept)")
    assert audit[0] == ("pool.pin", "version 0.2.0, config True (version kept)")
    await stop_agent(task)


async def _both(api, aid: str) -> set[str] | None:
    kinds = await alert_kinds(api, aid)
    return kinds if {"config_drift", "version_drift"} <= kinds else None


async def test_an_agents_pin_overrides_its_pools_field_by_field(control_plane):
    agent, task = await start_agent(control_plane, "mixed", pool="web", version="1.0.0")
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        await api.put("/v1/pools/web/pin", json={"version": "1.1.0", "config": PINNED_CONFIG})
        r = await api.put(f"/v1/agents/{aid}/pin", json={"version": "1.0.0"})
        assert r.status_code == 200 and r.json()["config"] is None
        config = (await api.get(f"/v1/agents/{aid}/config")).json()
        # The version from its own pin, the config still from its pool's.
        assert config["pinned_version"] == "1.0.0" and config["pinned"] == PINNED_CONFIG

        async def drift_is_config_only():
            state = (await api.get(f"/v1/agents/{aid}")).json()["agent"]
            return state["state"] == "degraded" and await alert_kinds(api, aid) == {"config_drift"}

        await eventually(drift_is_config_only, what="only config drift")
        state = (await api.get(f"/v1/agents/{aid}")).json()["agent"]
        assert state["pinned_version"] == "1.0.0"
        assert not any("pinned 1.1.0" in reason for reason in state["reasons"])
    await stop_agent(task)


def test_clearing_one_part_keeps_the_other(control_plane):
    with control_plane.api() as api:
        api.put("/v1/pools/db/pin", json={"version": "2.0.0", "config": {"a": 1}})
        cleared = api.delete("/v1/pools/db/pin", params={"part": "version"})
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["version"] == "2.0.0"  # the pin as it was
        pin = api.get("/v1/pools/db/pin").json()
        assert pin["version"] is None and pin["config"] == {"a": 1}
        missing = api.delete("/v1/pools/db/pin", params={"part": "version"})
        assert missing.status_code == 404
        assert "sets no version" in missing.json()["detail"]
        assert api.delete("/v1/pools/db/pin", params={"part": "nothing"}).status_code == 422
        # The last part cleared removes the pin.
        assert api.delete("/v1/pools/db/pin", params={"part": "config"}).status_code == 200
        assert api.get("/v1/pools/db/pin").status_code == 404
        audit = [
            (e["action"], e["result"], e["detail"])
            for e in api.get("/v1/audit").json()
            if e["action"] == "pool.unpin"
        ]
    assert [(a, r) for a, r, _ in audit] == [
        ("pool.unpin", "ok"),
        ("pool.unpin", "refused"),
        ("pool.unpin", "ok"),
    ]
    assert audit[2][2] == "cleared the version; was version 2.0.0, config True"


async def test_a_freeze_refuses_pin_changes_naming_the_window_and_its_end(control_plane):
    agent, task = await start_agent(control_plane, "frozen-1", pool="shop")
    aid = agent.identity.agent_id
    now = time.time()
    until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 3600))
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60))
    async with control_plane.aapi() as api:
        assert (await api.put("/v1/pools/shop/pin", json={"version": "1.0.0"})).status_code == 200
        r = await api.put(
            "/v1/pools/shop/windows",
            json={"freezes": [{"name": "black-friday", "from": since, "until": until}]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["frozen"] is True and r.json()["frozen_by"] == "black-friday"
        end = time.strftime("%a %H:%M", time.gmtime(now + 3600))
        for method, url, body in [
            ("PUT", "/v1/pools/shop/pin", {"version": "2.0.0"}),
            ("DELETE", "/v1/pools/shop/pin", None),
            ("PUT", f"/v1/agents/{aid}/pin", {"version": "2.0.0"}),  # its pool is frozen
        ]:
            r = await api.request(method, url, json=body)
            assert r.status_code == 409, (url, r.text)
            detail = r.json()["detail"]
            assert f"pool shop is frozen by black-friday until {end} UTC" in detail, detail
        # Nothing changed; another pool is not frozen.
        assert (await api.get("/v1/pools/shop/pin")).json()["version"] == "1.0.0"
        assert (await api.put("/v1/pools/other/pin", json={"version": "2.0.0"})).status_code == 200
        # Lifting the freeze (windows stay editable) lets the change through.
        assert (await api.put("/v1/pools/shop/windows", json={})).status_code == 200
        assert (await api.put("/v1/pools/shop/pin", json={"version": "2.0.0"})).status_code == 200
        audit = (await api.get("/v1/audit")).json()
    refused = [(e["action"], e["target"]) for e in audit if e["result"] == "refused"]
    assert refused == [("agent.pin", aid), ("pool.unpin", "shop"), ("pool.pin", "shop")]
    assert all("frozen by black-friday" in e["detail"] for e in audit if e["result"] == "refused")
    windows = [e["detail"] for e in audit if e["action"] == "pool.windows"]
    assert windows == ["none", "freeze black-friday"]
    await stop_agent(task)
