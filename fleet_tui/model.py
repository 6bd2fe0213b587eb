"""The fleet as the dashboard knows it, independent of Textual.

Stream messages mutate the model; the UI asks it, once per tick, what changed
and which rows to show in which order.  Nothing here draws.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fleet.protocol import (
    AgentHistory,
    AgentRemoved,
    AgentState,
    AgentUpdate,
    AlertCleared,
    AlertInfo,
    AlertRaised,
    CommandEvent,
    ConnectionInfo,
    ConnectionRemoved,
    ConnectionUpdate,
    HoldsUpdate,
    Presence,
    RemediationInfo,
    RemediationUpdate,
    RolloutInfo,
    RolloutUpdate,
    Snapshot,
    StreamError,
    StreamHeartbeat,
    StreamToClient,
)

from .format import STATE_RANK, shown_state
from .holds import Hold, hold_of

__all__ = [
    "UNHEALTHY",
    "AgentFilter",
    "FleetModel",
    "GroupHeader",
    "Row",
    "SortKey",
]

HISTORY_LEN = 120
"""Samples kept per agent: ten minutes at the default 5 s heartbeat."""

EVENTS_LEN = 50
"""Command events kept per agent for its detail view."""

REMEDIATIONS_KEPT = 200
"""Finished remediations kept (newest first) besides the pending and running ones,
which are all kept: the inbox and the agents' detail views show them."""

ROLLOUT_ACTIVE = frozenset({"waiting", "canary", "soaking", "wave", "pausing", "paused"})
"""Rollout states that are not over: one such rollout per pool at most."""

UNHEALTHY = frozenset({Presence.DEGRADED, Presence.STALE, Presence.OFFLINE})
"""States that count as unhealthy in the summary and in grouping."""


class SortKey(StrEnum):
    """Columns the fleet can be sorted by."""

    HEALTH = "health"
    NAME = "name"
    POOL = "pool"
    HEARTBEAT = "heartbeat"
    SKEW = "skew"
    CPU = "cpu"
    MEM = "mem"
    QUEUE = "queue"
    CERT = "cert"
    VERSION = "version"


@dataclass(frozen=True)
class GroupHeader:
    """A pool's heading row when the fleet is grouped by pool."""

    pool: str
    total: int
    unhealthy: int


Row = str | GroupHeader
"""An agent id or a group heading."""


@dataclass(frozen=True)
class AgentFilter:
    """What the ``/`` filter matches.

    Words match, case-insensitively, somewhere in the name, pool, labels
    (``key=value``) or version; all words must match.  ``state:stale,offline``
    (or ``is:stale``) keeps only those states; ``is:unhealthy`` keeps the
    degraded, stale and offline ones.
    """

    text: str = ""
    words: tuple[str, ...] = ()
    states: frozenset[Presence] = frozenset()

    @classmethod
    def parse(cls, text: str) -> AgentFilter:
        """Build a filter from what the user typed; unknown states are ignored."""
        words: list[str] = []
        states: set[Presence] = set()
        for token in text.lower().split():
            key, sep, value = token.partition(":")
            if sep and key in ("state", "is"):
                for name in value.split(","):
                    if name == "unhealthy":
                        states |= UNHEALTHY
                    elif name in Presence.__members__.values():
                        states.add(Presence(name))
            else:
                words.append(token)
        return cls(text=text, words=tuple(words), states=frozenset(states))

    @property
    def active(self) -> bool:
        """True when the filter hides anything at all."""
        return bool(self.words or self.states)

    def matches(self, agent: AgentState) -> bool:
        """True when the agent passes the filter."""
        if self.states and agent.state not in self.states:
            return False
        if not self.words:
            return True
        labels = " ".join(f"{k}={v}" for k, v in agent.labels.items())
        hay = f"{agent.name} {agent.pool} {labels} {agent.version or ''}".lower()
        return all(word in hay for word in self.words)


@dataclass
class History:
    """Recent samples of one agent, oldest first."""

    cpu: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))
    mem: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))
    queue: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))

    @classmethod
    def from_wire(cls, wire: AgentHistory) -> History:
        """Copy the snapshot's samples."""
        hist = cls()
        hist.cpu.extend(wire.cpu)
        hist.mem.extend(wire.mem)
        hist.queue.extend(wire.queue)
        return hist

    def add(self, agent: AgentState) -> None:
        """Append the agent's latest sample."""
        if agent.cpu_percent is not None:
            self.cpu.append(agent.cpu_percent)
        if agent.mem_host_percent is not None:
            self.mem.append(agent.mem_host_percent)
        if agent.queue_depth is not None:
            self.queue.append(agent.queue_depth)


