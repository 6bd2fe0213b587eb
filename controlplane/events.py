"""The event stream's hub: sequence numbers, replay for ``since=SEQ``, subscribers.

Agent updates are full states, so they need no replay log: the bus keeps the
sequence number of each agent's latest update, and a resuming client gets every
agent changed after its ``since`` plus the other events (alerts, connections,
command results) kept in a bounded log.  Sequence numbers count within an
*epoch*, a random id drawn when the bus is made (at every server start): a
``since`` from another epoch means nothing here, so it gets a snapshot.

Publishing an agent costs a dictionary write per subscriber and never awaits, so
a slow subscriber never slows ingest or the others.  Each subscriber keeps only
*which* agents changed; the state is read and serialised when the subscriber's
writer drains, once per agent however many heartbeats came in between (the
latest state wins), and the JSON is shared by every subscriber that drains the
same update.  Other events queue up to a bound; past it the subscriber is marked
for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from fleet.protocol import AgentState, AgentUpdate, StreamToClient, dump

__all__ = ["EventBus", "StreamCounts", "Subscriber"]

OtherEvent = StreamToClient
StateOf = Callable[[str], AgentState | None]


@dataclass(frozen=True)
class StreamCounts:
    """What the subscribers' buffers did, summed (see :meth:`EventBus.counts`)."""

    coalesced: int = 0
    """Agent updates replaced by a newer one before they were sent."""
    resets: int = 0
    """Times a subscriber fell behind and got a fresh snapshot instead of deltas."""
    dropped: int = 0
    """Pending updates discarded at those resets."""

    def __add__(self, other: StreamCounts) -> StreamCounts:
        return StreamCounts(
            self.coalesced + other.coalesced,
            self.resets + other.resets,
            self.dropped + other.dropped,
        )


class Subscriber:
    """One dashboard's pending deltas."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.agents: dict[str, int] = {}
        """Agent id -> sequence number of its latest update not yet sent."""
        self.others: deque[OtherEvent] = deque()
        self.needs_snapshot = False
        self.wake = asyncio.Event()
        self.coalesced = 0
        """Agent updates replaced before they were sent: a measure of lag."""
        self.resets = 0
        """Times this subscriber fell behind and was sent a fresh snapshot instead."""
        self.dropped = 0
        """Pending updates discarded by those resets (the snapshot carries their news)."""

    def offer_agent(self, agent_id: str, seq: int) -> None:
        if agent_id in self.agents:
            self.coalesced += 1
        self.agents[agent_id] = seq
        self.wake.set()

    def offer_other(self, event: OtherEvent) -> None:
        if self.needs_snapshot:
            return
        self.others.append(event)
        if len(self.others) > self.limit:
            self.reset_to_snapshot()
        self.wake.set()

    def reset_to_snapshot(self) -> None:
        self.resets += 1
        self.dropped += len(self.agents) + len(self.others)
        self.needs_snapshot = True
        self.agents.clear()
        self.others.clear()
        self.wake.set()


class EventBus:
    def __init__(self, replay_len: int, subscriber_limit: int, state_of: StateOf) -> None:
        self.seq = 0
        self.epoch = secrets.token_hex(8)
        """This bus's epoch: sent in every snapshot, required to resume."""
        self.subscriber_limit = subscriber_limit
        self.state_of = state_of
        self._subscribers: set[Subscriber] = set()
        self._agent_seq: dict[str, int] = {}
        self._frames: dict[str, tuple[int, str]] = {}
        """Serialised agent updates by agent id, shared by subscribers."""
        self._log: deque[OtherEvent] = deque(maxlen=replay_len)
        self._floor = 0
        """The ``since`` below which the log no longer covers the other events."""
        self._gone = StreamCounts()
        """What subscribers that left had counted (the totals never go down)."""
        self.on_agent: Callable[[str], None] | None = None
        """Told each agent published (the replicas announce the ones this one judges)."""

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def subscribe(self) -> Subscriber:
        sub = Subscriber(self.subscriber_limit)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            self._gone = self._gone + StreamCounts(sub.coalesced, sub.resets, sub.dropped)

    def counts(self) -> StreamCounts:
        """Coalesced updates, snapshot resets and dropped updates since start, over
        every subscriber (those that left too): read by ``/metrics``.

        Counted per subscriber on the hot path (an integer each) and summed here,
        at scrape time.
        """
        total = self._gone
        for sub in self._subscribers:
            total = total + StreamCounts(sub.coalesced, sub.resets, sub.dropped)
        return total

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish_agent(self, agent_id: str) -> None:
        seq = self.next_seq()
        self._agent_seq[agent_id] = seq
        for sub in self._subscribers:
            sub.offer_agent(agent_id, seq)
        if self.on_agent is not None:
            self.on_agent(agent_id)

    def forget_agent(self, agent_id: str) -> None:
        """Drop what the bus holds for an agent removed from the fleet.

        Pending updates of it are skipped at drain (its state is gone); the
        removal itself is published as an ordinary event, so it replays.
        """
        self._agent_seq.pop(agent_id, None)
        self._frames.pop(agent_id, None)

    def publish(self, make: Callable[[int], OtherEvent]) -> None:
        """Publish a non-agent event built with its sequence number."""
        event = make(self.next_seq())
        if len(self._log) == self._log.maxlen and self._log:
            self._floor = self._log[0].seq
        self._log.append(event)
        for sub in self._subscribers:
            sub.offer_other(event)

    def agent_frame(self, agent_id: str, seq: int) -> tuple[int, str] | None:
        """The JSON of an agent's update at ``seq`` or later, built once and shared."""
        latest = self._agent_seq.get(agent_id, seq)
        cached = self._frames.get(agent_id)
        if cached is not None and cached[0] == latest:
            return cached
        state = self.state_of(agent_id)
        if state is None:
            return None
        frame = (latest, dump(AgentUpdate(seq=latest, agent=state)))
        self._frames[agent_id] = frame
        return frame

    def drain(self, sub: Subscriber) -> list[str]:
        """Everything pending for ``sub`` as JSON frames, in sequence order."""
        out: list[tuple[int, str]] = []
        for agent_id, seq in sub.agents.items():
            frame = self.agent_frame(agent_id, seq)
            if frame is not None:
                out.append(frame)
        out.extend((e.seq, dump(e)) for e in sub.others)
        sub.agents.clear()
        sub.others.clear()
        sub.wake.clear()
        out.sort(key=lambda f: f[0])
        return [text for _, text in out]

    def recent(self) -> list[OtherEvent]:
        """The non-agent events still held for replay, oldest first."""
        return list(self._log)

    def can_resume(self, since: int, epoch: str | None) -> bool:
        """True when deltas after ``since`` of ``epoch`` are all still held.

        False for another epoch (a ``since`` from before a restart), for a
        sequence number this bus never issued, and for one older than the log.
        """
        return epoch == self.epoch and self._floor <= since <= self.seq

    def resume(self, since: int) -> list[str]:
        """The deltas after ``since`` as JSON frames; only when :meth:`can_resume`."""
        out: list[tuple[int, str]] = []
        for agent_id, seq in self._agent_seq.items():
            if seq > since:
                frame = self.agent_frame(agent_id, seq)
                if frame is not None:
                    out.append(frame)
        out.extend((e.seq, dump(e)) for e in self._log if e.seq > since)
        out.sort(key=lambda f: f[0])
        return [text for _, text in out]
