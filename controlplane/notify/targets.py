"""What an alert concerns, as the labels receivers route on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleet.protocol import AlertInfo

if TYPE_CHECKING:
    from ..fleet import Fleet

__all__ = ["target_labels"]


def target_labels(fleet: Fleet, alert: AlertInfo) -> dict[str, str]:
    """``agent`` (its name), ``agent_id`` and ``pool`` for an agent's alert;
    ``connection`` (and ``pools``, comma-separated) for a connection's; ``pool`` for a
    pool's."""
    target = alert.target
    if target.startswith("pool:"):
        return {"pool": target.removeprefix("pool:")}
    if target.startswith("connection:"):
        name = target.removeprefix("connection:")
        conn = fleet.connections.get(name)
        labels = {"connection": name}
        if conn is not None:
            labels["pools"] = ",".join(conn.pools)
        return labels
    agent = fleet.agents.get(target)
    if agent is None:
        return {"agent_id": target}
    return {"agent": agent.record.name, "agent_id": target, "pool": agent.record.pool}
