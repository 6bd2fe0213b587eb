"""Run a remediation's action, and follow a restart or rollback until the agent is back.

The action goes the way an operator's would: :mod:`controlplane.upgrades` sends
the command over the agent's channel (audited as ``agent.restart`` and so on, by
the actor: ``remediation:POOL`` or the approver), and
:mod:`controlplane.connection_moves` edits the connections.  The record
(:mod:`controlplane.remediation_book`) says how it went: a renewal or a move is
done when it returns; a restart or rollback when the agent is back (connected
after the command, heartbeating, with an uptime shorter than the time since),
failed when it is not back within ``remediation_verify_s``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fleet.protocol import CommandFinished, Presence, RenewResult
from fleet.units import format_duration

from .connection_moves import move_connections
from .errors import FleetError, NotFound
from .live import LiveAgent
from .operators import Principal
from .remediation_book import Remediation, RemediationBook, actor_of

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["RemediationActions"]

_HEALTHY = (Presence.CONNECTED, Presence.DEGRADED)


class RemediationActions:
    """Runs actions and follows them to ``done`` or ``failed``.

    Args:
        cp: the control plane (its fleet, settings and upgrades).
        book: where the records are.
        clock: the wall clock.
    """

    def __init__(self, cp: ControlPlane, book: RemediationBook, clock: Callable[[], float]) -> None:
        self.cp = cp
        self.fleet = cp.fleet
        self.book = book
        self.clock = clock

    async def execute(self, rec: Remediation, actor: Principal) -> None:
        """Run ``rec``'s action as ``actor``; the record says how it went."""
        info = rec.info
        try:
            if info.action == "move_connections":
                detail, rec.moved = await move_connections(self.fleet, actor, info.pool)
                await self.book.move(rec, "done", actor.name, self.clock(), detail=detail)
                return
            agent = self.fleet.agents.get(info.agent_id)
            if agent is None:
                raise NotFound(f"agent {info.agent_name} was removed")
            rec.started_at = self.clock()
            result = await self._send(
                info.action, actor, agent, f"remediation {rec.id}: {info.condition}"
            )
        except FleetError as exc:
            await self.book.move(rec, "failed", actor.name, self.clock(), detail=exc.message)
            return
        if result.error is not None:
            why = f"the agent refused: {result.error.code}: {result.error.message}"
            await self.book.move(rec, "failed", actor.name, self.clock(), detail=why)
        elif isinstance(result.result, RenewResult):
            left = format_duration(max(result.result.not_after - self.clock(), 0))
            await self.book.move(
                rec,
                "done",
                actor.name,
                self.clock(),
                detail=f"certificate renewed: valid {left} more",
            )
        elif rec.state == "running":  # a restart or a rollback: done when the agent is back
            await self.book.touch(rec, self.clock(), "sent: waiting for the agent to come back")

    async def _send(
        self, action: str, actor: Principal, agent: LiveAgent, reason: str
    ) -> CommandFinished:
        upgrades = self.cp.upgrades
        if action == "restart":
            return await upgrades.restart(actor, agent, reason)
        if action == "renew":
            return await upgrades.renew(actor, agent, reason)
        return await upgrades.rollback(actor, agent, reason)

    async def follow(self, now: float) -> None:
        """Finish the restarts and rollbacks whose agent is back, fail those past
        ``remediation_verify_s``."""
        limit = self.cp.settings.remediation_verify_s
        for rec in self.book.in_state("running"):
            started = rec.started_at
            if started is None or rec.info.action not in ("restart", "rollback"):
                continue
            agent = self.fleet.agents.get(rec.info.agent_id)
            actor = actor_of(rec.info.pool)
            if agent is None:
                await self.book.move(rec, "failed", actor, now, detail="the agent was removed")
            elif _back(agent, started):
                elapsed = now - started
                uptime = agent.uptime_s or 0.0
                if uptime <= elapsed + 2.0:
                    detail = f"back after {elapsed:.1f} s, running {agent.version or '?'}"
                    await self.book.move(rec, "done", actor, now, detail=detail)
                else:
                    detail = f"it reconnected without restarting (uptime {format_duration(uptime)})"
                    await self.book.move(rec, "failed", actor, now, detail=detail)
            elif now - started > limit:
                detail = f"the agent was not back within remediation_verify_s ({limit:g} s)"
                await self.book.move(rec, "failed", actor, now, detail=detail)


def _back(agent: LiveAgent, since: float) -> bool:
    """Connected again after ``since``, with a heartbeat on the new channel."""
    connected = agent.connected_at
    beat = agent.last_heartbeat_at
    return (
        agent.state in _HEALTHY
        and connected is not None
        and connected > since
        and beat is not None
        and beat > connected
    )
