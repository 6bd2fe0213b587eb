"""The event-stream consumer against a scripted websocket server on loopback.

The real control plane is used in test_live.py; this one scripts what the
control plane rarely does (bad frames, a refusal mid-stream, resume numbers).
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.server import ServerConnection, serve

from fleet.protocol import AgentUpdate, CloseCode, StreamHeartbeat, dump, replace
from fleet_tui.client import ConnectionState, LinkStatus, StreamClient
from fleet_tui.sample import sample_snapshot


async def _run_against(handler, until, timeout: float = 10.0):
    messages: list[object] = []
    statuses: list[LinkStatus] = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        client = StreamClient(
            f"http://127.0.0.1:{port}",
            "flta_test",
            None,
            on_message=messages.append,
            on_status=statuses.append,
            backoff_cap=0.3,
        )
        task = asyncio.create_task(client.run())
        async with asyncio.timeout(timeout):
            while not until(client, messages, statuses):  # noqa: ASYNC110 - polling a condition
                await asyncio.sleep(0.02)
        await client.stop()
        task.cancel()
    return client, messages, statuses


async def test_bad_frames_are_skipped_and_reconnect_resumes_after_the_last_seq():
    subscribes: list[dict] = []
    snap = replace(sample_snapshot(8, seq=10), epoch="e1")
    agent = snap.agents[0]

    async def handler(ws: ServerConnection) -> None:
        assert ws.request.headers["Authorization"] == "Bearer flta_test"
        subscribes.append(json.loads(await ws.recv()))
        if len(subscribes) == 1:
            await ws.send("this is not json")
            await ws.send(json.dumps({"type": "from_the_future", "seq": 1}))
            await ws.send(dump(snap))
            await ws.send(dump(AgentUpdate(seq=11, agent=agent)))
            await ws.close()  # the server goes away: the client comes back
        else:
            await ws.send(dump(AgentUpdate(seq=12, agent=agent)))
            await ws.wait_closed()

    client, messages, statuses = await _run_against(handler, lambda c, m, s: len(m) >= 3)
    assert client.bad_frames == 2
    assert [type(m).__name__ for m in messages] == ["Snapshot", "AgentUpdate", "AgentUpdate"]
    assert subscribes[0].get("since") is None
    assert subscribes[1]["since"] == 11  # resumed after the last sequence number
    assert subscribes[1]["epoch"] == "e1"  # of the snapshot's epoch
    assert client.epoch == "e1"
    states = [s.state for s in statuses]
    assert states[:3] == [ConnectionState.LIVE, ConnectionState.RECONNECTING, ConnectionState.LIVE]
    assert statuses[1].detail.startswith("the server closed the stream; retrying in")


async def test_a_refusal_close_stops_retrying_and_says_what_to_do():
    attempts = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal attempts
        attempts += 1
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "type": "error",
                    "code": CloseCode.UNAUTHENTICATED,
                    "message": "refused: unknown token",
                }
            )
        )
        await ws.close(CloseCode.UNAUTHENTICATED, "unknown token")

    _, _, statuses = await _run_against(
        handler, lambda c, m, s: c.status.state is ConnectionState.REFUSED
    )
    await asyncio.sleep(0.5)
    assert attempts == 1
    refused = next(s for s in statuses if s.state is ConnectionState.REFUSED)
    assert "token is unknown or expired" in refused.detail
    assert "FLEET_TOKEN" in refused.detail


async def test_heartbeats_keep_the_link_live_and_their_absence_reads_not_answering():
    """Beats are the link's own business: not passed on, no sequence number kept.
    The scripted server beats twice, then goes quiet with the connection open, then
    speaks again."""
    snap = replace(sample_snapshot(8, seq=10), epoch="e1")
    speak_again = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(dump(snap))
        for _ in range(2):
            await ws.send(dump(StreamHeartbeat(server_time=1.0, interval_s=0.2)))
            await asyncio.sleep(0.2)
        await speak_again.wait()  # hung: the TCP connection stays open
        await ws.send(dump(StreamHeartbeat(server_time=2.0, interval_s=0.2)))
        await ws.wait_closed()

    def until(client, messages, statuses):
        if client.status.state is ConnectionState.NOT_ANSWERING:
            speak_again.set()
        return speak_again.is_set() and client.status.state is ConnectionState.LIVE

    client, messages, statuses = await _run_against(handler, until)
    assert [type(m).__name__ for m in messages] == ["Snapshot"]
    assert client.last_seq == 10 and client.beat_interval == 0.2
    states = [s.state for s in statuses if s.state is not ConnectionState.STOPPED]
    assert states == [ConnectionState.LIVE, ConnectionState.NOT_ANSWERING, ConnectionState.LIVE]
    assert "2 heartbeats missed" in statuses[1].detail


async def test_a_server_that_sends_no_heartbeats_is_never_called_not_answering():
    """An older control plane: quiet is not taken for hung."""

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(dump(sample_snapshot(8, seq=3)))
        await ws.wait_closed()

    started = asyncio.get_running_loop().time()

    def until(client, messages, statuses):
        return asyncio.get_running_loop().time() - started > 1.5

    client, _, statuses = await _run_against(handler, until)
    states = [s.state for s in statuses if s.state is not ConnectionState.STOPPED]
    assert states == [ConnectionState.LIVE]
    assert client.beat_interval is None
