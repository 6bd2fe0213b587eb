"""The live fleet: agents in memory, presence timers, alerts, pins, connections.

Heartbeats change memory only; :meth:`Fleet.flush` writes what changed to the
store in one batch every few seconds (write-behind).  Alerts are rare and must
survive a crash: each change is stored (in one transaction per batch) before it
is published, by :meth:`Fleet.store_alerts`.  Every change that a dashboard
shows goes out on the event bus.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from functools import partial
from typing import Any

import msgspec

from fleet.protocol import (
    MAX_DISCONNECTS,
    PROTOCOL_VERSION,
    AgentState,
    AlertCleared,
    AlertInfo,
    AlertRaised,
    CloseCode,
    ConnectionInfo,
    ConnectionRemoved,
    ConnectionSchedule,
    ConnectionUpdate,
    Heartbeat,
    HoldInfo,
    HoldsUpdate,
    Presence,
    RemediationInfo,
    RolloutInfo,
    Snapshot,
)

from .alerts import (
    AGENT_KINDS,
    PRESENCE_KINDS,
    AlertBook,
    Finding,
    agent_findings,
    pools_text,
    presence_finding,
    stopped_reason,
    to_info,
)
from .config import Settings
from .events import EventBus
from .instruments import Instruments
from .live import LiveAgent
from .pin_rules import EffectivePin, effective
from .policy import ProbePolicy
from .schedules import ScheduleWatch, at_risk_message, describe
from .store.base import (
    AlertRecord,
    AuditRecord,
    ConnectionRecord,
    PinRecord,
    PoolRecord,
    Store,
)
from .suppress import Suppression

__all__ = ["Fleet", "config_hash"]

log = logging.getLogger("controlplane.fleet")

HEALTHY = {Presence.CONNECTED, Presence.DEGRADED}

AT_RISK = "connection_at_risk"
"""The alert kind of a connection whose next scheduled run has no route."""

FLUSH_SLICE = 1_000
"""The write-behind flush yields to the loop after this many agents' status: at
19,000 agents one flush held the loop for over a second (docs/scaling.md)."""

PAUSE_TICKS = 5
"""A gap between two ticks longer than this many ``tick_s`` means the server itself
was paused (SIGSTOP, a suspended VM, a blocked loop): it could not hear anyone."""


def config_hash(config: dict[str, Any]) -> str:
    """The hash an agent reports for its effective config: sha256 of canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


