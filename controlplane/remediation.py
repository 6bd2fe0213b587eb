"""Auto-remediation: check each pool's rules, act within budgets, or ask a person.

The engine runs as its own task (:meth:`Remediations.run`), never in the path of
heartbeats: at each presence tick it looks only at the pools that have a policy
(:mod:`controlplane.remediation_policies`), and checks a pool when its
``check_interval_s`` has passed, in a task of its own, so a slow probe in one
pool delays nobody else.  A check counts, for each agent of the pool and each
rule, the consecutive checks its condition held (:class:`~.remediation_rules.Streaks`);
when a rule has held ``checks`` times:

* the action runs by itself (actor ``remediation:POOL``) if the rule is
  ``automatic`` and both budgets allow it (:class:`~.remediation_rules.Budget`);
* otherwise it waits in the inbox (``pending_approval``) with ``why_approval``,
  until an operator approves (it runs, as them) or rejects it, or it expires
  after ``remediation_pending_ttl_s``.

One pending or running remediation per agent and action (per pool for
``move_connections``): a condition that goes on holding does not fill the inbox.
An agent whose action runs is not judged meanwhile (a restart makes it look
offline).  A restart or a rollback is ``done`` once the agent is back (connected
again, heartbeating, with a fresh uptime), ``failed`` if it is not back within
``remediation_verify_s``.  Every record lives in
:class:`~.remediation_book.RemediationBook`: stored, audited, published.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from fleet.protocol import (
    ProbeCommand,
    ProbeResult,
    RemediationInfo,
)
from fleet.units import format_duration

from .connection_moves import revert_moves
from .errors import CommandTimeout, Conflict, FleetError, NotFound
from .live import LiveAgent
from .operators import Principal
from .remediation_actions import RemediationActions
from .remediation_book import Remediation, RemediationBook, actor_of, new_id
from .remediation_policies import PolicyBook, StoredPolicy
from .remediation_rules import (
    AGENT_ACTIONS,
    Budget,
    ProbeFailing,
    RemediationPolicy,
    Rule,
    Streaks,
    describe,
    holds,
)

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["Remediations"]

log = logging.getLogger("controlplane.remediation")

PROBE_SLOTS = 64
"""Probes in flight at once across all pools' checks."""

YIELD_EVERY = 1000
"""A check gives the loop back after this many agents (10,000 agents with three
rules take 22 ms here: docs/decisions.md)."""


