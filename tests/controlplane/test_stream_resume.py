"""Resuming the event stream across a server restart: a new epoch means a snapshot.

Sequence numbers restart at every server start.  A dashboard that resumes with a
``since`` from before a restart, once the new server's sequence has passed it,
must get a fresh snapshot (the restart's changes included), never deltas that
skip them.
"""

from __future__ import annotations

import asyncio

import pytest

from fleet.protocol import Snapshot, StreamToClient
from fleet_tui.client import StreamClient
from fleet_tui.model import FleetModel
from tests.helpers.server import RunningServer
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe

pytestmark = pytest.mark.timeout(90)


async def _current(server: RunningServer) -> Snapshot:
    ws = await subscribe(server)
    try:
        snap = await next_event(ws)
    finally:
        await ws.close()
    assert isinstance(snap, Snapshot)
    return snap


async def _changes_after_restart(server: RunningServer, agent_id: str, since: int) -> Snapshot:
    """A revocation and new connections, until the new sequence passes ``since``."""
    async with server.aapi() as api:
        revoked = await api.post(f"/v1/agents/{agent_id}/revoke")
        assert revoked.status_code == 200, revoked.text
        n = 0
        while (now := await _current(server)).seq <= since:
            n += 1
            body = {"name": f"after-{n}", "host": "127.0.0.1", "port": 5432, "pools": ["db"]}
            created = await api.post("/v1/connections", json=body)
            assert created.status_code == 201, created.text
    return now


async def test_a_resume_from_before_a_restart_gets_a_fresh_snapshot(control_plane):
    agent, task = await start_agent(control_plane, "survivor", pool="db", interval_s=0.2)
    ws = await subscribe(control_plane)
    seen: list[tuple[str, int]] = []
    epoch = ""
    try:
        # A subscriber that records (epoch, seq) as a dashboard does.
        async with asyncio.timeout(10):
            while len(seen) < 4:
                msg = await next_event(ws)
                if isinstance(msg, Snapshot):
                    epoch = msg.epoch
                seen.append((epoch, msg.seq))
    finally:
        await ws.close()
    old_epoch, since = seen[-1]
    assert old_epoch and since > 0

    control_plane.kill()
    control_plane.start()
    now = await _changes_after_restart(control_plane, agent.identity.agent_id, since)
    assert now.epoch != old_epoch, "a new epoch at every start"
    assert now.seq > since

    ws = await subscribe(control_plane, since=since, epoch=old_epoch)
    try:
        first = await next_event(ws)
    finally:
        await ws.close()
    assert isinstance(first, Snapshot), f"a resume across a restart got {first.type}"
    assert first.epoch == now.epoch
    states = {a.id: a.state for a in first.agents}
    assert states[agent.identity.agent_id] == "revoked"
    assert {c.name for c in first.connections} >= {"after-1"}
    await stop_agent(task)


async def test_a_since_the_server_never_issued_gets_a_snapshot(control_plane):
    snap = await _current(control_plane)
    ws = await subscribe(control_plane, since=snap.seq + 1000, epoch=snap.epoch)
    try:
        assert isinstance(await next_event(ws), Snapshot)
    finally:
        await ws.close()


async def test_the_dashboards_stream_client_resumes_in_its_epoch_and_not_across_one(
    control_plane,
):
    agent, task = await start_agent(control_plane, "watched", pool="db", interval_s=0.2)
    model = FleetModel()
    kinds: list[str] = []

    def feed(msg: StreamToClient) -> None:
        kinds.append(msg.type)
        model.apply(msg)

    def client(since: int | None = None, epoch: str | None = None) -> StreamClient:
        return StreamClient(
            control_plane.url,
            control_plane.admin_token,
            control_plane.ssl_context(),
            on_message=feed,
            on_status=lambda _s: None,
            since=since,
            epoch=epoch,
            backoff_cap=0.5,
        )

    async def consume(stream: StreamClient, until) -> None:  # type: ignore[no-untyped-def]
        run = asyncio.create_task(stream.run())
        try:
            async with asyncio.timeout(15):
                while not until():  # noqa: ASYNC110 - polling a condition
                    await asyncio.sleep(0.02)
        finally:
            await stream.stop()
            run.cancel()

    first = client()
    await consume(first, lambda: model.has_snapshot and len(kinds) >= 3)
    assert first.epoch and first.epoch == model.epoch
    assert first.last_seq == model.seq

    # Same server: the client sends its epoch and gets deltas, no snapshot.
    kinds.clear()
    again = client(first.last_seq, first.epoch)
    await consume(again, lambda: len(kinds) >= 2)
    assert "snapshot" not in kinds, f"resumed within the epoch, got {kinds}"

    control_plane.kill()
    control_plane.start()
    assert again.last_seq is not None
    now = await _changes_after_restart(control_plane, agent.identity.agent_id, again.last_seq)

    kinds.clear()
    after = client(again.last_seq, again.epoch)
    await consume(after, lambda: len(kinds) >= 1)
    assert kinds[0] == "snapshot", f"a resume across a restart got {kinds}"
    assert after.epoch == now.epoch == model.epoch
    assert model.agents[agent.identity.agent_id].state == "revoked"
    assert "after-1" in model.connections
    await stop_agent(task)