class Fleet:
    def __init__(
        self, settings: Settings, store: Store, instruments: Instruments | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.instruments = instruments or Instruments()
        """Timings for ``/metrics`` (the flush here, commands in the control plane)."""
        self.bus = EventBus(settings.replay_len, settings.subscriber_buffer, self._state_of)
        self.agents: dict[str, LiveAgent] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.pins: dict[tuple[str, str], PinRecord] = {}
        self.pools: dict[str, ProbePolicy] = {}
        self.connections: dict[str, ConnectionRecord] = {}
        self.connection_state: dict[str, ConnectionInfo] = {}
        self.via: dict[str, str] = {}
        self.schedule_watch = ScheduleWatch()
        """Each connection's next scheduled run, for the at-risk check."""
        """Connection name -> id of the agent it is routed through."""
        self.members: dict[str, dict[str, LiveAgent]] = {}
        """Pool -> its agents, so routing never scans the whole fleet."""
        self.by_name: dict[str, LiveAgent] = {}
        """Name -> agent: enrollment checks a name is free, the API finds agents by
        name, without a scan of the fleet (100,000 enrollments made it quadratic)."""
        self._grace_over = settings.restart_grace_s <= 0
        """After a restart, agents get time to dial in before absence is alerted."""
        self.started_mono = time.monotonic()
        self._grace_until = self.started_mono + settings.restart_grace_s
        """Until then (monotonic) absence is neither alerted nor cleared: a restart
        or a pause of the server, not the agents."""
        self.alerts = AlertBook(settings.alert_hold_s)
        self.published: dict[str, AlertInfo] = {}
        """Open alerts as stored and published: what snapshots and the API show."""
        self.suppression = Suppression(self)
        """Acknowledgements, silences, maintenance windows: what is held back, and why."""
        self._suppression_due = 0.0
        """When a silence, window or acknowledgement next starts or ends (wall clock)."""
        self._holds_shown: list[HoldInfo] = []
        """The silences and windows dashboards were last told of."""
        self.revoked_serials: set[str] = set()
        self._alert_queue: list[tuple[AlertRecord, bool]] = []
        """Alert changes (a copy, raised?) waiting to be stored, then published."""
        self._alerts_queued = asyncio.Event()
        self._alert_lock = asyncio.Lock()
        self.alert_listeners: list[Callable[[AlertInfo, bool], None]] = []
        """Called with each alert change (raised or changed: True) once it is stored
        and published, e.g. the notifier; they must not block or await."""
        self.pauses = 0
        """Pauses of the server noticed by the timers."""
        self._disconnects: list[tuple[str, list[dict[str, Any]]]] = []
        """Disconnect records agents reported, waiting for the next flush."""
        self.heartbeats = 0
        self.rollout_infos: Callable[[], list[RolloutInfo]] = list
        """The rollouts a snapshot shows (set by :mod:`controlplane.rollouts`)."""
        self.remediation_infos: Callable[[], list[RemediationInfo]] = list
        """The remediations a snapshot shows (set by :mod:`controlplane.remediation`)."""
        self.replica_id: str | None = None
        """This replica's id when several share the store (:mod:`controlplane.replicas`)."""
        self.leader = True
        """Whether this replica runs the fleet-wide checks: pools, connections, schedules,
        and the agents nobody holds. Always, on a single control plane."""
        self.on_alerts: Callable[[list[tuple[AlertRecord, bool]]], None] | None = None
        """Told each batch of alert changes once stored (the replicas announce them)."""

    def judges(self, agent: LiveAgent) -> bool:
        """Whether this replica runs the agent's checks and timers: it holds the agent's
        channel, or nobody does and this replica leads. The others follow what its
        judge announces, so that each alert is raised once."""
        if agent.holder is None:
            return self.leader
        return agent.holder == self.replica_id

    @property
    def in_grace(self) -> bool:
        """Right after a start: agents may not have dialled in yet, so their absence
        says nothing (no presence alert, no health gate sample)."""
        return not self._grace_over

    def _state_of(self, agent_id: str) -> AgentState | None:
        agent = self.agents.get(agent_id)
        return agent.to_state() if agent is not None else None

    # ------------------------------------------------------------------ load

    async def load(self) -> None:
        """Rebuild the live view from the store (after a start or a restart)."""
        for rec in await self.store.list_agents():
            self._index(LiveAgent(rec, self.settings.history_len))
        self.pins = await self._read_pins()
        self.pools = await self._read_pools()
        self.connections = {c.name: c for c in await self.store.list_connections()}
        # Expired ones are refused as expired: every renewal supersedes a certificate,
        # and a year of them for 10,000 agents would be millions of serials.
        self.revoked_serials = await self.store.revoked_serials(valid_at=time.time())
        stored = await self.store.list_alerts(include_cleared=False)
        self.alerts.load(stored)
        self.published = {r.id: to_info(r) for r in stored if r.cleared_at is None}
        now = time.time()
        await self._read_suppression(now)
        self.published = {k: self.suppression.annotate(a, now) for k, a in self.published.items()}
        self._holds_shown = self.hold_infos(now)
        for agent in self.agents.values():
            self.apply_pin(agent)
            agent.dirty = False
        self.update_connections(publish=False)

    # ------------------------------------------------------------- reloads
    # Another replica changed a record: read it again (controlplane/replicas.py).

    async def _read_pins(self) -> dict[tuple[str, str], PinRecord]:
        return {(p.scope, p.name): p for p in await self.store.list_pins()}

    async def _read_pools(self) -> dict[str, ProbePolicy]:
        return {
            pool.name: ProbePolicy.model_validate({**pool.policy, "min_healthy": pool.min_healthy})
            for pool in await self.store.list_pools()
        }

    async def _read_suppression(self, now: float) -> None:
        self.suppression.load(
            [a for a in await self.store.list_acks() if a.alert_id in self.published],
            await self.store.list_silences(ended_after=now),
            await self.store.list_maintenance(ended_after=now),
        )

    async def reload_pins(self) -> None:
        self.pins = await self._read_pins()
        for agent in self.agents.values():
            self.apply_pin(agent)
            if self.judges(agent):
                self.refresh(agent)

    async def reload_pools(self) -> None:
        self.pools = await self._read_pools()
        self.check_pools()

    async def reload_connections(self) -> None:
        self.connections = {c.name: c for c in await self.store.list_connections()}
        for name in list(self.connection_state):
            if name not in self.connections:
                del self.connection_state[name]
                self.via.pop(name, None)
                self.schedule_watch.forget(name)
                self.bus.publish(partial(_connection_removed, name))
        self.update_connections()

    async def reload_suppression(self) -> None:
        await self._read_suppression(time.time())
        self.refresh_suppression(force=True)

    # ------------------------------------------------------------- snapshot

    def snapshot(self, role: str) -> Snapshot:
        return Snapshot(
            protocol_version=PROTOCOL_VERSION,
            seq=self.bus.seq,
            epoch=self.bus.epoch,
            server_time=time.time(),
            agents=[a.to_state() for a in self.agents.values()],
            history={a.id: a.history() for a in self.agents.values()},
            alerts=self.alert_infos(),
            connections=list(self.connection_state.values()),
            role=role,
            rollouts=self.rollout_infos(),
            remediations=self.remediation_infos(),
            holds=self.hold_infos(time.time()),
        )

    def hold_infos(self, now: float) -> list[HoldInfo]:
        """The silences and maintenance windows not ended by ``now``, in a fixed order."""
        sup = self.suppression
        holds = [
            HoldInfo(
                kind="silence",
                id=s.id,
                what=" ".join(
                    f"{key}={value}"
                    for key, value in (
                        ("agent", s.agent),
                        ("pool", s.pool),
                        ("connection", s.connection),
                        ("kind", s.kind),
                    )
                    if value
                ),
                starts_at=s.starts_at,
                ends_at=s.ends_at,
                created_by=s.created_by,
                reason=s.reason,
            )
            for s in sup.silences.values()
            if s.ends_at > now
        ]
        for w in sup.windows.values():
            if w.ends_at > now:
                agent = self.agents.get(w.target) if w.scope == "agent" else None
                name = agent.record.name if agent is not None else w.target
                holds.append(
                    HoldInfo(
                        kind="maintenance",
                        id=w.id,
                        what=f"{w.scope} {name}",
                        starts_at=w.starts_at,
                        ends_at=w.ends_at,
                        created_by=w.created_by,
                        reason=w.reason,
                    )
                )
        holds.sort(key=lambda h: (h.kind, h.starts_at, h.id))
        return holds

    def publish_holds(self, now: float) -> None:
        """Tell dashboards the silences and windows, when they changed."""
        holds = self.hold_infos(now)
        if holds != self._holds_shown:
            self._holds_shown = holds
            self.bus.publish(partial(_holds_update, holds))

    # ------------------------------------------------------------------ pins

    def effective_pin(self, agent: LiveAgent) -> EffectivePin:
        """The version and config pinned for ``agent``, each from its own pin or its pool's."""
        return effective(
            self.pins.get(("agent", agent.id)), self.pins.get(("pool", agent.record.pool))
        )

    def apply_pin(self, agent: LiveAgent) -> None:
        """Set the agent's pinned version and config hash from the pins in force."""
        pin = self.effective_pin(agent)
        agent.pinned_version = pin.version
        agent.pinned_config_hash = config_hash(pin.config) if pin.config is not None else None

    async def set_pin(self, pin: PinRecord) -> None:
        await self.store.set_pin(pin)
        self.pins[(pin.scope, pin.name)] = pin
        for agent in self.agents.values():
            if (pin.scope == "agent" and agent.id == pin.name) or (
                pin.scope == "pool" and agent.record.pool == pin.name
            ):
                self.apply_pin(agent)
                self.refresh(agent)

    # ------------------------------------------------------------- presence

    def _index(self, agent: LiveAgent) -> None:
        self.agents[agent.id] = agent
        self.members.setdefault(agent.record.pool, {})[agent.id] = agent
        self.by_name.setdefault(agent.record.name, agent)

    def unindex(self, agent: LiveAgent) -> None:
        """Drop the agent from the live fleet, its pool and the names."""
        self.agents.pop(agent.id, None)
        members = self.members.get(agent.record.pool)
        if members is not None:
            members.pop(agent.id, None)
            if not members:
                del self.members[agent.record.pool]
        if self.by_name.get(agent.record.name) is agent:
            del self.by_name[agent.record.name]

    def add_agent(self, agent: LiveAgent) -> None:
        self._index(agent)
        self.apply_pin(agent)
        self.bus.publish_agent(agent.id)

    def on_connect(self, agent: LiveAgent, addr: str | None) -> None:
        now, mono = time.time(), time.monotonic()
        agent.connected_at = now
        agent.remote_addr = addr
        agent.heartbeat_interval_s = self.settings.heartbeat_interval_s
        # Connecting counts as a sign of life: stale timers start now.
        agent.last_heartbeat_mono = mono
        agent.last_heartbeat_at = agent.last_heartbeat_at or now
        agent.stopped_at = agent.stop_reason = None
        agent.set_state(Presence.CONNECTED)
        self.refresh(agent)

    def on_disconnect(
        self, agent: LiveAgent, goodbye: str | None = None, *, reconnecting: bool = False
    ) -> None:
        """The agent's channel closed; ``goodbye`` is what it said first, if it did.

        An agent that said goodbye is ``stopped``: away on purpose, not an incident
        (as Buildkite and Teleport treat an agent stopped cleanly), so no stale or
        offline alert follows; its open presence alerts clear.

        ``reconnecting``: it closed the channel to come back at once with a renewed
        key (:mod:`controlplane.rekeys`); it is not away, and no offline alert pages
        anyone at each renewal.  Should it not come back, the presence timers turn
        it stale, then offline, as for an agent whose heartbeats stop.
        """
        agent.channel = None
        if agent.state not in (*HEALTHY, Presence.STALE):
            return
        if reconnecting:
            self.refresh(agent)  # no channel: not usable for commands meanwhile
            return
        if goodbye is not None:
            agent.stopped_at = time.time()
            agent.stop_reason = goodbye
            agent.set_state(Presence.STOPPED)
        else:
            agent.set_state(Presence.OFFLINE)
        self.refresh(agent)

    def on_heartbeat(self, agent: LiveAgent, hb: Heartbeat) -> None:
        self.heartbeats += 1
        agent.apply(hb, time.time(), time.monotonic())
        if agent.state in (Presence.STALE, Presence.OFFLINE, Presence.PENDING):
            agent.set_state(Presence.CONNECTED)
        self.refresh(agent)

    def on_disconnects(self, agent: LiveAgent, records: list[dict[str, Any]]) -> None:
        """Keep what an agent reported about its earlier channels, for the next flush.

        Written behind, in one batch with the others: after a restart of the control
        plane every agent reports its "going away" close at once, and one
        transaction per agent would slow the reconnect storm down.
        """
        if records:
            self._disconnects.append((agent.id, records))

    async def flush_disconnects(self) -> int:
        """Store the reported disconnect records now; returns how many agents' batches."""
        batch, self._disconnects = self._disconnects, []
        try:
            await self.store.add_disconnects(batch, MAX_DISCONNECTS)
        except BaseException:
            self._disconnects[:0] = batch
            raise
        return len(batch)

    def on_time(self, agent: LiveAgent, t1: float, t2: float, t3: float, t4: float) -> None:
        offset = ((t2 - t1) + (t3 - t4)) / 2
        rtt = (t4 - t1) - (t3 - t2)
        agent.rtt_ms = round(max(rtt, 0.0) * 1000, 2)
        # The offset is known to within half the round trip: a reply held up that
        # long (a pause of the server, a congested path) cannot tell a skew.
        if rtt * 1000 / 2 < self.settings.skew_warn_ms:
            agent.skew_ms = round(offset * 1000, 1)
        agent.dirty = True
        self.refresh(agent)

    def refresh(self, agent: LiveAgent) -> None:
        """Re-run the checks of one agent, reconcile its alerts, publish its state."""
        if not self.judges(agent):
            self.bus.publish_agent(agent.id)  # its judge announces the checks' outcome
            return
        now, mono = time.time(), time.monotonic()
        findings = agent_findings(agent, self.settings, now) if agent.state in HEALTHY else []
        agent.reasons = [f.message for f in findings]
        if agent.state in HEALTHY:
            agent.set_state(Presence.DEGRADED if findings else Presence.CONNECTED)
        presence = presence_finding(agent)
        if agent.state == Presence.STOPPED:
            agent.reasons = [stopped_reason(agent)]
        # Away, the agent's other checks cannot be measured: they stay as they were.
        kinds = AGENT_KINDS if agent.state in HEALTHY else PRESENCE_KINDS
        unknown: frozenset[str] = frozenset()
        if presence is not None:
            agent.reasons = [presence.message]
            if mono < self._grace_until:
                unknown = PRESENCE_KINDS
            else:
                findings = [presence]
        if agent.state == Presence.REVOKED:
            changed: tuple[list[AlertRecord], list[AlertRecord]] = (
                [],
                self.alerts.clear_target(agent.id),
            )
        else:
            changed = self.alerts.reconcile(agent.id, kinds, findings, unknown)
        self.publish_alerts(*changed)
        usable = agent.state in HEALTHY and agent.channel is not None
        if usable != agent.usable:
            agent.usable = usable
            self._usable_changed(agent)
        self.bus.publish_agent(agent.id)

    def tick(self) -> None:
        """Presence timers: stale after missed heartbeats, offline after a while stale.

        Only transitions publish: a tick over a quiet fleet sends nothing.
        """
        mono = time.monotonic()
        grace_ended = not self._grace_over and mono >= self._grace_until
        if grace_ended:
            # Alerts held back since the restart are raised now.
            self._grace_over = True
            self.update_connections()
        for agent in self.agents.values():
            if not self.judges(agent):
                continue
            if agent.state in HEALTHY and agent.last_heartbeat_mono is not None:
                silent = mono - agent.last_heartbeat_mono
                if silent > self.settings.stale_after_intervals * agent.heartbeat_interval_s:
                    agent.set_state(Presence.STALE)
                    agent.stale_since_mono = mono
                    self.refresh(agent)
            elif agent.state == Presence.STALE:
                since = agent.stale_since_mono or mono
                if mono - since > self.settings.offline_after_stale_s:
                    agent.set_state(Presence.OFFLINE)
                    self.refresh(agent)
                    self._close_silent(agent)
                elif grace_ended:
                    self.refresh(agent)
            elif agent.state == Presence.OFFLINE and grace_ended:
                self.refresh(agent)
        self.check_pools()
        self.check_schedules()
        self.publish_alerts([], self.alerts.expire(time.time()))
        self.refresh_suppression(force=False)

    def paused(self, seconds: float) -> None:
        """The server was paused this long: do not blame the agents for it.

        Their silence timers and the alerts' hold timers move on by the pause, and
        absence is not judged for a grace (as after a restart; at least the stale
        threshold), so that what they sent meanwhile can come in.
        """
        self.pauses += 1
        log.warning(
            "the control plane was paused for %.1f s (no tick ran): presence is not judged "
            "for a grace while agents are heard again",
            seconds,
        )
        for agent in self.agents.values():
            if agent.last_heartbeat_mono is not None:
                agent.last_heartbeat_mono += seconds
            if agent.stale_since_mono is not None:
                agent.stale_since_mono += seconds
        self.alerts.shift(seconds)
        grace = max(
            self.settings.restart_grace_s,
            self.settings.stale_after_intervals * self.settings.heartbeat_interval_s,
        )
        self._grace_until = max(self._grace_until, time.monotonic() + grace)
        self._grace_over = False

    def _close_silent(self, agent: LiveAgent) -> None:
        # An agent silent this long whose socket is still open is gone (a host
        # that died without a FIN) or stuck: close its side so commands get a
        # clear 409 and its resources go. The agents' listener sends no pings of
        # its own (agents ping every 20 s; a ping task per connection costs
        # memory), so this is what reaps half-open connections there.
        channel = agent.channel
        if channel is not None:
            task = asyncio.get_running_loop().create_task(
                channel.close(CloseCode.SILENT, "no heartbeat for too long: closing; reconnect")
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # ---------------------------------------------------------- pools, conns

    def healthy_in_pool(self, pool: str) -> list[LiveAgent]:
        agents = [a for a in self.members.get(pool, {}).values() if a.usable]
        # Connected before degraded, then the least busy.
        agents.sort(key=lambda a: (a.state != Presence.CONNECTED, a.queue_depth or 0))
        return agents

    def route(self, conn: ConnectionRecord) -> tuple[str, LiveAgent] | None:
        """The agent a probe of ``conn`` should go through now, and its pool."""
        for pool in conn.pools:
            healthy = self.healthy_in_pool(pool)
            if healthy:
                return pool, healthy[0]
        return None

    def _usable_changed(self, agent: LiveAgent) -> None:
        # Re-route only the connections this can change: in a reconnect storm of
        # thousands of agents, each connect costs a glance at each connection.
        pool = agent.record.pool
        for conn in self.connections.values():
            if pool not in conn.pools:
                continue
            info = self.connection_state.get(conn.name)
            if info is not None and info.routable and info.via_pool in conn.pools:
                if agent.usable:
                    preferred = conn.pools.index(pool) < conn.pools.index(info.via_pool)
                    if not preferred:
                        continue
                elif self.via.get(conn.name) != agent.id:
                    continue
            self.route_connection(conn)

    def route_connection(self, conn: ConnectionRecord, publish: bool = True) -> None:
        """Choose the agent a connection goes through; alert and publish on a change."""
        route = self.route(conn)
        info = ConnectionInfo(
            name=conn.name,
            host=conn.host,
            port=conn.port,
            pools=conn.pools,
            routable=route is not None,
            via_pool=route[0] if route else None,
            via_agent=route[1].record.name if route else None,
        )
        if route is not None:
            self.via[conn.name] = route[1].id
        else:
            self.via.pop(conn.name, None)
        finding = (
            [_finding("unroutable", f"no healthy agent in {pools_text(conn.pools)}")]
            if not info.routable
            else []
        )
        # In a grace its agents may not have dialled in yet: unknown, not unroutable.
        unknown = {"unroutable"} if finding and not self._grace_over else set()
        self.publish_alerts(
            *self._reconcile(f"connection:{conn.name}", {"unroutable"}, finding, unknown)
        )
        self._set_connection_info(conn, info, publish)

    def _set_connection_info(
        self, conn: ConnectionRecord, info: ConnectionInfo, publish: bool, now: float | None = None
    ) -> None:
        info = self._with_schedule(conn, info, time.time() if now is None else now)
        if self.connection_state.get(conn.name) != info:
            self.connection_state[conn.name] = info
            if publish:
                self.bus.publish(partial(_connection_update, info))

    def _with_schedule(
        self, conn: ConnectionRecord, info: ConnectionInfo, now: float
    ) -> ConnectionInfo:
        """``info`` with the connection's next run, raising or clearing its at-risk alert.

        At risk: a run is due within ``schedule_lead_s`` and no agent can route it now.
        Each run is its own alert: when the run passes, its alert clears (the job ran,
        or failed, by then) and the next run is judged afresh.
        """
        target = f"connection:{conn.name}"
        run, passed = self.schedule_watch.next(conn.name, conn.schedules, now)
        if passed:
            self.publish_alerts(*self._reconcile(target, {AT_RISK}, []))
        due = run is not None and run.at - now <= self.settings.schedule_lead_s
        finding = (
            [_finding(AT_RISK, at_risk_message(run, conn.pools, now))]
            if run is not None and due and not info.routable
            else []
        )
        # In a grace its agents may not have dialled in yet, as for unroutable.
        unknown = {AT_RISK} if finding and not self._grace_over else set()
        self.publish_alerts(*self._reconcile(target, {AT_RISK}, finding, unknown))
        return msgspec.structs.replace(
            info,
            schedules=[
                ConnectionSchedule(cron=s.cron, timezone=s.timezone, name=s.name)
                for s in conn.schedules
            ],
            next_run_at=run.at if run is not None else None,
            next_run=describe(run, now) if run is not None else None,
            at_risk=(AT_RISK, target) in self.alerts.open,
        )

    def check_schedules(self, now: float | None = None) -> None:
        """The periodic at-risk check: every connection with a schedule, each tick."""
        for conn in self.connections.values():
            info = self.connection_state.get(conn.name)
            if info is not None and (conn.schedules or info.next_run_at is not None):
                self._set_connection_info(conn, info, publish=True, now=now)

    def update_connections(self, publish: bool = True) -> None:
        """Re-route every connection."""
        for conn in self.connections.values():
            self.route_connection(conn, publish)

    async def add_connection(self, conn: ConnectionRecord) -> ConnectionInfo:
        await self.store.add_connection(conn)
        self.connections[conn.name] = conn
        self.route_connection(conn)
        return self.connection_state[conn.name]

    async def set_policy(self, pool: str, policy: ProbePolicy) -> None:
        fields = policy.as_dict()
        min_healthy = fields.pop("min_healthy")
        await self.store.set_pool(PoolRecord(pool, fields, min_healthy))
        self.pools[pool] = policy
        self.check_pools()

    # ------------------------------------------------------- suppression

    def agent_of(self, agent_id: str) -> tuple[str, str] | None:
        """(name, pool) of an agent: for :class:`~.suppress.Suppression`."""
        agent = self.agents.get(agent_id)
        return (agent.record.name, agent.record.pool) if agent is not None else None

    def pools_of_connection(self, name: str) -> list[str]:
        conn = self.connections.get(name)
        return list(conn.pools) if conn is not None else []

    def pool_shortfall(self, pool: str) -> tuple[int, list[str]]:
        """(healthy agents missing to reach the pool's minimum, its unusable agents' ids)."""
        policy = self.pools.get(pool)
        members = self.members.get(pool, {}).values()
        healthy = sum(a.usable for a in members)
        wanted = policy.min_healthy if policy is not None else 0
        return max(wanted - healthy, 0), [a.id for a in members if not a.usable]

    def refresh_suppression(self, force: bool = True) -> int:
        """Publish again the open alerts whose acknowledgement, silence or maintenance
        changed (a change by the API, a window starting or ending); returns how many.

        The tick calls it with ``force`` False: then only when something started or
        ended since, or (with agents in maintenance) for the pools' alerts, whose
        shortfall follows the fleet: a tick during a mass outage stays cheap.
        """
        now = time.time()
        due = force or now >= self._suppression_due
        if not due and not self.suppression.agent_windows:
            return 0
        if due:
            self.suppression.expire(now)
            self._suppression_due = self.suppression.next_change(now)
            self.publish_holds(now)
        changed = 0
        for alert_id, info in list(self.published.items()):
            if not due and not info.target.startswith("pool:"):
                continue
            fresh = self.suppression.annotate(info, now)
            if fresh != info:
                self.published[alert_id] = fresh
                self.bus.publish(partial(_raised, fresh))
                changed += 1
        return changed

    def check_pools(self) -> None:
        """Raise or clear each pool's below-minimum alert."""
        for name, policy in self.pools.items():
            if policy.min_healthy <= 0:
                # No minimum (any more): an alert raised under the old one clears.
                if ("pool_below_min", f"pool:{name}") in self.alerts.open:
                    self.publish_alerts(*self._reconcile(f"pool:{name}", {"pool_below_min"}, []))
                continue
            healthy = sum(a.usable for a in self.members.get(name, {}).values())
            findings = (
                [_finding("pool_below_min", f"{healthy} healthy of {policy.min_healthy} needed")]
                if healthy < policy.min_healthy
                else []
            )
            unknown = {"pool_below_min"} if findings and not self._grace_over else set()
            self.publish_alerts(
                *self._reconcile(f"pool:{name}", {"pool_below_min"}, findings, unknown)
            )

    # --------------------------------------------------------------- alerts

    def _reconcile(
        self, target: str, kinds: set[str], findings: list[Finding], unknown: Collection[str] = ()
    ) -> tuple[list[AlertRecord], list[AlertRecord]]:
        """:meth:`AlertBook.reconcile` of a fleet-wide target (a pool, a connection):
        on the leading replica only, the others follow what it announces."""
        if not self.leader:
            return [], []
        return self.alerts.reconcile(target, kinds, findings, unknown)

    def publish_alerts(self, raised: list[AlertRecord], cleared: list[AlertRecord]) -> None:
        """Queue alert changes to be stored, then published (never the other way).

        Never awaits (heartbeats call it); the alert writer stores the batch in
        one transaction and publishes it, and :meth:`store_alerts` does so at once.
        """
        if not raised and not cleared:
            return
        # Copies: the book goes on changing its records while these wait.
        self._alert_queue.extend((replace(rec), True) for rec in raised)
        self._alert_queue.extend((replace(rec), False) for rec in cleared)
        self._alerts_queued.set()

    async def store_alerts(self) -> int:
        """Store the queued alert changes in one transaction, then publish them.

        Raises the store's error (the changes stay queued, in order, and are
        neither shown nor published until stored).  Returns the changes written.
        """
        async with self._alert_lock:
            batch, self._alert_queue = self._alert_queue, []
            self._alerts_queued.clear()
            if not batch:
                return 0
            try:
                await self.store.save_alerts([rec for rec, _ in batch])
            except BaseException:
                self._alert_queue[:0] = batch
                self._alerts_queued.set()
                raise
            now = time.time()
            for rec, raised in batch:
                self._show_alert(rec, raised, now)
            if self.on_alerts is not None:
                self.on_alerts(batch)
            return len(batch)

    def _show_alert(self, rec: AlertRecord, raised: bool, now: float) -> None:
        """Publish a stored alert change and tell the listeners."""
        info = self.suppression.annotate(to_info(rec), now)
        if raised:
            self.published[info.id] = info
            self.bus.publish(partial(_raised, info))
        else:
            self.published.pop(info.id, None)
            self.suppression.acks.pop(info.id, None)
            self.bus.publish(partial(_cleared, info))
        for listener in self.alert_listeners:
            try:
                listener(info, raised)
            except Exception:
                log.exception("an alert listener failed on %s", info.id)

    # ------------------------------------------------------------- replicas

    def apply_remote_alert(self, rec: AlertRecord, raised: bool) -> None:
        """An alert change another replica stored: keep the book and the view alike."""
        key = (rec.kind, rec.target)
        if raised:
            self.alerts.open[key] = rec
        elif key in self.alerts.open and self.alerts.open[key].id == rec.id:
            del self.alerts.open[key]
            self.alerts.passing.pop(key, None)
        self._show_alert(rec, raised, time.time())

    def apply_remote(self, state: AgentState, holder: str | None, epoch: int) -> LiveAgent | None:
        """Follow an agent's state as the replica that judges it announced it.

        Returns the agent when this replica held it with an older lease: a newer
        connection elsewhere fences it, and the caller closes its channel here.
        """
        agent = self.agents.get(state.id)
        if agent is None or epoch < agent.epoch:
            return None
        fenced = agent if agent.channel is not None and epoch > agent.epoch else None
        if agent.channel is not None and fenced is None:
            return None  # ours, and newer than what came in
        agent.holder, agent.epoch = holder, epoch
        agent.take_remote(state, time.monotonic())
        usable = state.state in HEALTHY
        if usable != agent.usable:
            agent.usable = usable
            self._usable_changed(agent)
        self.bus.publish_agent(agent.id)
        return fenced

    def release_holder(self, replica: str) -> int:
        """``replica`` is gone: nobody holds its agents until they dial in again, and
        the leader's timers judge them. Their silence counts from now, not from their
        last heartbeat: they get the usual stale threshold to reconnect to another
        replica through the balancer, so a failover does not flap their presence
        (Nomad's lesson, its issues 1747 and 7645)."""
        released = 0
        mono = time.monotonic()
        for agent in self.agents.values():
            if agent.holder == replica:
                agent.holder = None
                agent.remote = None
                if agent.last_heartbeat_mono is not None:
                    agent.last_heartbeat_mono = max(agent.last_heartbeat_mono, mono)
                released += 1
        return released

    async def settle_alerts(self) -> None:
        """Store and publish the queued alert changes now, so that what is published
        next follows them; if the store fails they stay queued for the writer."""
        try:
            await self.store_alerts()
        except Exception as exc:
            log.error("storing alerts failed, will retry (not published until stored): %s", exc)

    async def run_alert_writer(self) -> None:
        """Store and publish alert changes as they come; retry while the store fails."""
        while True:
            await self._alerts_queued.wait()
            try:
                await self.store_alerts()
            except Exception as exc:
                log.error("storing alerts failed, will retry (not published until stored): %s", exc)
                await asyncio.sleep(1.0)

    def alert_infos(self) -> list[AlertInfo]:
        """Open alerts as stored and published, newest first."""
        return sorted(self.published.values(), key=lambda a: a.raised_at, reverse=True)

    # ---------------------------------------------------------- write-behind

    async def flush(self) -> int:
        """Write dirty agents (and any queued alerts) in one batch; returns rows written."""
        started = time.perf_counter()
        ok = False
        rows = []
        try:
            for agent in list(self.agents.values()):
                if agent.dirty:
                    agent.dirty = False
                    rows.append((agent.id, agent.status()))
                    if len(rows) % FLUSH_SLICE == 0:
                        await asyncio.sleep(0)  # heartbeats and streams go on meanwhile
            try:
                await self.store.save_agent_status(rows)
            except Exception:
                # Keep what could not be written: it is retried on the next flush.
                for agent_id, _ in rows:
                    if agent_id in self.agents:
                        self.agents[agent_id].dirty = True
                raise
            written = len(rows) + await self.store_alerts() + await self.flush_disconnects()
            ok = True
            return written
        finally:
            self.instruments.flush(ok, time.perf_counter() - started)

    async def run_timers(self) -> None:
        last_flush = last_tick = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.tick_s)
            now = time.monotonic()
            gap, last_tick = now - last_tick, now
            if gap > PAUSE_TICKS * self.settings.tick_s:
                self.paused(gap - self.settings.tick_s)
            try:
                self.tick()
            except Exception:
                log.exception("presence tick failed")
            if time.monotonic() - last_flush >= self.settings.flush_interval_s:
                last_flush = time.monotonic()
                try:
                    await self.flush()
                except Exception as exc:
                    log.error("write-behind flush failed, will retry: %s", exc)

    async def audit(
        self, actor: str, action: str, target: str, result: str, detail: str = ""
    ) -> None:
        await self.store.audit(AuditRecord(time.time(), actor, action, target, result, detail))

    def audit_later(
        self, actor: str, action: str, target: str, result: str, detail: str = ""
    ) -> None:
        """:meth:`audit` from code that may not await (a failure is logged)."""
        record = AuditRecord(time.time(), actor, action, target, result, detail)

        async def write() -> None:
            try:
                await self.store.audit(record)
            except Exception as exc:
                log.error("audit of %s %s failed: %s", action, target, exc)

        task = asyncio.get_running_loop().create_task(write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _holds_update(holds: list[HoldInfo], seq: int) -> HoldsUpdate:
    return HoldsUpdate(seq=seq, holds=holds)


def _connection_removed(name: str, seq: int) -> ConnectionRemoved:
    return ConnectionRemoved(seq=seq, name=name)


def _connection_update(info: ConnectionInfo, seq: int) -> ConnectionUpdate:
    return ConnectionUpdate(seq=seq, connection=info)


def _raised(info: AlertInfo, seq: int) -> AlertRaised:
    return AlertRaised(seq=seq, alert=info)


def _cleared(info: AlertInfo, seq: int) -> AlertCleared:
    return AlertCleared(seq=seq, alert=info)


def _finding(kind: str, message: str) -> Finding:
    return Finding(kind, "critical", message)
