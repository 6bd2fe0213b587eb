"""``fleet demo``'s back end: the promised variety of health, and nothing left behind."""

from __future__ import annotations

import collections

import psutil

from fleet.demo import running_demo
from tests.helpers.server import wait_for


def test_demo_fleet_has_each_kind_of_trouble_and_cleans_up(tmp_path):
    with running_demo(tmp_path / "demo", sim_count=50, real_agents=1) as demo:
        # Server, one real agent, the simulated fleet. The agent may also have
        # a short-lived key-signing child at this instant, so count direct children.
        direct = psutil.Process().children()
        assert len(direct) == 3, direct

        def agents():
            with demo.api() as api:
                found = {a["name"]: a for a in api.get("/v1/agents").json()}
            return len(found) == 51 and found["etl-07"]["state"] == "stale" and found

        found = wait_for(agents, timeout=60, interval=0.5, what="51 agents with etl-07 stale")
        states = collections.Counter(a["state"] for a in found.values())
        assert states["connected"] >= 40, states
        assert found["local-1"]["state"] in ("connected", "degraded")
        assert found["local-1"]["version"] == found["local-1"]["pinned_version"]
        reasons = {name: " ".join(a["reasons"]) for name, a in found.items()}
        assert "clock is off by +47" in reasons["db-west-04"]
        assert "certificate expires in" in reasons["edge-02"]
        assert "runs 1.3.2, pinned 1.4.0" in reasons["db-east-09"]
        assert "queue depth" in reasons["etl-03"]
        with demo.api() as api:
            conns = {c["name"]: c for c in api.get("/v1/connections").json()}
        assert conns["warehouse"]["routable"] is False
        assert conns["orders-db"]["routable"] is True

        # The stored release rolls out to pool edge: its canary upgrades.
        def canary_upgraded():
            with demo.api() as api:
                found = api.get("/v1/rollouts", params={"pool": "edge"}).json()
            return found and found[0]["waves"][0]["upgraded"] == 1 and found[0]

        rollout = wait_for(canary_upgraded, timeout=60, interval=0.5, what="the edge canary")
        assert rollout["version"] == "1.5.0" and rollout["state"] in ("soaking", "wave", "pausing")
        children = psutil.Process().children(recursive=True)
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