class Remediations:
    """The remediation engine and its inbox (``cp.remediation``).

    Args:
        cp: the control plane (its fleet, settings, commands and upgrades).
        clock: the wall clock (tests may give another).
    """

    def __init__(self, cp: ControlPlane, clock: Callable[[], float] = time.time) -> None:
        self.cp = cp
        self.fleet = cp.fleet
        self.clock = clock
        settings = cp.settings
        self.policies = PolicyBook(cp.fleet, settings.remediation_min_check_s)
        self.book = RemediationBook(cp.fleet, settings.remediation_history)
        self.actions = RemediationActions(cp, self.book, clock)
        self.streaks = Streaks()
        self.budget = Budget()
        self._due: dict[str, float] = {}
        """Pool -> when its next check is due (monotonic clock)."""
        self._checking: set[str] = set()
        self._unreachable: set[tuple[str, str, int]] = set()
        """(pool, agent, rule) whose action could not reach the agent in this streak:
        said once, not at every count."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._probe_slots = asyncio.Semaphore(PROBE_SLOTS)
        cp.fleet.remediation_infos = self.book.infos

    # ------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """Read the policies and records; rebuild the budgets from the last hour's
        automatic actions.  An action cut short by the restart (a renewal, a move)
        is marked failed; a restart or rollback waits for the agent as before."""
        await self.policies.load()
        now = self.clock()
        for rec in await self.book.load():
            if rec.info.automatic and rec.info.decided_at is not None:
                self.budget.charge(
                    rec.info.agent_id, rec.info.pool, rec.info.action, rec.info.decided_at
                )
            if rec.state == "running" and (
                rec.started_at is None or rec.info.action not in ("restart", "rollback")
            ):
                await self.book.move(
                    rec,
                    "failed",
                    actor_of(rec.info.pool),
                    now,
                    detail="the control plane stopped while it ran: check the agent and its audit",
                )

    async def run(self) -> None:
        """Check the pools with a policy at each presence tick, until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.cp.settings.tick_s)
                try:
                    await self.tick()
                except Exception:
                    log.exception("remediation tick failed")
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def tick(self) -> None:
        """Expire, follow running actions, and start the checks that are due."""
        now = self.clock()
        await self._expire(now)
        await self.actions.follow(now)
        mono = time.monotonic()
        for pool, stored in self.policies.policies.items():
            if pool in self._checking or mono < self._due.get(pool, 0.0):
                continue
            self._due[pool] = mono + stored.policy.check_interval_s
            self._checking.add(pool)
            self._spawn(self.check_pool(pool, stored.policy), partial(self._checking.discard, pool))

    def _spawn(
        self, work: Coroutine[Any, Any, None], done: Callable[[], None] | None = None
    ) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if done is not None:
                done()
            if not t.cancelled() and t.exception() is not None:
                log.error("remediation task failed", exc_info=t.exception())

        task.add_done_callback(finished)

    # ------------------------------------------------------------ policies

    async def set_policy(self, actor: Principal, pool: str, policy: RemediationPolicy) -> None:
        await self.policies.put(actor, pool, policy, self.clock())
        self._reset(pool)

    async def clear_policy(self, actor: Principal, pool: str) -> StoredPolicy:
        stored = await self.policies.clear(actor, pool)
        self._reset(pool)
        return stored

    def _reset(self, pool: str) -> None:
        # Other rules now: streaks count afresh, the first check comes at the next tick.
        self.streaks.forget(pool)
        self._unreachable = {k for k in self._unreachable if k[0] != pool}
        self._due.pop(pool, None)

    # ------------------------------------------------------------ checks

    async def check_pool(self, pool: str, policy: RemediationPolicy) -> None:
        """One check of ``pool``: probe what its rules need, count, decide."""
        agents = list(self.fleet.members.get(pool, {}).values())
        probes = await self._probe(policy, agents)
        if not self._current(pool, policy):
            return  # changed while probing: the next check judges with the new rules
        now = self.clock()
        lifetime = self.cp.settings.cert_lifetime_s
        busy = {r.info.agent_id for r in self.book.in_state("running")}
        for count, agent in enumerate(agents, 1):
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let heartbeats in: a large pool's check is ~2 ms/1,000
                if not self._current(pool, policy):
                    return
            if agent.id not in self.fleet.agents:
                continue  # decommissioned meanwhile
            for index, rule in enumerate(policy.rules):
                key = (pool, agent.id, index)
                probe = (
                    probes.get((agent.id, rule.connection))
                    if isinstance(rule, ProbeFailing)
                    else None
                )
                held = agent.id not in busy and holds(rule, agent, now, lifetime, probe)
                if not held:
                    self._unreachable.discard(key)
                if self.streaks.observe(key, held, rule.checks):
                    await self._decide(pool, policy, index, rule, agent, now)

    def _current(self, pool: str, policy: RemediationPolicy) -> bool:
        stored = self.policies.policies.get(pool)
        return stored is not None and stored.policy is policy

    async def _probe(
        self, policy: RemediationPolicy, agents: list[LiveAgent]
    ) -> dict[tuple[str, str], bool]:
        """Each probe rule's connection through each agent with a channel:
        (agent id, connection) -> ok; left out when it could not be judged."""
        rules = {r.connection: r for r in policy.rules if isinstance(r, ProbeFailing)}
        if not rules:
            return {}
        out: dict[tuple[str, str], bool] = {}

        async def one(agent: LiveAgent, rule: ProbeFailing) -> None:
            ok = await self._probe_one(agent, rule)
            if ok is not None:
                out[(agent.id, rule.connection)] = ok

        await asyncio.gather(
            *(one(a, r) for a in agents if self.cp.reachable(a) for r in rules.values())
        )
        return out

    async def _probe_one(self, agent: LiveAgent, rule: ProbeFailing) -> bool | None:
        """Whether the probe went through; None when it says nothing about the
        connection (no channel, denied by a policy, the agent went away)."""
        conn = self.fleet.connections.get(rule.connection)
        if (
            conn is None
            or not self.cp.reachable(agent)
            or self.cp.check_policy(agent, conn.host, conn.port)
        ):
            return None
        command = ProbeCommand(
            host=conn.host, port=conn.port, tls=rule.tls, timeout_s=rule.timeout_s
        )
        # A check, not an action: not audited (each action it leads to is).
        async with self._probe_slots:
            try:
                result = await self.cp.request(agent, command, rule.timeout_s + 1.0)
            except CommandTimeout:
                return False  # a wedged agent cannot probe either
            except FleetError:
                return None
        if result.error is not None:
            return None if result.error.code == "denied" else False
        return isinstance(result.result, ProbeResult) and result.result.ok

    async def _decide(
        self,
        pool: str,
        policy: RemediationPolicy,
        index: int,
        rule: Rule,
        agent: LiveAgent,
        now: float,
    ) -> None:
        """``rule`` held its count for ``agent``: run its action, or queue it."""
        action = rule.action
        if self.book.waiting(agent.id, pool, action) is not None:
            return
        actor = actor_of(pool)
        base: dict[str, Any] = {
            "id": new_id(),
            "pool": pool,
            "agent_id": agent.id,
            "agent_name": agent.record.name,
            "condition": describe(rule),
            "action": action,
            "created_at": now,
        }
        if action in AGENT_ACTIONS and not self.cp.reachable(agent):
            key = (pool, agent.id, index)
            if key not in self._unreachable:
                self._unreachable.add(key)
                detail = (
                    f"agent {agent.record.name} is {agent.state.value}, not connected: a "
                    f"{action} cannot reach it (tried again when it has a channel)"
                )
                info = RemediationInfo(
                    **base, state="failed", automatic=False, detail=detail, finished_at=now
                )
                await self.book.add(info, actor)
            return
        why = "" if rule.automatic else "the policy asks for approval"
        why = why or self.budget.spent(agent.id, pool, action, policy, now) or ""
        if why:
            expires = now + self.cp.settings.remediation_pending_ttl_s
            info = RemediationInfo(
                **base,
                state="pending_approval",
                automatic=False,
                why_approval=why,
                expires_at=expires,
            )
            await self.book.add(info, actor)
            return
        self.budget.charge(agent.id, pool, action, now)
        info = RemediationInfo(
            **base, state="running", automatic=True, decided_by=actor, decided_at=now
        )
        rec = await self.book.add(info, actor)
        self._spawn(self.actions.execute(rec, Principal(actor, "admin")))

    async def _expire(self, now: float) -> None:
        for rec in self.book.in_state("pending_approval"):
            if rec.info.expires_at is not None and now >= rec.info.expires_at:
                ttl = format_duration(self.cp.settings.remediation_pending_ttl_s)
                await self.book.move(
                    rec,
                    "expired",
                    actor_of(rec.info.pool),
                    now,
                    detail=f"not approved within {ttl}",
                )

    # ------------------------------------------------------------ decisions

    def get(self, rec_id: str) -> Remediation:
        rec = self.book.get(rec_id)
        if rec is None:
            raise NotFound(
                f"no remediation {rec_id!r}; list them with GET /v1/remediations "
                "(fleet remediation list)"
            )
        return rec

    async def _pending(self, actor: Principal, rec_id: str, verb: str) -> Remediation:
        """The pending record ``rec_id``, or a refusal (audited)."""
        try:
            rec = self.get(rec_id)
        except NotFound:
            await self.fleet.audit(actor.name, f"remediation.{verb}", rec_id, "refused", "unknown")
            raise
        if rec.state != "pending_approval":
            why = f"remediation {rec.id} is {rec.state}, not waiting for approval"
            await self.fleet.audit(actor.name, f"remediation.{verb}", rec.target, "refused", why)
            raise Conflict(f"{why}; see GET /v1/remediations/{rec.id}")
        return rec

    async def approve(self, actor: Principal, rec_id: str, note: str = "") -> Remediation:
        """Run a pending remediation now, as ``actor`` (an operator).

        The admin's policy chose the action; an operator's approval chooses the moment,
        so an approved move of connections runs with the admin's right to edit them.
        Raises Conflict (nothing changes) when it is not pending, or its agent has no
        channel to receive the action.
        """
        actor.require("operator")
        rec = await self._pending(actor, rec_id, "approve")
        agent = self.fleet.agents.get(rec.info.agent_id)
        if rec.info.action in AGENT_ACTIONS and (agent is None or not self.cp.reachable(agent)):
            state = "removed" if agent is None else agent.state.value
            why = f"agent {rec.info.agent_name} is {state}, not connected"
            await self.fleet.audit(actor.name, "remediation.approve", rec.target, "refused", why)
            raise Conflict(f"{why}: approve once it is connected, or reject it")
        now = self.clock()
        await self.book.move(
            rec,
            "running",
            actor.name,
            now,
            verb="approve",
            decided_by=actor.name,
            decided_at=now,
            detail=note,
        )
        runner = Principal(actor.name, "admin") if rec.info.action == "move_connections" else actor
        await self.actions.execute(rec, runner)
        return rec

    async def reject(self, actor: Principal, rec_id: str, reason: str = "") -> Remediation:
        """Record that a person said no: the action does not run."""
        actor.require("operator")
        rec = await self._pending(actor, rec_id, "reject")
        now = self.clock()
        return await self.book.move(
            rec,
            "rejected",
            actor.name,
            now,
            decided_by=actor.name,
            decided_at=now,
            detail=reason or "rejected",
        )

    async def revert(self, actor: Principal, rec_id: str) -> Remediation:
        """Put back the connections a ``move_connections`` moved (an admin)."""
        actor.require("admin")
        try:
            rec = self.get(rec_id)
        except NotFound:
            await self.fleet.audit(actor.name, "remediation.revert", rec_id, "refused", "unknown")
            raise
        why = None
        if rec.info.action != "move_connections" or rec.state != "done":
            why = (
                f"remediation {rec.id} is a {rec.info.action} ({rec.state}): only a done "
                "move_connections can be reverted"
            )
        elif rec.reverted_by is not None:
            why = f"remediation {rec.id} was reverted already, by {rec.reverted_by}"
        elif not rec.moved:
            why = f"remediation {rec.id} moved nothing"
        if why is not None:
            await self.fleet.audit(actor.name, "remediation.revert", rec.target, "refused", why)
            raise Conflict(why)
        words = await revert_moves(self.fleet, actor, rec.moved)
        rec.reverted_by = actor.name
        await self.book.note(
            rec,
            actor.name,
            "revert",
            self.clock(),
            f"{rec.info.detail}; reverted by {actor.name}: {words}",
        )
        return rec
