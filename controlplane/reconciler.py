"""The pin reconciler: an agent that runs another version than its pin is upgraded.

An agent whose effective pinned version differs from the one it runs is upgraded
when a release of that version is stored, it is connected, no rollout is active
in its pool, its pool is not frozen, and (for a pool's pin) a maintenance window
of the pool is open when the pool has any.  An agent's own pin upgrades it at
once, window or not (an admin asked for that one agent); a pool's pin upgrades
``pin_upgrades_per_pool`` agents of the pool at a time (a rollout is the gated
way to move a pool: this catches up the agents a rollout found away, and the
ones enrolled since).

A failed attempt is retried later, backing off as Elastic Fleet does: 1, 5, 10,
15 and 30 minutes, then every hour (:data:`RETRY_DELAYS_S`), counted from when
the attempt ended; a success, or a pin of another version, starts the count again.  A rollback
from the pinned version by anything else (a remediation, an admin, the agent's
own watchdog) counts as a failed attempt too, so the pin does not undo it at
once.  The counts are stored (documents of kind :data:`KIND`) and read when the
reconciler starts: a restart of the control plane, or another replica coming to
lead, goes on waiting rather than trying every failed upgrade again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleet.protocol import Presence, UpgradeInfo

from .errors import FleetError
from .live import LiveAgent
from .operators import Principal
from .upgrades import DONE_STEPS

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["ACTOR", "RETRY_DELAYS_S", "Backoff", "Reconciler", "retry_delay"]

log = logging.getLogger("controlplane.reconciler")

ACTOR = Principal("reconciler", "admin")
"""Who the reconciler's upgrades are sent (and audited) as."""

KIND = "pin_backoff"
"""The documents holding the failed attempts: key ``AGENT_ID VERSION``."""

RETRY_DELAYS_S = (60.0, 300.0, 600.0, 900.0, 1800.0)
"""Waits after the 1st, 2nd, ... failed attempt; after the last, :data:`HOURLY_S`."""
HOURLY_S = 3600.0


def retry_delay(failures: int) -> float:
    """The wait after ``failures`` failed attempts in a row (1 or more)."""
    if failures < 1:
        return 0.0
    return RETRY_DELAYS_S[failures - 1] if failures <= len(RETRY_DELAYS_S) else HOURLY_S


@dataclass
class _Tries:
    failures: int = 0
    next_at: float = 0.0


