"""Rollouts: one version to one pool, canaries first, then waves, gated on health.

A rollout (at most one active per pool) upgrades its canaries, watches them for
the soak time, then upgrades the rest of the pool wave by wave, watching again
for the pause after each.  The health gate (:mod:`controlplane.rollout_gate`)
compares the upgraded agents with the rest of the pool the whole time; when
they do worse, or an upgrade fails, the rollout halts and every upgraded agent
is rolled back, with the reason recorded.  When the last wave has passed, the
pool's version pin is set to the target (its config pin kept), and the pin
upgrades whoever was away at its turn (:mod:`controlplane.reconciler`).

A pool's windows hold it (``waiting``, saying until when): a new wave starts
only inside a maintenance window when the pool has any, and nothing starts
during a freeze.  Operators pause, resume and abort (an abort rolls back, as a
halt does).

The engine is a task that ticks every ``rollout_tick_s`` (and at once when an
agent reports a step): it never awaits an agent, so ingest never waits on it.
Each agent's upgrade and rollback goes through :attr:`ControlPlane.upgrades`
as a command of the system principal ``rollout:ID`` (role admin), audited as
every command is.  Each rollout is a document written on every change, so a
restart of the control plane resumes it where it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from fleet.protocol import (
    Presence,
    RolloutAgentStep,
    RolloutInfo,
    RolloutState,
    RolloutUpdate,
    UpgradeInfo,
    UpgradeStep,
)
from fleet.units import count, format_duration

from .errors import BadRequest, Conflict, FleetError, NotFound
from .live import LiveAgent
from .operators import Principal
from .pin_rules import merged
from .rollout_gate import problems, sample, verdict
from .rollout_plan import KIND, AgentDoc, Candidate, Gauge, RolloutDoc, Share, plan, to_info
from .windows import Hold

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["Rollouts"]

log = logging.getLogger("controlplane.rollouts")

HEALTHY = (Presence.CONNECTED, Presence.DEGRADED)
GAUGE_SAVE_S = 10.0
"""The gate's counts are written at least this often (every change of state at once)."""
MIN_TICK_S = 0.1
"""Ticks woken by agents' steps come at most this often."""
FINISHED_SHOWN = 1
"""Finished rollouts a snapshot shows per pool (the latest)."""


