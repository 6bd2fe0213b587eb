"""The event stream's hub: sequence numbers, replay for ``since=SEQ``, subscribers.

Agent updates are full states, so they never need a replay log: the bus keeps the
sequence number of each agent's latest update, and a resuming client gets every
agent changed after its ``since`` plus the other events (alerts, connections,
command results) kept in a bounded log.  Each subscriber has its own pending set:
agent updates coalesce (the latest state per agent wins) and other events queue up
to a bound; past it the subscriber is marked for a fresh snapshot.  Publishing
never awaits, so a slow subscriber never slows ingest or the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from fleet.protocol import AgentState, AgentUpdate, StreamToClient

__all__ = ["EventBus", "Subscriber"]

OtherEvent = StreamToClient


class Subscriber:
    """One dashboard's pending deltas."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.agents: dict[str, AgentUpdate] = {}
        self.others: deque[OtherEvent] = deque()
        self.needs_snapshot = False
        self.wake = asyncio.Event()
        self.coalesced = 0
        """Agent updates replaced before they were sent: a measure of lag."""

    def offer_agent(self, update: AgentUpdate) -> None:
        if update.agent.id in self.agents:
            self.coalesced += 1
        self.agents[update.agent.id] = update
        self.wake.set()

    def offer_other(self, event: OtherEvent) -> None:
        if self.needs_snapshot:
            return
        self.others.append(event)
        if len(self.others) > self.limit:
            self.reset_to_snapshot()
        self.wake.set()

    def reset_to_snapshot(self) -> None:
        self.needs_snapshot = True
        self.agents.clear()
        self.others.clear()
        self.wake.set()

    def drain(self) -> list[StreamToClient]:
        """Everything pending, in sequence order."""
        batch: list[StreamToClient] = [*self.agents.values(), *self.others]
        self.agents.clear()
        self.others.clear()
        self.wake.clear()
        batch.sort(key=lambda m: m.seq)
        return batch


class EventBus:
    def __init__(self, replay_len: int, subscriber_limit: int) -> None:
        self.seq = 0
        self.subscriber_limit = subscriber_limit
        self._subscribers: set[Subscriber] = set()
        self._agent_seq: dict[str, int] = {}
        self._log: deque[OtherEvent] = deque(maxlen=replay_len)
        self._floor = 0
        """The ``since`` below which the log no longer covers the other events."""

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.subscriber_limit)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish_agent(self, state: AgentState) -> None:
        update = AgentUpdate(seq=self.next_seq(), agent=state)
        self._agent_seq[state.id] = update.seq
        for sub in self._subscribers:
            sub.offer_agent(update)

    def publish(self, make: Callable[[int], OtherEvent]) -> None:
        """Publish a non-agent event built with its sequence number."""
        event = make(self.next_seq())
        if len(self._log) == self._log.maxlen and self._log:
            self._floor = self._log[0].seq
        self._log.append(event)
        for sub in self._subscribers:
            sub.offer_other(event)

    def recent(self) -> list[OtherEvent]:
        """The non-agent events still held for replay, oldest first."""
        return list(self._log)

    def can_resume(self, since: int) -> bool:
        return self._floor <= since <= self.seq

    def resume(
        self, since: int, agents: Callable[[str], AgentState | None]
    ) -> list[StreamToClient]:
        """The deltas after ``since``; call only when :meth:`can_resume` is true."""
        out: list[StreamToClient] = []
        for agent_id, seq in self._agent_seq.items():
            if seq > since:
                state = agents(agent_id)
                if state is not None:
                    out.append(AgentUpdate(seq=seq, agent=state))
        out.extend(e for e in self._log if e.seq > since)
        out.sort(key=lambda m: m.seq)
        return out