class Backoff:
    """Failed attempts per key (an agent and a version), and when the next may start.

    ``changed`` is told each key whose count changed (None when it was forgotten), for
    the reconciler to store it."""

    def __init__(self) -> None:
        self._tries: dict[tuple[str, str], _Tries] = {}
        self.changed: list[tuple[tuple[str, str], _Tries | None]] = []

    def load(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        """Counts as stored (``AGENT_ID VERSION`` -> failures, next_at)."""
        for key, body in rows:
            agent_id, _, version = key.partition(" ")
            try:
                tries = _Tries(int(body["failures"]), float(body["next_at"]))
            except (KeyError, TypeError, ValueError):
                continue  # written by another version: tried again at once
            self._tries[(agent_id, version)] = tries

    def ready(self, key: tuple[str, str], now: float) -> bool:
        tries = self._tries.get(key)
        return tries is None or now >= tries.next_at

    def failed(self, key: tuple[str, str], now: float) -> float:
        """Count a failed attempt that ended at ``now``; returns when the next may start."""
        tries = self._tries.setdefault(key, _Tries())
        tries.failures += 1
        tries.next_at = now + retry_delay(tries.failures)
        self.changed.append((key, tries))
        return tries.next_at

    def failures(self, key: tuple[str, str]) -> int:
        tries = self._tries.get(key)
        return tries.failures if tries else 0

    def forget(self, agent_id: str) -> None:
        """Start again for ``agent_id`` (it runs its pin, or was removed)."""
        for key in [k for k in self._tries if k[0] == agent_id]:
            del self._tries[key]
            self.changed.append((key, None))


@dataclass
class _Attempt:
    version: str
    pool: str
    started_at: float


class Reconciler:
    """Upgrades agents to their pinned version (see the module's docstring).

    Args:
        cp: the control plane (fleet, pins, windows, rollouts, releases, upgrades).
    """

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.backoff = Backoff()
        self._attempts: dict[str, _Attempt] = {}
        """Agent id -> the attempt in flight."""
        self._tasks: set[asyncio.Task[None]] = set()
        cp.upgrades.listeners.append(self._on_step)

    def _on_step(self, agent: LiveAgent, info: UpgradeInfo) -> None:
        # A rollback that was not ours (a remediation, an admin, the agent's watchdog)
        # counts as a failed attempt of that version: the pin waits before it tries
        # again, rather than undo the rollback at once.
        if info.step == "rolled_back" and agent.id not in self._attempts:
            self.backoff.failed((agent.id, info.version), time.time())

    async def load(self) -> None:
        """Read the stored failed attempts (at each start of :meth:`run`)."""
        self.backoff = Backoff()
        self.backoff.load(await self.cp.store.list_documents(KIND))

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            try:
                await self.load()
                break
            except FleetError as exc:
                log.error("reading the pin reconciler's backoff failed, will retry: %s", exc)
                await asyncio.sleep(self.cp.settings.rollout_tick_s)
        while True:
            await asyncio.sleep(self.cp.settings.rollout_tick_s)
            try:
                self.tick(time.time())
                await self.save()
            except Exception:
                log.exception("pin reconciler tick failed")

    async def save(self) -> None:
        """Store the counts that changed since the last save."""
        changed, self.backoff.changed = self.backoff.changed, []
        for n, ((agent_id, version), tries) in enumerate(changed):
            key = f"{agent_id} {version}"
            try:
                if tries is None:
                    await self.cp.store.delete_document(KIND, key)
                else:
                    body = {"failures": tries.failures, "next_at": tries.next_at}
                    await self.cp.store.put_document(KIND, key, body, time.time())
            except FleetError:
                self.backoff.changed[:0] = changed[n:]  # the next tick tries again
                raise

    def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def tick(self, now: float) -> int:
        """Look at every agent once; returns the upgrades started."""
        self._settle(now)
        started = 0
        busy: dict[str, int] = {}
        for attempt in self._attempts.values():
            busy[attempt.pool] = busy.get(attempt.pool, 0) + 1
        for agent in list(self.cp.fleet.agents.values()):
            target = agent.pinned_version
            if not target or agent.version is None or agent.version == target:
                continue
            if agent.id in self._attempts or self.why_not(agent, target, now, busy) is not None:
                continue
            pool = agent.record.pool
            self._attempts[agent.id] = _Attempt(target, pool, now)
            busy[pool] = busy.get(pool, 0) + 1
            self._spawn(self._upgrade(agent, target))
            started += 1
        return started

    def why_not(
        self, agent: LiveAgent, target: str, now: float, busy: dict[str, int] | None = None
    ) -> str | None:
        """Why ``agent`` is not upgraded to ``target`` now, in words; None: it may be."""
        cp = self.cp
        pool = agent.record.pool
        own = cp.fleet.pins.get(("agent", agent.id))
        by_pool = own is None or own.version is None
        settings = cp.settings
        if target not in cp.releases.releases:
            return f"no release {target} is stored"
        if not cp.reachable(agent) or agent.state not in (Presence.CONNECTED, Presence.DEGRADED):
            return f"it is {agent.state.value}"
        if agent.rollout is not None:
            return f"rollout {agent.rollout} moves it"
        if by_pool and cp.rollouts.active_in(pool) is not None:
            return f"a rollout is active in pool {pool}"
        if _in_flight(agent, now, settings.upgrade_deadline_s + settings.upgrade_margin_s):
            return "an upgrade or a rollback is in flight"
        if not self.backoff.ready((agent.id, target), now):
            return f"{self.backoff.failures((agent.id, target))} attempts failed: backing off"
        held = cp.windows.hold(pool, now) if by_pool else cp.windows.freeze(pool, now)
        if held is not None:
            return f"pool {pool} is {held.text}"
        if by_pool and (busy or {}).get(pool, 0) >= settings.pin_upgrades_per_pool:
            return f"{settings.pin_upgrades_per_pool} agents of pool {pool} are upgrading"
        return None

    def _settle(self, now: float) -> None:
        """End the attempts that are over: a success forgets the failures, a failure
        counts one and waits."""
        limit = self.cp.settings.upgrade_deadline_s + self.cp.settings.upgrade_margin_s
        for agent_id, attempt in list(self._attempts.items()):
            agent = self.cp.fleet.agents.get(agent_id)
            if agent is None or agent.version == attempt.version:
                del self._attempts[agent_id]
                self.backoff.forget(agent_id)
            elif not _in_flight(agent, now, limit):
                del self._attempts[agent_id]
                at = self.backoff.failed((agent_id, attempt.version), now)
                log.info(
                    "upgrade of %s to %s did not succeed; next attempt after %s",
                    agent.record.name,
                    attempt.version,
                    time.strftime("%H:%M:%S UTC", time.gmtime(at)),
                )

    async def _upgrade(self, agent: LiveAgent, version: str) -> None:
        # Not sent, or no answer: Upgrades shows it refused, and the attempt is over.
        with contextlib.suppress(FleetError):
            await self.cp.upgrades.upgrade(ACTOR, agent, version)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _in_flight(agent: LiveAgent, now: float, limit_s: float) -> bool:
    """An upgrade or rollback of ``agent`` has not ended (and is not older than ``limit_s``).

    The age is taken from the control plane's own record of the start (``requested``)
    when the agent's later steps carry its clock: good enough for a time limit of minutes.
    """
    info = agent.upgrade
    return info is not None and info.step not in DONE_STEPS and now - info.at < limit_s