def _last(key: Callable[[AgentState], Any]) -> Callable[[AgentState], tuple[bool, Any]]:
    """Sort key that puts agents with no value last, whatever the direction."""

    def wrapped(agent: AgentState) -> tuple[bool, Any]:
        value = key(agent)
        return (value is None, value if value is not None else 0)

    return wrapped


def _health(agent: AgentState) -> tuple[int, str]:
    return (STATE_RANK[agent.state], agent.name.lower())


# Each sort: its key, and whether the key is a ``_last`` (value may be missing).
# Numbers where bigger means worse sort descending by default.
_SORTS: dict[SortKey, tuple[Callable[[AgentState], Any], bool]] = {
    SortKey.HEALTH: (_health, False),
    SortKey.NAME: (lambda a: a.name.lower(), False),
    SortKey.POOL: (lambda a: (a.pool, a.name.lower()), False),
    SortKey.HEARTBEAT: (_last(lambda a: a.last_heartbeat_at), True),
    SortKey.SKEW: (_last(lambda a: None if a.skew_ms is None else -abs(a.skew_ms)), True),
    SortKey.CPU: (_last(lambda a: None if a.cpu_percent is None else -a.cpu_percent), True),
    SortKey.MEM: (
        _last(lambda a: None if a.mem_host_percent is None else -a.mem_host_percent),
        True,
    ),
    SortKey.QUEUE: (_last(lambda a: None if a.queue_depth is None else -a.queue_depth), True),
    SortKey.CERT: (_last(lambda a: a.cert_not_after), True),
    SortKey.VERSION: (_last(lambda a: a.version), True),
}

_HIGHEST_FIRST = frozenset(
    {SortKey.HEARTBEAT, SortKey.SKEW, SortKey.CPU, SortKey.MEM, SortKey.QUEUE}
)
"""Sorts whose first direction puts the largest value shown first (the oldest
heartbeat is the largest age)."""

# Fields whose change can move an agent under the health sort or the filter.
_ORDER_FIELDS = ("state", "name", "pool", "labels", "version")


