"""A restart keeps tokens, pins, audit, connections and agents; agents come back."""

from __future__ import annotations

import asyncio

from cryptography.hazmat.primitives.asymmetric import ec

from fleet.simagent import make_csr
from tests.helpers.server import wait_for
from tests.helpers.stream import start_agent, stop_agent


async def test_restart_keeps_everything(control_plane):
    spare = control_plane.enrollment_token("db", uses=2)
    viewer = control_plane.user("vic", "viewer")
    agent, task = await start_agent(control_plane, "survivor", pool="db", queue_depth=3)
    async with control_plane.aapi() as api:
        await api.put("/v1/pools/db/pin", json={"version": "2.0.0"})
        await api.put("/v1/pools/db/policy", json={"allow_ports": [5432], "min_healthy": 1})
        await api.post(
            "/v1/connections", json={"name": "pg", "host": "pg", "port": 5432, "pools": ["db"]}
        )
    await asyncio.sleep(1.2)  # one write-behind flush
    with control_plane.api() as api:
        audit_before = len(api.get("/v1/audit").json())

    control_plane.kill()  # SIGKILL: no graceful flush
    await asyncio.sleep(0.2)
    control_plane.start()

    async with control_plane.aapi() as api:
        agents = (await api.get("/v1/agents")).json()
        assert [a["name"] for a in agents] == ["survivor"]
        assert agents[0]["queue_depth"] == 3, "last status survives via write-behind"
        assert agents[0]["pinned_version"] == "2.0.0"
        pools = {p["name"]: p for p in (await api.get("/v1/pools")).json()}
        assert pools["db"]["policy"]["allow_ports"] == [5432]
        assert [c["name"] for c in (await api.get("/v1/connections")).json()] == ["pg"]
        assert len((await api.get("/v1/audit")).json()) >= audit_before
        # The token still has its uses; the viewer's token still works.
        csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "late")
        r = await api.post("/v1/enroll", json={"token": spare, "csr_pem": csr})
        assert r.status_code == 201
    async with control_plane.aapi(viewer) as api:
        assert (await api.get("/v1/whoami")).json()["role"] == "viewer"

    # The simulated agent reconnects on its own (full-jitter backoff).
    def connected():
        with control_plane.api() as api:
            a = api.get(f"/v1/agents/{agent.identity.agent_id}").json()["agent"]
        return a["state"] in ("connected", "degraded") and a

    state = await asyncio.to_thread(wait_for, connected, 15, 0.1, "agent back after restart")
    assert state["version"] == "1.0.0"
    await stop_agent(task)
