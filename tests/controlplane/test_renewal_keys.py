"""A renewal with a new key supersedes the old certificate at the new one's first use.

From then on the old key and certificate are refused; until then they still work,
so an agent whose renewal answer was lost is not locked out.  A simulated agent
renews here (it can keep or drop what it was sent); tests/agent/test_agent_e2e.py
renews with the real agent.
"""

from __future__ import annotations

import asyncio
import dataclasses

from fleet.protocol import CloseCode
from fleet.simagent import SimAgent
from tests.helpers.server import wait_for
from tests.helpers.stream import connect_once, start_agent, stop_agent


async def _renew(agent: SimAgent, *, new_key: bool) -> None:
    old = agent.identity.certificate_pem
    await agent.renew(new_key=new_key)
    await asyncio.to_thread(
        wait_for, lambda: agent.identity.certificate_pem != old, what="a renewed certificate"
    )


def _supersessions(server, agent_id: str) -> list[dict]:
    with server.api() as api:
        audit = api.get("/v1/audit", params={"limit": 1000}).json()
    return [e for e in audit if e["action"] == "cert.supersede" and e["target"] == agent_id]


def _refused_as_superseded(agent: SimAgent) -> bool:
    return (
        not agent.connected.is_set()
        and agent.close_code == CloseCode.UNAUTHENTICATED
        and "superseded by a renewal with a new key" in (agent.close_message or "")
    )


async def test_old_certificate_and_key_are_refused_once_the_new_key_is_used(control_plane):
    agent, task = await start_agent(control_plane, "rekeyed")
    old = dataclasses.replace(agent.identity)
    await _renew(agent, new_key=True)
    new = dataclasses.replace(agent.identity)
    assert new.key is not old.key
    await stop_agent(task)

    # The new certificate authenticates: from then on the old pair is refused.
    assert (await connect_once(control_plane, new)).connected.is_set()
    assert _refused_as_superseded(await connect_once(control_plane, old))
    # Supersession is one write at the first use, not one per authentication.
    assert (await connect_once(control_plane, new)).connected.is_set()
    [entry] = _supersessions(control_plane, new.agent_id)
    assert entry["result"] == "ok" and "first use" in entry["detail"]

    # Kept in the store: still refused after a restart.
    await asyncio.to_thread(control_plane.restart)
    assert _refused_as_superseded(await connect_once(control_plane, old))
    assert (await connect_once(control_plane, new)).connected.is_set()
    assert len(_supersessions(control_plane, new.agent_id)) == 1


async def test_a_renewal_answer_that_never_arrives_locks_nobody_out(control_plane):
    # The server issues the new-key certificate, the agent never installs it (the
    # answer was lost with the connection): it still holds only its old pair.
    agent, task = await start_agent(control_plane, "lost-answer")
    old = dataclasses.replace(agent.identity)
    await _renew(agent, new_key=True)
    lost = dataclasses.replace(agent.identity)
    await stop_agent(task)

    assert (await connect_once(control_plane, old)).connected.is_set()
    # Pending survives a crash of the control plane: still not superseded...
    await asyncio.to_thread(control_plane.kill)
    await asyncio.to_thread(control_plane.start)
    assert (await connect_once(control_plane, old)).connected.is_set()
    assert _supersessions(control_plane, old.agent_id) == []

    # ...and the agent renews again later, with another new key, and uses it: the
    # old certificate and the one whose answer was lost are both refused.
    agent = SimAgent(dataclasses.replace(old), control_plane.ws_url, control_plane.ca_file)
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 10)
    await _renew(agent, new_key=True)
    await stop_agent(task)
    assert (await connect_once(control_plane, agent.identity)).connected.is_set()
    assert _refused_as_superseded(await connect_once(control_plane, old))
    assert _refused_as_superseded(await connect_once(control_plane, lost))
    [entry] = _supersessions(control_plane, old.agent_id)
    assert entry["detail"].count(",") == 1  # both older certificates, in one entry


async def test_a_same_key_renewal_supersedes_nothing(control_plane):
    # What agents before the rekeying renewal did: an agent that lost the answer
    # must still connect with the certificate it has.
    agent, task = await start_agent(control_plane, "same-key")
    old = dataclasses.replace(agent.identity)
    await _renew(agent, new_key=False)
    await stop_agent(task)
    assert (await connect_once(control_plane, old)).connected.is_set()
    assert (await connect_once(control_plane, agent.identity)).connected.is_set()


def _state(server, agent_id: str) -> str:
    with server.api() as api:
        return str(api.get(f"/v1/agents/{agent_id}").json()["agent"]["state"])


async def test_the_close_after_a_new_key_renewal_is_a_reconnect_not_an_outage(control_plane):
    # The real agent closes normally after installing its new key and dials again at
    # once: no offline alert at each renewal.  One that does not come back is seen
    # by the presence timers, as when heartbeats stop (test timings: stale at 1.5 s).
    agent, task = await start_agent(control_plane, "planned")
    await _renew(agent, new_key=True)
    await agent.close(1000, "renewed with a new key; reconnecting with it")  # no goodbye
    await stop_agent(task)  # and it does not come back
    agent_id = agent.identity.agent_id
    await asyncio.to_thread(
        wait_for, lambda: _state(control_plane, agent_id) == "stale", 10, 0.05, "stale"
    )
    with control_plane.api() as api:
        alerts = api.get("/v1/alerts", params={"all": True}).json()
    assert [a["kind"] for a in alerts if a["target"] == agent_id] == ["stale"]
    assert (await connect_once(control_plane, agent.identity)).connected.is_set()
