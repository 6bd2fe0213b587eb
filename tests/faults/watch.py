"""What a dashboard sees: every event-stream message, with the moment it arrived."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets

from fleet.protocol import AgentState, AgentUpdate, Snapshot, StreamToClient, parse_stream_message
from tests.helpers.server import RunningServer
from tests.helpers.stream import subscribe


@dataclass
class Seen:
    at: float
    """``time.monotonic()`` when the message arrived."""
    message: StreamToClient


@dataclass
class EventLog:
    """Reads one ``/v1/events`` subscription in the background and keeps everything."""

    ws: websockets.ClientConnection
    seen: list[Seen] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, server: RunningServer) -> EventLog:
        log = cls(await subscribe(server))
        log._task = asyncio.create_task(log._read())
        return log

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                self.seen.append(Seen(time.monotonic(), parse_stream_message(raw)))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.ws.close()

    async def wait(
        self,
        predicate: Callable[[StreamToClient], bool],
        timeout: float,
        what: str,
        after: float = 0.0,
    ) -> Seen:
        """The first message that arrived at or after ``after`` and satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.seen:
                if seen.at >= after and predicate(seen.message):
                    return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)

    async def agent(
        self,
        agent_id: str,
        check: Callable[[AgentState], bool],
        timeout: float,
        what: str,
        after: float = 0.0,
    ) -> Seen:
        """The first update (or snapshot row) of ``agent_id`` for which ``check`` holds."""

        def matches(message: StreamToClient) -> bool:
            if isinstance(message, AgentUpdate):
                return message.agent.id == agent_id and check(message.agent)
            if isinstance(message, Snapshot):
                return any(a.id == agent_id and check(a) for a in message.agents)
            return False

        return await self.wait(matches, timeout, what, after)
