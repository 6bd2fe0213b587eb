"""Event-stream and simulated-agent helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx
import websockets

from fleet.protocol import (
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    StreamToClient,
    Subscribe,
    dump,
    parse_stream_message,
)
from fleet.simagent import Identity, SimAgent, enroll
from tests.helpers.server import RunningServer


async def subscribe(
    server: RunningServer,
    token: str | None = None,
    since: int | None = None,
    epoch: str | None = None,
) -> websockets.ClientConnection:
    ws = await websockets.connect(
        server.ws_url + "/v1/events",
        ssl=server.ssl_context(),
        additional_headers={"Authorization": f"Bearer {token or server.admin_token}"},
        max_size=MAX_STREAM_FRAME_BYTES,
    )
    await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION, since=since, epoch=epoch)))
    return ws


async def next_event(
    ws: websockets.ClientConnection,
    predicate: Callable[[StreamToClient], bool] = lambda m: True,
    timeout: float = 10.0,
) -> StreamToClient:
    """The next event on ``ws`` for which ``predicate`` holds."""

    async def find() -> StreamToClient:
        while True:
            msg = parse_stream_message(await ws.recv())
            if predicate(msg):
                return msg

    return await asyncio.wait_for(find(), timeout)


async def start_agent(
    server: RunningServer, name: str, pool: str = "default", **attrs: Any
) -> tuple[SimAgent, asyncio.Task[None]]:
    """Enroll a simulated agent and run its channel; waits until it is connected."""
    token = server.enrollment_token(pool)
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context()) as client:
        identity = await enroll(client, token, name)
    agent = SimAgent(identity=identity, ws_url=server.ws_url, ca_file=server.ca_file, **attrs)
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 10)
    return agent, task


async def stop_agent(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def connect_once(server: RunningServer, identity: Identity) -> SimAgent:
    """One channel attempt with ``identity`` (a key and certificate in hand); the
    simulated agent returned tells how it ended (``connected``, ``close_code``,
    ``close_message``)."""
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


async def eventually(
    predicate, timeout: float = 10.0, what: str = "condition", interval: float = 0.1
):  # type: ignore[no-untyped-def]
    """Await ``predicate()`` (sync or async) until it is truthy; fail with ``what`` and
    its last value on timeout.  Never blocks the loop the simulated agents run in."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = predicate()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
