"""Replicas: several control planes on one PostgreSQL share the fleet.

Each replica holds the agents whose channels reached it (a session lease per agent,
with an epoch that fences an older connection elsewhere) and runs their checks; it
learns the rest from the **outbox**, a table of batches with a bigint sequence that
every replica appends to and reads by sequence.  ``NOTIFY`` only wakes the readers
(the payload is the sequence number, far below its 8,000-byte limit); a reader that
missed one finds the batch at its next poll.  An insert holds an advisory lock to its
commit, so sequence numbers commit in order and a reader never passes one in flight.

A batch carries what changed here since the last one: the states of the agents this
replica judges, alert changes once stored, and notes: a record changed in the store
(an agent enrolled, revoked or removed, the pins, pools, connections, operators,
silences, windows, rollouts), a command for the agent another replica holds, and
its result.  Each replica writes one at least every :data:`BEAT_S` (empty: a beat);
one not heard from for ``replica_dead_s`` is gone, and nobody holds its agents until
they dial in again, through the load balancer, to another replica.

One replica leads, the holder of a session advisory lock: it runs the fleet-wide
checks and timers (pools' minimums, connections, schedules, rollouts, the
reconciler, remediation, notifications) and judges the agents nobody holds.  The
others try the lock every :data:`LEAD_POLL_S`; the lock ends with its session, so
when the leader dies another takes over within seconds.  docs/scaling.md has the
figures, docs/decisions.md the reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from fleet.protocol import AgentState, CloseCode, Command, CommandFinished

from .errors import CommandTimeout, Conflict, FleetError
from .live import LiveAgent
from .store.base import AlertRecord
from .store.postgres import OUTBOX_CHANNEL, PostgresStore

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["Replicas"]

log = logging.getLogger("controlplane.replicas")

BATCH_S = 0.05
"""After a change, the writer waits this long for more to share the batch."""

BEAT_S = 1.0
"""Every replica writes a batch at least this often, so the others know it lives."""

LEAD_POLL_S = 1.0
"""How often a replica that does not lead tries the lead lock (and the leader checks
that its session still holds it)."""

DOCUMENT_KINDS = ("pool_windows", "rollout", "release", "remediation_policy")
"""The kinds of documents a replica reads again when another changes them (remediation
records are the leader's own: it runs remediation)."""

READ_LIMIT = 500
"""Batches read per query."""

RETENTION_S = 120.0
"""The leader deletes batches older than this (a replica further behind reads the
records again: :meth:`Replicas.resync`)."""


class RemoteAgent(msgspec.Struct, array_like=True):
    holder: str | None
    epoch: int
    state: AgentState


class RemoteAlert(msgspec.Struct, array_like=True):
    raised: bool
    alert: AlertRecord


class Note(msgspec.Struct, omit_defaults=True):
    what: str
    key: str = ""
    to: str = ""
    """The replica a command or a result is for ("": everyone)."""
    agent: str = ""
    body: str = ""
    """A command or its result, as JSON."""
    timeout_s: float = 0.0
    failed: str = ""
    """Why a command could not run: ``timeout`` or ``conflict`` (its message in ``body``)."""


class Batch(msgspec.Struct, omit_defaults=True):
    agents: list[RemoteAgent] = []
    alerts: list[RemoteAlert] = []
    notes: list[Note] = []


_decode_batch = msgspec.json.Decoder(Batch).decode
_decode_command = msgspec.json.Decoder(Command).decode
_decode_finished = msgspec.json.Decoder(CommandFinished).decode
_ERRORS: dict[str, type[FleetError]] = {"timeout": CommandTimeout, "conflict": Conflict}


def new_replica_id() -> str:
    """Host, pid and a random suffix: tells the replicas apart in logs and the outbox."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Replicas:
    def __init__(self, cp: ControlPlane, store: PostgresStore) -> None:
        self.cp = cp
        self.store = store
        self.id = new_replica_id()
        self.leader = False
        self.dead_s = cp.settings.replica_dead_s
        self.on_lead: Callable[[], None] = lambda: None
        self.on_step_down: Callable[[], None] = lambda: None
        self.last_seq = 0
        self.heard: dict[str, float] = {}
        """Replica id -> when (monotonic) its last batch was read."""
        self._agents: set[str] = set()
        self._alerts: list[RemoteAlert] = []
        self._notes: list[Note] = []
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._readable = asyncio.Event()
        self._applying = False
        self._calls: dict[str, tuple[str, asyncio.Future[CommandFinished]]] = {}
        self._lock_conn: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ lifecycle

    async def prepare(self) -> None:
        """Before the fleet is loaded: where to read from, and the wake-ups."""
        fleet = self.cp.fleet
        fleet.replica_id = self.id
        fleet.leader = False
        fleet.bus.on_agent = self._changed_agent
        fleet.on_alerts = self._changed_alerts
        self.store.changes = self._changed_record
        self.last_seq = await self.store.outbox_head()
        self._listener = await self.store.session()
        await self._listener.add_listener(OUTBOX_CHANNEL, self._notified)

    async def start(self) -> None:
        """After the fleet is loaded: lead if nobody does, then read and write."""
        await self._try_lead()
        self._tasks = [
            asyncio.create_task(self._write_loop()),
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._lead_loop()),
        ]
        log.info("replica %s started (%s)", self.id, "leading" if self.leader else "following")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._notes.append(Note("leaving"))  # the others release its agents at once
        with contextlib.suppress(Exception):
            await self._write()  # the last states and alerts, for the others
        for conn in (self._listener, self._lock_conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
        self._listener = self._lock_conn = None

    # ------------------------------------------------------------ leading

    async def _try_lead(self) -> None:
        if self._lock_conn is None or self._lock_conn.is_closed():
            self._lock_conn = await self.store.session()
        if await self.store.try_lead(self._lock_conn):
            self._become_leader()

    def _become_leader(self) -> None:
        self.leader = True
        self.cp.fleet.leader = True
        log.warning("replica %s leads: it runs the fleet-wide checks and timers now", self.id)
        # The checks only a leader runs, at once: the alerts the last one raised are in
        # the book already, so nothing is raised twice.
        self.cp.fleet.update_connections()
        self.cp.fleet.check_pools()
        self.on_lead()

    def _step_down(self, why: str) -> None:
        self.leader = False
        self.cp.fleet.leader = False
        log.error("replica %s stopped leading (%s); it will try again", self.id, why)
        self.on_step_down()

    async def _lead_loop(self) -> None:
        last_prune = time.monotonic()
        while True:
            await asyncio.sleep(LEAD_POLL_S)
            try:
                if not self.leader:
                    await self._try_lead()
                elif self._lock_conn is None or self._lock_conn.is_closed():
                    self._step_down("its session with PostgreSQL ended")
                else:
                    await self._lock_conn.fetchval("SELECT 1")
                    if time.monotonic() - last_prune > RETENTION_S / 10:
                        last_prune = time.monotonic()
                        await self.store.outbox_prune(time.time() - RETENTION_S)
            except Exception as exc:
                if self.leader:
                    self._step_down(str(exc) or type(exc).__name__)
                with contextlib.suppress(Exception):
                    if self._lock_conn is not None:
                        await self._lock_conn.close(timeout=2)
                self._lock_conn = None
            self._bury_the_dead()

    def _bury_the_dead(self) -> None:
        now = time.monotonic()
        for replica, at in list(self.heard.items()):
            if now - at > self.dead_s:
                self._bury(replica, f"was not heard for {now - at:.0f} s")

    def _bury(self, replica: str, why: str) -> None:
        """``replica`` is gone: nobody holds its agents; calls waiting on it fail."""
        self.heard.pop(replica, None)
        released = self.cp.fleet.release_holder(replica)
        log.warning(
            "replica %s %s: its %d agents are held by nobody until they reconnect",
            replica,
            why,
            released,
        )
        for call_id, (to, future) in list(self._calls.items()):
            if to == replica and not future.done():
                future.set_exception(
                    Conflict(
                        "the replica holding the agent went away before it answered; "
                        "retry when the agent shows connected again"
                    )
                )
                self._calls.pop(call_id, None)

    # ------------------------------------------------------------ holding

    async def hold(self, agent: LiveAgent) -> None:
        """The agent's channel reached this replica: take its lease (fencing any other)."""
        agent.epoch = await self.store.take_lease(agent.id, self.id)
        agent.holder = self.id
        agent.remote = None
        self._agents.add(agent.id)
        self._wake.set()

    async def lookup(self, agent_id: str) -> LiveAgent | None:
        """An agent this replica has not heard of yet, from the store (None: unknown)."""
        rec = await self.store.get_agent(agent_id)
        if rec is None:
            return None
        agent = self.cp.fleet.agents.get(agent_id)
        if agent is None:
            agent = LiveAgent(rec, self.cp.settings.history_len)
            self.cp.fleet.add_agent(agent)
        return agent

    def holds_elsewhere(self, agent: LiveAgent) -> bool:
        return agent.holder is not None and agent.holder != self.id and agent.holder in self.heard

    # ------------------------------------------------------------ writing

    def _changed_agent(self, agent_id: str) -> None:
        if self._applying:
            return
        agent = self.cp.fleet.agents.get(agent_id)
        if agent is not None and self.cp.fleet.judges(agent):
            self._agents.add(agent_id)
            self._wake.set()

    def _changed_alerts(self, batch: list[tuple[AlertRecord, bool]]) -> None:
        if self._applying:
            return
        self._alerts.extend(RemoteAlert(raised, rec) for rec, raised in batch)
        self._wake.set()

    async def _changed_record(self, what: str, key: str) -> None:
        """A record changed: the note is in the outbox before the change is acknowledged."""
        self._notes.append(Note(what, key))
        try:
            await self._write()
        except Exception as exc:  # the note stays queued: the writer retries it
            log.error("writing to the outbox failed, will retry: %s", exc)
            self._wake.set()

    def _note(self, note: Note) -> None:
        self._notes.append(note)
        self._wake.set()

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BEAT_S):
                    await self._wake.wait()
                await asyncio.sleep(BATCH_S)
            self._wake.clear()
            try:
                await self._write()
            except Exception as exc:
                log.error("writing to the outbox failed, will retry: %s", exc)
                await asyncio.sleep(1.0)

    async def _write(self) -> None:
        async with self._write_lock:
            await self._write_batch()

    async def _write_batch(self) -> None:
        fleet = self.cp.fleet
        ids, self._agents = self._agents, set()
        alerts, self._alerts = self._alerts, []
        notes, self._notes = self._notes, []
        agents = []
        for agent_id in ids:
            agent = fleet.agents.get(agent_id)
            if agent is not None:
                agents.append(RemoteAgent(agent.holder, agent.epoch, agent.to_state()))
        body = msgspec.json.encode(Batch(agents, alerts, notes)).decode()
        try:
            await self.store.outbox_write(self.id, body, time.time())
        except BaseException:
            self._agents |= ids
            self._alerts[:0] = alerts
            self._notes[:0] = notes
            raise

    # ------------------------------------------------------------ reading

    def _notified(self, *_: Any) -> None:
        self._readable.set()

    async def _read_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(BEAT_S):
                    await self._readable.wait()
            self._readable.clear()
            try:
                await self.read()
            except Exception as exc:
                log.error("reading the outbox failed, will retry: %s", exc)
                await asyncio.sleep(1.0)

    async def read(self) -> int:
        """Apply every batch after the last one read; returns how many."""
        count = 0
        while True:
            rows = await self.store.outbox_read(self.last_seq, READ_LIMIT)
            for seq, replica, body in rows:
                if seq > self.last_seq + 1 and self.last_seq:
                    # Batches were pruned while this replica was away (or a write rolled
                    # back): what they said of records is read again from the store.
                    await self.resync(self.last_seq, seq)
                self.last_seq = seq
                if replica == self.id:
                    continue
                self.heard[replica] = time.monotonic()
                try:
                    batch = _decode_batch(body)
                except msgspec.DecodeError as exc:
                    log.error("outbox batch %d from %s unreadable, skipped: %s", seq, replica, exc)
                    continue
                await self._apply(replica, batch)
                count += 1
            if len(rows) < READ_LIMIT:
                return count

    async def resync(self, last: int, seq: int) -> None:
        """Read every record again: batches ``last`` < n < ``seq`` are gone or never were.
        The agents' states come again with their next heartbeats."""
        log.warning(
            "outbox batches %d to %d are missing here: reading the records again", last + 1, seq - 1
        )
        cp, fleet = self.cp, self.cp.fleet
        stored = await self.store.list_agents()
        for rec in stored:
            agent = fleet.agents.get(rec.id)
            if agent is None:
                fleet.add_agent(LiveAgent(rec, cp.settings.history_len))
            elif rec.revoked and not agent.record.revoked:
                await cp.revoked_here(agent)
        ids = {rec.id for rec in stored}
        for agent in [a for a in fleet.agents.values() if a.id not in ids]:
            self._forget(agent)
        fleet.revoked_serials = await self.store.revoked_serials(valid_at=time.time())
        await cp.rekeys.load()
        await fleet.reload_pins()
        await fleet.reload_pools()
        await fleet.reload_connections()
        await fleet.reload_suppression()
        await cp.operators.load()
        for kind in DOCUMENT_KINDS:
            await cp.reload_documents(kind)

    async def _apply(self, replica: str, batch: Batch) -> None:
        for note in batch.notes:
            if not note.to or note.to == self.id:
                try:
                    await self._apply_note(replica, note)
                except Exception:
                    log.exception("a note from %s failed here: %s %s", replica, note.what, note.key)
        fleet = self.cp.fleet
        self._applying = True
        try:
            for alert in batch.alerts:
                fleet.apply_remote_alert(alert.alert, alert.raised)
            for remote in batch.agents:
                agent = fleet.agents.get(remote.state.id)
                step = agent.upgrade if agent is not None else None
                fenced = fleet.apply_remote(remote.state, remote.holder, remote.epoch)
                if fenced is not None:
                    self._fence(fenced)
                if agent is not None and agent.upgrade not in (None, step) and self.leader:
                    self._stepped(agent)
        finally:
            self._applying = False
        if any(note.what == "leaving" for note in batch.notes):
            self._bury(replica, "stopped")  # after its last states, not before

    def _stepped(self, agent: LiveAgent) -> None:
        """An upgrade step the agent reported to its holder: the leader's rollouts and
        reconciler hear of it as if the agent were here."""
        assert agent.upgrade is not None
        for listener in self.cp.upgrades.listeners:
            try:
                listener(agent, agent.upgrade)
            except Exception:
                log.exception("upgrade listener failed on %s", agent.id)

    def _forget(self, agent: LiveAgent) -> None:
        """The agent was removed on another replica: drop it here too."""
        from .decommission import remove_live  # decommission imports the control plane

        self.cp.fleet.alerts.clear_target(agent.id)
        remove_live(self.cp, agent)

    def _fence(self, agent: LiveAgent) -> None:
        """A newer connection of the agent reached another replica: close ours, quietly
        (the agent is not away; the new holder says how it is)."""
        channel = agent.channel
        agent.channel = None
        self.cp.channels.pop(agent.id, None)
        if channel is not None:
            self._spawn(
                channel.close(CloseCode.REPLACED, "another connection for this agent took over")
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _apply_note(self, replica: str, note: Note) -> None:
        cp, fleet = self.cp, self.cp.fleet
        what, key = note.what, note.key
        # Not muted: what the note changes in the agents this replica judges (a revoke
        # of one it holds, say) is announced as any local change is.
        if what == "agent":
            rec = await self.store.get_agent(key)
            if rec is None:
                return
            agent = fleet.agents.get(key)
            if agent is None:
                fleet.add_agent(LiveAgent(rec, cp.settings.history_len))
            else:
                agent.record = rec
        elif what == "revoked":
            agent = fleet.agents.get(key)
            if agent is not None and not agent.record.revoked:
                await cp.revoked_here(agent)
        elif what == "deleted":
            agent = fleet.agents.get(key)
            if agent is not None:
                self._forget(agent)
        elif what == "serials":
            fleet.revoked_serials = await self.store.revoked_serials(valid_at=time.time())
            await cp.rekeys.load()
        elif what == "certificates":
            await cp.rekeys.load()  # a renewal's pending certificate, first used anywhere
        elif what == "pins":
            await fleet.reload_pins()
        elif what == "pools":
            await fleet.reload_pools()
        elif what == "connections":
            await fleet.reload_connections()
        elif what == "suppression":
            await fleet.reload_suppression()
        elif what == "operators":
            await cp.operators.load()
        elif what == "documents":
            await cp.reload_documents(key)
        elif what == "command":
            self._spawn(self._serve_call(replica, note))
        elif what == "result":
            self._resolve(note)

    # ------------------------------------------------------------ commands

    async def call(self, agent: LiveAgent, command: Command, timeout_s: float) -> CommandFinished:
        """Run a command on an agent another replica holds, through that replica."""
        holder = agent.holder or ""
        call_id = uuid.uuid4().hex
        future: asyncio.Future[CommandFinished] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = (holder, future)
        self._note(
            Note(
                "command",
                key=call_id,
                to=holder,
                agent=agent.id,
                body=msgspec.json.encode(command).decode(),
                timeout_s=timeout_s,
            )
        )
        try:
            async with asyncio.timeout(timeout_s + 2 * self.dead_s):
                return await future
        except TimeoutError:
            raise CommandTimeout(
                f"agent {agent.record.name} (on replica {holder}) did not answer within "
                f"{timeout_s:.0f} s; retry, or check its queue depth"
            ) from None
        finally:
            self._calls.pop(call_id, None)

    async def _serve_call(self, caller: str, note: Note) -> None:
        channel = self.cp.channels.get(note.agent)
        reply = Note("result", key=note.key, to=caller)
        if channel is None:
            reply.failed, reply.body = (
                "conflict",
                "the agent is no longer connected to the replica that held it; retry when "
                "it shows connected again",
            )
        else:
            try:
                result = await channel.request(_decode_command(note.body), note.timeout_s)
                reply.body = msgspec.json.encode(result).decode()
            except CommandTimeout as exc:
                reply.failed, reply.body = "timeout", exc.message
            except Exception as exc:
                reply.failed, reply.body = "conflict", getattr(exc, "message", str(exc))
        self._note(reply)

    def _resolve(self, note: Note) -> None:
        entry = self._calls.get(note.key)
        if entry is None or entry[1].done():
            return
        if note.failed:
            entry[1].set_exception(_ERRORS.get(note.failed, Conflict)(note.body))
        else:
            entry[1].set_result(_decode_finished(note.body))