class FleetModel:
    """Agents by id with their histories, alerts, connections, command events,
    rollouts and remediations, and the silences and maintenance windows last fetched.

    Args:
        clock: Returns the local wall-clock time; tests pass a fixed one.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.agents: dict[str, AgentState] = {}
        self.history: dict[str, History] = {}
        self.alerts: dict[str, AlertInfo] = {}
        """Open alerts by id."""
        self.connections: dict[str, ConnectionInfo] = {}
        self.holds: list[Hold] | None = None
        """Silences and maintenance windows as the stream last said (or as last fetched
        from an older server, which does not send them; None: not known yet)."""
        self.holds_live = False
        """Whether the stream carries :attr:`holds` (then nothing is fetched)."""
        self.holds_error: str | None = None
        """Why the last fetch of :attr:`holds` failed, or None."""
        self.events: dict[str, deque[CommandEvent]] = {}
        self.rollouts: dict[str, RolloutInfo] = {}
        """Rollouts by id, as the snapshot has them: those not over, and the latest
        finished one per pool."""
        self.remediations: dict[str, RemediationInfo] = {}
        """Remediations by id: every pending and running one, and the newest others."""
        self.role = "viewer"
        """The subscriber's role from the last snapshot."""
        self.seq: int | None = None
        """The last sequence number seen, to resume the stream from."""
        self.epoch: str | None = None
        """The stream epoch of the last snapshot, which ``seq`` counts within."""
        self.data_at: float | None = None
        """Local time of the last message from the stream."""
        self.server_offset = 0.0
        """Server clock minus local clock, from the last snapshot."""
        self.has_snapshot = False
        self.last_error: str | None = None
        self.sort_key = SortKey.HEALTH
        self.sort_reverse = False
        self.filter = AgentFilter()
        self.group_by_pool = False
        self.generation = 0
        """Rises with every change; the UI redraws only when it moved."""
        self._dirty: set[str] = set()
        self._order_stale = True
        self._rows: list[Row] = []
        self._index: dict[str, int] = {}

    # ------------------------------------------------------------------
    # Mutation

    def apply(self, msg: StreamToClient) -> None:
        """Fold one stream message into the model."""
        if isinstance(msg, StreamHeartbeat):
            return  # the link's business (the stream client's), not the fleet's
        self.data_at = self.clock()
        if isinstance(msg, StreamError):
            self.last_error = msg.message
            self.generation += 1
            return
        self.seq = msg.seq
        if isinstance(msg, Snapshot):
            self._apply_snapshot(msg)
        elif isinstance(msg, AgentUpdate):
            self.update_agent(msg.agent)
        elif isinstance(msg, AlertRaised):
            self.alerts[msg.alert.id] = msg.alert
        elif isinstance(msg, AlertCleared):
            self.alerts.pop(msg.alert.id, None)
        elif isinstance(msg, ConnectionUpdate):
            self.connections[msg.connection.name] = msg.connection
        elif isinstance(msg, AgentRemoved):
            self.remove_agent(msg.agent_id)
        elif isinstance(msg, ConnectionRemoved):
            self.connections.pop(msg.name, None)
        elif isinstance(msg, CommandEvent):
            self.events.setdefault(msg.agent_id, deque(maxlen=EVENTS_LEN)).append(msg)
            self._dirty.add(msg.agent_id)
        elif isinstance(msg, RolloutUpdate):
            self.put_rollout(msg.rollout)
        elif isinstance(msg, HoldsUpdate):
            self.holds = [hold_of(h) for h in msg.holds]
            self.holds_live = True
            self.holds_error = None
        elif isinstance(msg, RemediationUpdate):
            self.put_remediation(msg.remediation)
        self.generation += 1

    def _apply_snapshot(self, snap: Snapshot) -> None:
        self.epoch = snap.epoch or None
        self.agents = {a.id: a for a in snap.agents}
        self.history = {
            a.id: History.from_wire(snap.history[a.id]) if a.id in snap.history else History()
            for a in snap.agents
        }
        self.alerts = {al.id: al for al in snap.alerts if al.cleared_at is None}
        self.connections = {c.name: c for c in snap.connections}
        self.rollouts = {r.id: r for r in snap.rollouts}
        self.remediations = {r.id: r for r in snap.remediations}
        if snap.holds is not None:
            self.holds = [hold_of(h) for h in snap.holds]
            self.holds_live = True
            self.holds_error = None
        self.role = snap.role
        self.server_offset = snap.server_time - self.clock()
        self.has_snapshot = True
        self.last_error = None
        self._dirty.update(self.agents)
        self._order_stale = True

    def update_agent(self, agent: AgentState) -> None:
        """Replace one agent's state, adding a history sample on a new heartbeat."""
        old = self.agents.get(agent.id)
        self.agents[agent.id] = agent
        hist = self.history.get(agent.id)
        if hist is None:
            hist = self.history[agent.id] = History()
        if old is None or old.last_heartbeat_at != agent.last_heartbeat_at:
            hist.add(agent)
        self._dirty.add(agent.id)
        if (
            old is None
            or self.sort_key is not SortKey.HEALTH
            or any(getattr(old, f) != getattr(agent, f) for f in _ORDER_FIELDS)
        ):
            self._order_stale = True
        self.generation += 1

    def remove_agent(self, agent_id: str) -> None:
        """Drop a decommissioned agent: its row, history and events go."""
        if self.agents.pop(agent_id, None) is None:
            return
        self.history.pop(agent_id, None)
        self.events.pop(agent_id, None)
        self._dirty.discard(agent_id)
        self._order_stale = True
        self.generation += 1

    def merge_events(self, agent_id: str, events: Iterable[CommandEvent]) -> None:
        """Add command events fetched over REST, without duplicates, oldest first."""
        known = self.events.setdefault(agent_id, deque(maxlen=EVENTS_LEN))
        merged = {e.request_id: e for e in known}
        for event in events:
            merged.setdefault(event.request_id, event)
        known.clear()
        known.extend(sorted(merged.values(), key=lambda e: e.at)[-EVENTS_LEN:])
        self.generation += 1

    def put_rollout(self, rollout: RolloutInfo) -> None:
        """Add or replace a rollout (from the stream, or a REST answer).

        Kept is what a fresh snapshot would have: the rollouts not over, and of the
        finished ones only the latest of each pool."""
        self.rollouts[rollout.id] = rollout
        finished = [
            r
            for r in self.rollouts.values()
            if r.pool == rollout.pool and r.state not in ROLLOUT_ACTIVE
        ]
        finished.sort(key=lambda r: (r.finished_at or r.updated_at, r.created_at))
        for old in finished[:-1]:
            del self.rollouts[old.id]
        self.generation += 1

    def put_remediation(self, remediation: RemediationInfo) -> None:
        """Add or replace a remediation (from the stream, or a REST answer)."""
        self.remediations[remediation.id] = remediation
        self.generation += 1
        over = [
            r for r in self.remediations.values() if r.state not in ("pending_approval", "running")
        ]
        if len(over) > REMEDIATIONS_KEPT:
            over.sort(key=lambda r: r.decided_at or r.finished_at or r.created_at, reverse=True)
            for old in over[REMEDIATIONS_KEPT:]:
                del self.remediations[old.id]

    def take_dirty(self) -> set[str]:
        """The ids of agents changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    # ------------------------------------------------------------------
    # View settings

    def set_sort(self, key: SortKey, reverse: bool | None = None) -> None:
        """Sort by ``key``; choosing the current key again flips the direction."""
        if reverse is None:
            reverse = (not self.sort_reverse) if key is self.sort_key else False
        self.sort_key, self.sort_reverse = key, reverse
        self._touch_order()

    def sort_descending(self) -> bool:
        """True when the sorted column's largest values come first: the header
        then shows ``▼``, as spreadsheets and k9s do (``▲``: smallest first)."""
        return (self.sort_key in _HIGHEST_FIRST) != self.sort_reverse

    def set_filter(self, text: str) -> None:
        """Filter by what the user typed (see :class:`AgentFilter`)."""
        self.filter = AgentFilter.parse(text)
        self._touch_order()

    def set_grouping(self, by_pool: bool) -> None:
        """Group the rows under a heading per pool, or not."""
        self.group_by_pool = by_pool
        self._touch_order()

    def _touch_order(self) -> None:
        self._order_stale = True
        self.generation += 1

    # ------------------------------------------------------------------
    # Queries

    def rows(self) -> list[Row]:
        """The rows to show, in order; recomputed only when something moved."""
        if self._order_stale:
            self._rows = self._compute_rows()
            self._index = {r: i for i, r in enumerate(self._rows) if isinstance(r, str)}
            self._order_stale = False
        return self._rows

    def shown_count(self) -> int:
        """How many agents pass the filter."""
        self.rows()
        return len(self._index)

    def row_of(self, agent_id: str) -> int | None:
        """The row index of an agent, or None when filtered out."""
        self.rows()
        return self._index.get(agent_id)

    def _compute_rows(self) -> list[Row]:
        flt = self.filter
        agents: Iterable[AgentState] = self.agents.values()
        if flt.active:
            agents = (a for a in agents if flt.matches(a))
        key, nullable = _SORTS[self.sort_key]
        if nullable:
            # Agents with no value stay last, whichever way the column is sorted.
            have: list[AgentState] = []
            missing: list[AgentState] = []
            for agent in agents:
                (missing if key(agent)[0] else have).append(agent)
            ordered = sorted(have, key=key, reverse=self.sort_reverse)
            ordered += sorted(missing, key=_health)
        else:
            ordered = sorted(agents, key=key, reverse=self.sort_reverse)
        if not self.group_by_pool:
            return [a.id for a in ordered]
        pools: dict[str, list[AgentState]] = {}
        for agent in ordered:
            pools.setdefault(agent.pool, []).append(agent)

        def pool_order(item: tuple[str, list[AgentState]]) -> tuple[int, str]:
            name, members = item
            return (-sum(a.state in UNHEALTHY for a in members), name)

        rows: list[Row] = []
        for name, members in sorted(pools.items(), key=pool_order):
            bad = sum(a.state in UNHEALTHY for a in members)
            rows.append(GroupHeader(pool=name, total=len(members), unhealthy=bad))
            rows.extend(a.id for a in members)
        return rows

    def counts(self) -> Counter[Presence]:
        """How many agents are in each state, as the rows show it
        (:func:`~fleet_tui.format.shown_state`: the counters agree with the table)."""
        now = self.server_now()
        return Counter(shown_state(a, now) for a in self.agents.values())

    def open_alerts(self) -> list[AlertInfo]:
        """Open alerts, newest first."""
        return sorted(self.alerts.values(), key=lambda al: al.raised_at, reverse=True)

    def pending_approvals(self) -> list[RemediationInfo]:
        """Remediations waiting for an operator, the longest-waiting first."""
        pending = (r for r in self.remediations.values() if r.state == "pending_approval")
        return sorted(pending, key=lambda r: (r.created_at, r.id))

    def remediations_of(self, agent_id: str) -> list[RemediationInfo]:
        """One agent's remediations, newest first."""
        mine = (r for r in self.remediations.values() if r.agent_id == agent_id)
        return sorted(mine, key=lambda r: r.created_at, reverse=True)

    def server_now(self) -> float:
        """The server's clock now, as best known (for ages of server times)."""
        return self.clock() + self.server_offset

    def data_age(self) -> float | None:
        """Seconds since the stream last said anything, or None before it did."""
        return None if self.data_at is None else max(0.0, self.clock() - self.data_at)
