"""Decommission an agent, or forget a pending one: revoke, then remove it from the fleet.

The agent's row goes from the store; its certificates stay there, revoked, so
the identity is refused if it ever dials in again, and the audit keeps the
record of who removed what.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from fleet.protocol import AgentRemoved

from .errors import NotFound
from .live import LiveAgent
from .operators import Principal
from .state import ControlPlane

__all__ = ["Removal", "RemovalAction", "decommission", "remove_live"]

RemovalAction = Literal["agent.decommission", "agent.forget"]


@dataclass(frozen=True)
class Removal:
    """What :func:`decommission` did: ``agent.decommission`` or ``agent.forget``."""

    id: str
    name: str
    action: RemovalAction


def _never_connected(agent: LiveAgent) -> bool:
    return agent.connected_at is None and agent.last_heartbeat_at is None


async def decommission(cp: ControlPlane, actor: Principal, agent_id: str) -> Removal:
    """Revoke the agent (closing its channel) unless it is already, then remove it.

    Removal drops it from the live fleet and its pool, clears its alerts and
    its own pin, re-routes connections and tells dashboards (``agent_removed``).
    An agent that never connected is "forgotten": the same steps, audited as
    ``agent.forget``.

    Args:
        agent_id: The agent's id or name.
    """
    actor.require("admin")
    try:
        agent = cp.agent(agent_id)
    except NotFound:
        await cp.fleet.audit(actor.name, "agent.decommission", agent_id, "refused", "unknown")
        raise
    action: RemovalAction = "agent.forget" if _never_connected(agent) else "agent.decommission"
    if not agent.record.revoked:
        await cp.revoke(actor, agent.id)
    await cp.store.delete_agent(agent.id)
    # Its alerts clear (stored, published) before dashboards are told it is gone.
    cp.fleet.publish_alerts([], cp.fleet.alerts.clear_target(agent.id))
    await cp.fleet.settle_alerts()
    remove_live(cp, agent)
    await cp.fleet.audit(
        actor.name, action, agent.id, "ok", f"name {agent.record.name}, pool {agent.record.pool}"
    )
    return Removal(agent.id, agent.record.name, action)


def remove_live(cp: ControlPlane, agent: LiveAgent) -> None:
    """Drop the agent from the live fleet and tell dashboards (here, or on a replica
    that learns of the removal from the outbox)."""
    fleet = cp.fleet
    fleet.unindex(agent)
    cp.channels.pop(agent.id, None)
    fleet.pins.pop(("agent", agent.id), None)
    fleet.bus.forget_agent(agent.id)
    fleet.bus.publish(partial(_removed, agent.id))
    fleet.update_connections()
    fleet.check_pools()


def _removed(agent_id: str, seq: int) -> AgentRemoved:
    return AgentRemoved(seq=seq, agent_id=agent_id)