class Rollouts:
    """Every rollout, the active ones driven by :meth:`run`.

    Args:
        cp: the control plane (fleet, store, windows, upgrades, releases, settings).
    """

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.docs: dict[str, RolloutDoc] = {}
        self._shown: dict[str, RolloutInfo] = {}
        self._saved_at: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._sampled_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        """Held by a tick and by each operator's action: one changes a rollout at a time."""
        self._tasks: set[asyncio.Task[None]] = set()
        cp.upgrades.listeners.append(self._on_step)
        cp.fleet.rollout_infos = self.infos
        cp.releases.in_use = self.in_use

    # ------------------------------------------------------------ lifecycle

    async def load(self) -> None:
        """Read the stored rollouts; the active ones go on from where they were.

        Again when another replica changed one (controlplane/replicas.py): a stored
        rollout newer than the one in memory replaces it, one deleted there (pruned)
        goes, one this replica changed since it was stored stays as it is here.
        """
        stored: set[str] = set()
        for key, body in await self.cp.store.list_documents(KIND):
            try:
                doc = msgspec.convert(body, RolloutDoc)
            except msgspec.ValidationError as exc:
                log.error("rollout %s could not be read (%s): left as it is", key, exc)
                continue
            stored.add(doc.id)
            old = self.docs.get(doc.id)
            if old is not None and (old.updated_at >= doc.updated_at or doc.id in self._dirty):
                continue
            if old is not None:
                self._unmark(old, refresh=False)
            self.docs[doc.id] = doc
            self._shown[doc.id] = to_info(doc)
            self._saved_at[doc.id] = doc.updated_at
            if doc.active:
                self._mark(doc)
        for doc_id in [d for d in self.docs if d not in stored and d not in self._dirty]:
            old = self.docs.pop(doc_id)
            self._shown.pop(doc_id, None)
            self._unmark(old)

    async def run(self) -> None:
        """Tick until cancelled."""
        tick = self.cp.settings.rollout_tick_s
        while True:
            try:
                async with asyncio.timeout(tick):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.tick(time.time())
            except Exception:
                log.exception("rollout tick failed")
            await asyncio.sleep(min(MIN_TICK_S, tick))

    async def stop(self) -> None:
        """Cancel the commands in flight and write what changed."""
        for task in list(self._tasks):
            task.cancel()
        self._dirty.update(d.id for d in self.docs.values() if d.active)
        try:
            await self._save(time.time())
        except Exception as exc:
            log.error("writing rollouts at stop failed: %s", exc)

    # -------------------------------------------------------------- queries

    def get(self, ref: str) -> RolloutDoc:
        doc = self.docs.get(ref)
        if doc is None:
            raise NotFound(
                f"no rollout {ref!r}; list them with GET /v1/rollouts (fleet rollouts list)"
            )
        return doc

    def active_in(self, pool: str) -> RolloutDoc | None:
        """The rollout that is not over in ``pool``, if any."""
        return next((d for d in self.docs.values() if d.pool == pool and d.active), None)

    def in_use(self, version: str) -> str | None:
        """Why the release of ``version`` may not be removed: a rollout that is not over
        upgrades to it (:attr:`ReleaseBook.in_use`)."""
        doc = next((d for d in self.docs.values() if d.active and d.version == version), None)
        if doc is None:
            return None
        return (
            f"rollout {doc.id} of pool {doc.pool} is {doc.state}; abort it first "
            f"(fleet rollouts abort {doc.id})"
        )

    def listed(self, pool: str | None = None) -> list[RolloutInfo]:
        """Every rollout (of ``pool``), newest first."""
        docs = [d for d in self.docs.values() if pool is None or d.pool == pool]
        return [to_info(d) for d in sorted(docs, key=lambda d: d.created_at, reverse=True)]

    def infos(self) -> list[RolloutInfo]:
        """What a snapshot shows: rollouts not over, and the latest finished one per pool."""
        shown: list[RolloutInfo] = []
        finished: dict[str, int] = {}
        for doc in sorted(self.docs.values(), key=lambda d: d.created_at, reverse=True):
            if not doc.active and not self._cleaning(doc):
                finished[doc.pool] = finished.get(doc.pool, 0) + 1
                if finished[doc.pool] > FINISHED_SHOWN:
                    continue
            shown.append(self._shown.get(doc.id) or to_info(doc))
        return shown

    # ------------------------------------------------------ operator actions

    async def start(
        self,
        who: Principal,
        pool: str,
        version: str,
        canaries: Share = 1,
        soak_s: float = 600.0,
        wave: Share = "25%",
        pause_s: float = 300.0,
    ) -> RolloutDoc:
        """Start rolling ``version`` out to ``pool`` (admin).

        Raises:
            NotFound: no release of ``version`` is stored, or the pool has no agent.
            Conflict: a rollout is active in the pool, or the pool is frozen.
            BadRequest: ``canaries`` or ``wave`` is neither a count nor a percentage.
        """
        who.require("admin")
        async with self._lock:
            return await self._start(who, pool, version, canaries, soak_s, wave, pause_s)

    async def _start(
        self,
        who: Principal,
        pool: str,
        version: str,
        canaries: Share,
        soak_s: float,
        wave: Share,
        pause_s: float,
    ) -> RolloutDoc:
        target = f"pool:{pool}"
        fleet = self.cp.fleet
        try:
            self.cp.releases.get(version)
            current = self.active_in(pool)
            if current is not None:
                raise Conflict(
                    f"rollout {current.id} of {current.version} is {current.state} in pool "
                    f"{pool}; resume or abort it (fleet rollouts abort {current.id}) first"
                )
            members = [
                a for a in fleet.members.get(pool, {}).values() if a.state != Presence.REVOKED
            ]
            if not members:
                raise NotFound(
                    f"pool {pool!r} has no agents to upgrade; list pools with GET /v1/pools"
                )
        except FleetError as exc:
            await fleet.audit(who.name, "rollout.start", target, "refused", exc.message)
            raise
        await self.cp.windows.refuse_if_frozen(who.name, "rollout.start", target, pool)
        own = {name for scope, name in fleet.pins if scope == "agent"}
        candidates = [
            Candidate(a.id, a.record.name, a.usable)
            for a in members
            if a.version != version and not (a.id in own and fleet.pins[("agent", a.id)].version)
        ]
        try:
            agents, canary_count, size = plan(candidates, canaries, wave)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        now = time.time()
        first = min((a.wave for a in agents), default=0)
        doc = RolloutDoc(
            id="ro_" + uuid.uuid4().hex[:10],
            pool=pool,
            version=version,
            state="canary" if first == 0 and agents else "wave",
            canaries=canary_count,
            soak_s=soak_s,
            wave_size=size,
            pause_s=pause_s,
            agents=agents,
            wave=first,
            created_by=who.name,
            created_at=now,
            updated_at=now,
            detail=f"{len(agents)} agents to upgrade; {len(members) - len(agents)} left as "
            "they are (they run it already, or have their own pin)",
        )
        self.docs[doc.id] = doc
        self._mark(doc)
        await fleet.audit(
            who.name,
            "rollout.start",
            target,
            "ok",
            f"{doc.id}: {version}, {len(agents)} agents, canaries {canaries} ({canary_count}), "
            f"soak {format_duration(soak_s)}, waves of {wave} ({size}), "
            f"pause {format_duration(pause_s)}",
        )
        if not agents:
            await self._finish(doc, now)
        self._changed(doc)
        await self._save(now)
        self._wake.set()
        return doc

    async def pause(self, who: Principal, ref: str) -> RolloutDoc:
        """Hold the rollout where it is (upgrades in flight finish; the gate watches on)."""
        who.require("operator")
        async with self._lock:
            return await self._pause(who, ref)

    async def _pause(self, who: Principal, ref: str) -> RolloutDoc:
        doc = self.get(ref)
        if not doc.active or doc.state == "paused":
            why = f"rollout {doc.id} is {doc.state}: nothing to pause"
            await self.cp.fleet.audit(who.name, "rollout.pause", doc.id, "refused", why)
            raise Conflict(why + ("; resume it with fleet rollouts resume" if doc.active else ""))
        now = time.time()
        if doc.state != "waiting":
            doc.resume_to = doc.state
        if doc.state in ("soaking", "pausing") and doc.phase_ends_at is not None:
            doc.paused_left_s = max(0.0, doc.phase_ends_at - now)
        doc.state, doc.phase_ends_at = "paused", None
        doc.detail = f"paused by {who.name}"
        await self._decided(doc, who, "rollout.pause", now)
        return doc

    async def resume(self, who: Principal, ref: str) -> RolloutDoc:
        """Go on from where it was paused (refused during a freeze of its pool)."""
        who.require("operator")
        async with self._lock:
            return await self._resume(who, ref)

    async def _resume(self, who: Principal, ref: str) -> RolloutDoc:
        doc = self.get(ref)
        if doc.state != "paused":
            why = f"rollout {doc.id} is {doc.state}, not paused: nothing to resume"
            await self.cp.fleet.audit(who.name, "rollout.resume", doc.id, "refused", why)
            raise Conflict(why)
        await self.cp.windows.refuse_if_frozen(who.name, "rollout.resume", doc.id, doc.pool)
        now = time.time()
        doc.state, doc.resume_to = _state(doc), None
        if doc.paused_left_s is not None:
            doc.phase_ends_at, doc.paused_left_s = now + doc.paused_left_s, None
        doc.detail = f"resumed by {who.name}"
        await self._decided(doc, who, "rollout.resume", now)
        return doc

    async def abort(self, who: Principal, ref: str) -> RolloutDoc:
        """Stop the rollout and roll back every agent it upgraded."""
        who.require("operator")
        async with self._lock:
            return await self._abort(who, ref)

    async def _abort(self, who: Principal, ref: str) -> RolloutDoc:
        doc = self.get(ref)
        if not doc.active:
            why = f"rollout {doc.id} is {doc.state} already"
            await self.cp.fleet.audit(who.name, "rollout.abort", doc.id, "refused", why)
            raise Conflict(why)
        now = time.time()
        self._halt(doc, f"aborted by {who.name}", now, state="aborted")
        await self._decided(doc, who, "rollout.abort", now)
        return doc

    async def _decided(self, doc: RolloutDoc, who: Principal, action: str, now: float) -> None:
        await self.cp.fleet.audit(who.name, action, doc.id, "ok", f"pool {doc.pool}: {doc.detail}")
        self._changed(doc)
        await self._save(now)
        self._wake.set()

    # ----------------------------------------------------------------- tick

    async def tick(self, now: float) -> None:
        """Move every rollout on as far as it can go now, then write and publish."""
        async with self._lock:
            for doc in list(self.docs.values()):
                if doc.active or self._cleaning(doc):
                    await self._advance(doc, now)
            await self._save(now)
            await self.prune()

    async def prune(self) -> list[str]:
        """Delete the finished rollouts past the newest ``rollouts_kept`` of each pool
        (they hold every agent's steps, and were never deleted); returns their ids."""
        keep = self.cp.settings.rollouts_kept
        seen: dict[str, int] = {}
        gone: list[str] = []
        for doc in sorted(self.docs.values(), key=lambda d: d.created_at, reverse=True):
            if doc.active or self._cleaning(doc) or doc.id in self._dirty:
                continue
            seen[doc.pool] = seen.get(doc.pool, 0) + 1
            if seen[doc.pool] <= keep:
                continue
            try:
                await self.cp.store.delete_document(KIND, doc.id)
            except FleetError as exc:
                log.error("deleting rollout %s failed, will retry: %s", doc.id, exc)
                break
            for book in (self.docs, self._shown, self._saved_at, self._sampled_at):
                book.pop(doc.id, None)
            gone.append(doc.id)
        if gone:
            log.info("deleted %d finished rollouts past the %d kept per pool", len(gone), keep)
        return gone

    async def _advance(self, doc: RolloutDoc, now: float) -> None:
        self._follow(doc, now)
        if not doc.active:
            self._rollbacks(doc)
            return
        self._sample(doc, now)
        reason = self._gate(doc, final=False)
        if reason is not None:
            self._halt(doc, f"health gate: {reason}", now)
        elif doc.state == "waiting":
            self._wait(doc, now)
        elif doc.state in ("canary", "wave"):
            self._wave(doc, now)
        elif doc.state in ("soaking", "pausing"):
            await self._phase_end(doc, now)

    def _wave(self, doc: RolloutDoc, now: float) -> None:
        agents = doc.wave_agents(doc.wave)
        pending = [a for a in agents if a.step == "pending"]
        if pending:
            if self.cp.fleet.in_grace:
                return  # just started: who is away is not known yet, so nobody is skipped
            held = self.cp.windows.hold(doc.pool, now)
            if held is not None:
                self._hold(doc, held, now)
                return
            for a in pending:
                self._send(doc, a, now)
            self._changed(doc)
            return
        if any(a.step == "upgrading" for a in agents):
            return
        bad = next((a for a in agents if a.step in ("failed", "rolled_back")), None)
        if bad is not None:
            what = "canary" if doc.wave == 0 else f"wave {doc.wave}"
            self._halt(doc, f"{bad.name} ({what}) {bad.step.replace('_', ' ')}: {bad.detail}", now)
            return
        upgraded = sum(a.step == "upgraded" for a in agents)
        if doc.wave == 0 and upgraded == 0:
            self._halt(
                doc, "no canary could be upgraded (away or refused): nothing was proven", now
            )
            return
        skipped = len(agents) - upgraded
        if doc.wave == 0:
            doc.state, doc.phase_ends_at = "soaking", now + doc.soak_s
            doc.detail = (
                f"{count(upgraded, 'canary', 'canaries')} upgraded; "
                f"soaking for {format_duration(doc.soak_s)}"
            )
        else:
            doc.state, doc.phase_ends_at = "pausing", now + doc.pause_s
            doc.detail = (
                f"wave {doc.wave} of {doc.last_wave()}: {upgraded} upgraded, {skipped} not; "
                f"watching for {format_duration(doc.pause_s)}"
            )
        self._audit(doc, "rollout.wave", doc.detail)
        self._changed(doc)

    async def _phase_end(self, doc: RolloutDoc, now: float) -> None:
        if doc.phase_ends_at is not None and now < doc.phase_ends_at:
            return
        reason = self._gate(doc, final=True)
        if reason is not None:
            self._halt(doc, f"health gate: {reason}", now)
            return
        later = sorted({a.wave for a in doc.agents if a.wave > doc.wave})
        if not later:
            await self._finish(doc, now)
            return
        doc.wave, doc.state, doc.phase_ends_at = later[0], "wave", None
        doc.detail = f"wave {doc.wave} of {doc.last_wave()}"
        self._changed(doc)
        self._wave(doc, now)

    def _hold(self, doc: RolloutDoc, held: Hold, now: float) -> None:
        if doc.state != "waiting":
            doc.resume_to = doc.state
        detail = f"pool {doc.pool} is {held.text}"
        if doc.state != "waiting" or doc.detail != detail:
            doc.state, doc.detail, doc.phase_ends_at = "waiting", detail, held.until
            self._audit(doc, "rollout.wait", detail)
            self._changed(doc)

    def _wait(self, doc: RolloutDoc, now: float) -> None:
        resume = _state(doc)
        # Watching needs no window; only a change (a wave, the pin) does.
        held = (
            self.cp.windows.freeze(doc.pool, now)
            if resume in ("soaking", "pausing")
            else self.cp.windows.hold(doc.pool, now)
        )
        if held is not None:
            self._hold(doc, held, now)
            return
        doc.state, doc.resume_to = resume, None
        doc.phase_ends_at = now if resume in ("soaking", "pausing") else None
        doc.detail = f"went on at {time.strftime('%H:%M:%S UTC', time.gmtime(now))}"
        self._changed(doc)

    async def _finish(self, doc: RolloutDoc, now: float) -> None:
        frozen = self.cp.windows.freeze(doc.pool, now)
        if frozen is not None:
            self._hold(doc, frozen, now)
            return
        fleet = self.cp.fleet
        self._unmark(doc, refresh=False)
        actor = self._actor(doc).name
        pin = merged(
            fleet.pins.get(("pool", doc.pool)), "pool", doc.pool, doc.version, None, now, actor
        )
        await fleet.set_pin(pin)
        upgraded = sum(a.step == "upgraded" for a in doc.agents)
        away = len(doc.agents) - upgraded
        doc.state, doc.finished_at, doc.phase_ends_at = "done", now, None
        doc.detail = (
            f"{upgraded} of {len(doc.agents)} agents upgraded; "
            f"pool {doc.pool} pinned to {doc.version}"
        )
        if away:
            doc.detail += f"; the pin upgrades the {away} others when they can be"
        fleet.audit_later(
            actor, "pool.pin", doc.pool, "ok", f"version {doc.version} (rollout done)"
        )
        self._audit(doc, "rollout.done", doc.detail)
        self._changed(doc)

    def _halt(
        self, doc: RolloutDoc, reason: str, now: float, state: RolloutState = "halted"
    ) -> None:
        """End the rollout (halted or aborted) and roll back what it upgraded."""
        doc.state = state
        doc.detail, doc.finished_at = reason, now
        doc.phase_ends_at = doc.resume_to = doc.paused_left_s = None
        for a in doc.agents:
            if a.step in ("upgraded", "upgrading"):
                a.rollback = "pending"
        self._unmark(doc)
        if state != "aborted":
            self._audit(doc, "rollout.halt", reason)
        self._rollbacks(doc)
        self._changed(doc)

    # -------------------------------------------------------------- agents

    def _send(self, doc: RolloutDoc, a: AgentDoc, now: float) -> None:
        fleet = self.cp.fleet
        live = fleet.agents.get(a.agent_id)
        own = fleet.pins.get(("agent", a.agent_id))
        if live is None:
            a.step, a.detail = "skipped", "no longer enrolled"
        elif own is not None and own.version is not None:
            a.step, a.detail = "skipped", f"has its own pin, to {own.version}"
        elif live.version == doc.version:
            a.step, a.detail = "skipped", f"runs {doc.version} already"
        elif not self.cp.reachable(live) or live.state not in HEALTHY:
            a.step = "skipped"
            a.detail = f"{live.state.value} at its turn; the pool's pin upgrades it when it is back"
        else:
            a.step, a.started_at, a.from_version = "upgrading", now, live.version
            a.baseline = problems(live, self.cp.settings, now)
            a.detail = "requested"
            doc.gauges.pop(a.agent_id, None)
            self._spawn(self._upgrade(doc, a, live))
            return
        self._unmark_agent(doc, a.agent_id)

    async def _upgrade(self, doc: RolloutDoc, a: AgentDoc, live: LiveAgent) -> None:
        try:
            result = await self.cp.upgrades.upgrade(self._actor(doc), live, doc.version)
        except NotFound as exc:
            a.step, a.detail = "failed", exc.message
        except FleetError as exc:
            # Gone before it answered, or no answer: not a verdict on the release (the
            # pool's pin tries it again later), as an agent away at its turn.
            if a.step == "upgrading":
                a.step, a.detail = "refused", f"not sent: {exc.message}"
                self._unmark_agent(doc, a.agent_id)
        else:
            if result.error is not None:
                refused = result.error.code == "busy"
                a.step = "refused" if refused else "failed"
                a.detail = f"{result.error.code}: {result.error.message}"
                if refused:
                    self._unmark_agent(doc, a.agent_id)
        self._changed(doc)
        self._wake.set()

    def _follow(self, doc: RolloutDoc, now: float) -> None:
        """See which upgrades in flight ended: running, failed, rolled back or too late."""
        settings = self.cp.settings
        deadline = settings.upgrade_deadline_s + settings.upgrade_margin_s
        for a in doc.agents:
            if a.step != "upgrading":
                continue
            live = self.cp.fleet.agents.get(a.agent_id)
            info = live.upgrade if live is not None else None
            mine = info is not None and info.version == doc.version
            if live is None:
                a.step, a.detail = "skipped", "no longer enrolled"
            elif (
                mine and info is not None and info.step == "running" and live.version == doc.version
            ):
                a.step, a.detail = "upgraded", f"runs {doc.version}"
                doc.gauges[a.agent_id] = Gauge(uptime=live.uptime_s, baseline=a.baseline)
                live.rollout_version = doc.version  # what it should run now: no ≠ beside it
                self.cp.fleet.refresh(live)
            elif mine and info is not None and info.step in _ENDED:
                a.step, a.detail = _ENDED[info.step], info.detail or info.step
            elif a.started_at is not None and now > a.started_at + deadline:
                a.step = "failed"
                a.detail = (
                    f"did not report running {doc.version} within {deadline:.0f} s "
                    "(upgrade_deadline_s + upgrade_margin_s)"
                )
            else:
                continue
            if a.step != "upgraded":
                self._unmark_agent(doc, a.agent_id)
            self._changed(doc)

    def _rollbacks(self, doc: RolloutDoc) -> None:
        """Roll back the agents of a halted rollout whose upgrades have ended."""
        for a in doc.agents:
            if a.rollback != "pending" or a.step == "upgrading":
                continue
            live = self.cp.fleet.agents.get(a.agent_id)
            if a.step != "upgraded":
                a.rollback = ""  # it never ran the new version, or went back by itself
            elif live is not None and live.version not in (None, doc.version):
                a.step, a.rollback = "rolled_back", ""
                a.detail = f"back on {live.version}"
            elif live is None or not self.cp.reachable(live):
                a.rollback = "failed"
                a.detail = (
                    f"not rolled back: it is {live.state.value if live else 'gone'}; when it "
                    f"is back, roll it back by hand (fleet agents rollback {a.name}), or let "
                    "its pool's pin bring it back"
                )
            else:
                a.rollback = "sent"
                reason = f"rollout {doc.id} {doc.state}: {doc.detail}"
                # Shown as in flight at once, so that nothing else (the pin reconciler)
                # sends this agent an upgrade while its rollback goes out.
                self._step(live, doc, "restarting", f"rolling back to {a.from_version}: {reason}")
                self._spawn(self._roll_back(doc, a, live, reason))
            self._changed(doc)

    async def _roll_back(self, doc: RolloutDoc, a: AgentDoc, live: LiveAgent, reason: str) -> None:
        try:
            result = await self.cp.upgrades.rollback(self._actor(doc), live, reason)
        except FleetError as exc:
            a.rollback, a.detail = "failed", f"rollback not sent: {exc.message}"
        else:
            if result.error is None:
                a.step, a.detail = "rolled_back", f"rolled back to {a.from_version}"
            else:
                a.rollback = "failed"
                a.detail = f"rollback refused: {result.error.message}"
        if a.rollback == "failed":
            self._step(live, doc, "refused", a.detail)
        self._changed(doc)
        self._wake.set()

    def _step(self, live: LiveAgent, doc: RolloutDoc, step: UpgradeStep, detail: str) -> None:
        info = UpgradeInfo(
            version=doc.version, step=step, detail=detail, from_version=doc.version, at=time.time()
        )
        self.cp.upgrades.record(live, info)

    def _on_step(self, agent: LiveAgent, info: UpgradeInfo) -> None:
        # An agent's step: shown at once, and the tick that acts on it comes sooner.
        # On the leading replica only, which runs the rollouts (the agent's holder
        # tells it, controlplane/replicas.py); another would save a stale copy.
        if not self.cp.fleet.leader:
            return
        for doc in self.docs.values():
            if doc.version != info.version or not (doc.active or self._cleaning(doc)):
                continue
            for a in doc.agents:
                if a.agent_id == agent.id and a.step == "upgrading":
                    a.detail = info.step + (f": {info.detail}" if info.detail else "")
                    self._changed(doc)
                    self._wake.set()

    # ------------------------------------------------------------- the gate

    def _sample(self, doc: RolloutDoc, now: float) -> None:
        fleet = self.cp.fleet
        last = self._sampled_at.get(doc.id, 0.0)
        if fleet.in_grace or now - last < 0.9 * self.cp.settings.rollout_tick_s:
            return
        self._sampled_at[doc.id] = now
        steps = {a.agent_id: a.step for a in doc.agents}
        for agent in fleet.members.get(doc.pool, {}).values():
            if agent.state in (Presence.PENDING, Presence.REVOKED, Presence.STOPPED):
                continue
            if steps.get(agent.id) in ("upgrading", "failed", "rolled_back"):
                continue
            gauge = doc.gauges.get(agent.id)
            if gauge is None:  # first seen: what ails it already is not held against it
                gauge = doc.gauges[agent.id] = Gauge(
                    baseline=problems(agent, self.cp.settings, now)
                )
            sample(gauge, agent, self.cp.settings, now)

    def _gate(self, doc: RolloutDoc, final: bool) -> str | None:
        if self.cp.fleet.in_grace:
            return None
        upgraded = {a.agent_id for a in doc.agents if a.step == "upgraded"}
        out = {a.agent_id for a in doc.agents if a.step in ("upgrading", "failed", "rolled_back")}
        gauges = {k: g for k, g in doc.gauges.items() if k not in out}
        return verdict(gauges, upgraded, self.cp.settings.rollout_gate_margin, final)

    # ---------------------------------------------------------- bookkeeping

    def _cleaning(self, doc: RolloutDoc) -> bool:
        """A finished rollout with rollbacks still to send."""
        return not doc.active and any(a.rollback == "pending" for a in doc.agents)

    def _mark(self, doc: RolloutDoc) -> None:
        for a in doc.agents:
            live = self.cp.fleet.agents.get(a.agent_id)
            if live is not None and a.step in ("pending", "upgrading", "upgraded"):
                live.rollout = doc.id
                live.rollout_version = doc.version if a.step == "upgraded" else None
                self.cp.fleet.refresh(live)

    def _unmark(self, doc: RolloutDoc, refresh: bool = True) -> None:
        for a in doc.agents:
            self._unmark_agent(doc, a.agent_id, refresh)

    def _unmark_agent(self, doc: RolloutDoc, agent_id: str, refresh: bool = True) -> None:
        live = self.cp.fleet.agents.get(agent_id)
        if live is not None and live.rollout == doc.id:
            live.rollout = None
            live.rollout_version = None
            if refresh:
                self.cp.fleet.refresh(live)

    def _actor(self, doc: RolloutDoc) -> Principal:
        return Principal(f"rollout:{doc.id}", "admin")

    def _audit(self, doc: RolloutDoc, action: str, detail: str) -> None:
        self.cp.fleet.audit_later(self._actor(doc).name, action, f"pool:{doc.pool}", "ok", detail)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _changed(self, doc: RolloutDoc) -> None:
        self._dirty.add(doc.id)

    async def _save(self, now: float) -> None:
        """Write the rollouts that changed (and the gate's counts now and then); publish
        each whose view changed."""
        due = {
            d.id
            for d in self.docs.values()
            if d.active and now - self._saved_at.get(d.id, 0.0) >= GAUGE_SAVE_S
        }
        for doc_id in sorted(self._dirty | due):
            doc = self.docs[doc_id]
            info = to_info(doc)
            shown = self._shown.get(doc_id)
            if shown is None or msgspec.structs.replace(
                shown, updated_at=0.0
            ) != msgspec.structs.replace(info, updated_at=0.0):
                doc.updated_at = now
                info = to_info(doc)
                self._shown[doc_id] = info
                self.cp.fleet.bus.publish(partial(_update, info))
            try:
                await self.cp.store.put_document(KIND, doc.id, msgspec.to_builtins(doc), now)
            except FleetError as exc:
                log.error("writing rollout %s failed, will retry: %s", doc.id, exc)
                continue
            self._dirty.discard(doc_id)
            self._saved_at[doc_id] = now


_ENDED: dict[str, RolloutAgentStep] = {
    "failed": "failed",
    "rolled_back": "rolled_back",
    "refused": "refused",
}
"""An agent's upgrade steps that end it badly, and the rollout step each is."""

_RESUMABLE: dict[str, RolloutState] = {
    "canary": "canary",
    "wave": "wave",
    "soaking": "soaking",
    "pausing": "pausing",
}


def _state(doc: RolloutDoc) -> RolloutState:
    """The state a waiting or paused rollout goes back to."""
    return _RESUMABLE.get(doc.resume_to or "", "canary" if doc.wave == 0 else "wave")


def _update(info: RolloutInfo, seq: int) -> RolloutUpdate:
    return RolloutUpdate(seq=seq, rollout=info)
