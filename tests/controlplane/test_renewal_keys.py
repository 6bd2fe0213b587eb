"""A renewal with a new key supersedes the old certificate: the old key is refused."""

from __future__ import annotations

import asyncio
import dataclasses

from fleet.protocol import CloseCode
from fleet.simagent import SimAgent
from tests.helpers.server import wait_for
from tests.helpers.stream import start_agent, stop_agent


async def _connect_once(server, identity) -> SimAgent:
    """One channel attempt with ``identity``; the agent tells how it ended."""
    agent = SimAgent(identity=identity, ws_url=server.ws_url, ca_file=server.ca_file)
    task = asyncio.create_task(agent.run(reconnect=False))
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(agent.connected.wait())],
        timeout=10,
        return_when=asyncio.FIRST_COMPLETED,
    )
    assert done, "neither connected nor refused within 10 s"
    await stop_agent(task)
    return agent


async def _renew(agent: SimAgent, *, new_key: bool) -> None:
    old = agent.identity.certificate_pem
    await agent.renew(new_key=new_key)
    await asyncio.to_thread(
        wait_for, lambda: agent.identity.certificate_pem != old, what="a renewed certificate"
    )


async def test_old_certificate_and_key_are_refused_after_a_new_key_renewal(control_plane):
    agent, task = await start_agent(control_plane, "rekeyed")
    old = dataclasses.replace(agent.identity)
    await _renew(agent, new_key=True)
    new = dataclasses.replace(agent.identity)
    assert new.key is not old.key

    stolen = await _connect_once(control_plane, old)
    assert not stolen.connected.is_set()
    assert stolen.close_code == CloseCode.UNAUTHENTICATED
    assert "superseded by a renewal with a new key" in (stolen.close_message or "")
    # The agent that renewed keeps its channel, and its new certificate authenticates.
    assert agent.connected.is_set()
    await stop_agent(task)
    assert (await _connect_once(control_plane, new)).connected.is_set()

    with control_plane.api() as api:
        audit = api.get("/v1/audit", params={"limit": 1000}).json()
    assert any(e["action"] == "cert.supersede" and e["target"] == new.agent_id for e in audit)

    # Kept in the store: still refused after a restart.
    await asyncio.to_thread(control_plane.restart)
    again = await _connect_once(control_plane, old)
    assert again.close_code == CloseCode.UNAUTHENTICATED and not again.connected.is_set()
    assert (await _connect_once(control_plane, new)).connected.is_set()


async def test_a_same_key_renewal_supersedes_nothing(control_plane):
    # What the real agent does (agent/channel.py renews for key.pem): an agent that
    # lost the answer must still connect with the certificate it has.
    agent, task = await start_agent(control_plane, "same-key")
    old = dataclasses.replace(agent.identity)
    await _renew(agent, new_key=False)
    await stop_agent(task)
    assert (await _connect_once(control_plane, old)).connected.is_set()
    assert (await _connect_once(control_plane, agent.identity)).connected.is_set()
