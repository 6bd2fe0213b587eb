"""The event stream: snapshot then deltas, resume with since, slow subscribers coalesce."""

from __future__ import annotations

import asyncio

from controlplane.events import EventBus
from fleet.protocol import (
    AgentState,
    AgentUpdate,
    AlertInfo,
    AlertRaised,
    Presence,
    Snapshot,
    parse_stream_message,
)
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe


def state(i: int, cpu: float = 1.0) -> AgentState:
    return AgentState(id=f"a{i}", name=f"a{i}", pool="p", state=Presence.CONNECTED, cpu_percent=cpu)


def alert(i: int) -> AlertInfo:
    return AlertInfo(
        id=str(i), kind="stale", severity="warning", target=f"a{i}", message="m", raised_at=1.0
    )


class Agents:
    """A stand-in for the fleet's state: the bus reads it when a subscriber drains."""

    def __init__(self) -> None:
        self.states: dict[str, AgentState] = {}
        self.reads = 0

    def set(self, s: AgentState) -> str:
        self.states[s.id] = s
        return s.id

    def __call__(self, agent_id: str) -> AgentState | None:
        self.reads += 1
        return self.states.get(agent_id)


def test_slow_subscriber_coalesces_latest_state_per_agent():
    agents = Agents()
    bus = EventBus(replay_len=100, subscriber_limit=50, state_of=agents)
    slow, fast = bus.subscribe(), bus.subscribe()
    for round_ in range(100):
        for i in range(10):
            bus.publish_agent(agents.set(state(i, cpu=float(round_))))
        if round_ % 10 == 0:
            bus.drain(fast)
    batch = [parse_stream_message(f) for f in bus.drain(slow)]
    assert len(batch) == 10, "one pending update per agent however many were published"
    assert all(isinstance(m, AgentUpdate) and m.agent.cpu_percent == 99.0 for m in batch)
    assert slow.coalesced == 990
    assert [m.seq for m in batch] == sorted(m.seq for m in batch)


def test_frames_are_built_once_and_shared_by_subscribers():
    agents = Agents()
    bus = EventBus(replay_len=100, subscriber_limit=50, state_of=agents)
    subs = [bus.subscribe() for _ in range(5)]
    for i in range(20):
        bus.publish_agent(agents.set(state(i)))
    frames = [bus.drain(sub) for sub in subs]
    assert all(f == frames[0] for f in frames) and len(frames[0]) == 20
    assert agents.reads == 20, "state read and serialised once per agent, not per subscriber"


def test_subscriber_too_far_behind_gets_a_snapshot():
    bus = EventBus(replay_len=100, subscriber_limit=5, state_of=Agents())
    sub = bus.subscribe()
    for i in range(6):
        bus.publish(lambda seq, i=i: AlertRaised(seq=seq, alert=alert(i)))
    assert sub.needs_snapshot and bus.drain(sub) == []


def test_resume_replays_only_what_changed():
    agents = Agents()
    bus = EventBus(replay_len=3, subscriber_limit=50, state_of=agents)
    for i in range(5):
        bus.publish_agent(agents.set(state(i)))
    mark = bus.seq
    bus.publish_agent(agents.set(state(1, cpu=50)))
    bus.publish(lambda seq: AlertRaised(seq=seq, alert=alert(1)))
    assert bus.can_resume(mark, bus.epoch)
    assert not bus.can_resume(mark, None), "no epoch: the since may be from another start"
    assert not bus.can_resume(mark, "0" * 16), "another epoch: another server start"
    replay = [parse_stream_message(f) for f in bus.resume(mark)]
    assert [m.type for m in replay] == ["agent", "alert_raised"]
    assert replay[0].agent.cpu_percent == 50
    for i in range(5):
        bus.publish(lambda seq, i=i: AlertRaised(seq=seq, alert=alert(i)))
    assert not bus.can_resume(mark, bus.epoch), "the log no longer reaches back"
    assert not bus.can_resume(bus.seq + 10, bus.epoch), "a sequence never issued"
    assert EventBus(3, 50, agents).epoch != bus.epoch, "each bus (server start) its own epoch"


async def test_resume_over_the_wire(control_plane):
    ws = await subscribe(control_plane)
    snap = await next_event(ws)
    assert isinstance(snap, Snapshot)
    agent, task = await start_agent(control_plane, "resumer")
    last = await next_event(ws, lambda m: isinstance(m, AgentUpdate))
    await ws.close()
    agent.queue_depth = 42
    await asyncio.sleep(1.0)
    ws = await subscribe(control_plane, since=last.seq, epoch=snap.epoch)
    first = await next_event(ws)
    assert isinstance(first, AgentUpdate), "resumed with deltas, not a snapshot"
    assert first.seq > last.seq
    await next_event(ws, lambda m: isinstance(m, AgentUpdate) and m.agent.queue_depth == 42)
    await ws.close()
    ws = await subscribe(control_plane, since=10**9, epoch=snap.epoch)
    assert isinstance(await next_event(ws), Snapshot)
    await ws.close()
    await stop_agent(task)
