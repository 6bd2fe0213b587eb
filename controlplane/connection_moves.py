"""Move a pool's connections to their next pool, and move them back (remediation).

A connection's pools are its preference list.  Moving pool ``a``'s connections
swaps ``a`` with the pool after it in each list that has one (``[a, b]`` becomes
``[b, a]``; ``[x, a, b]`` becomes ``[x, b, a]``), through
:func:`~controlplane.connection_edits.update_connection`, so each change is
re-routed, published and audited as ``connection.update`` like an admin's edit.
What was moved is kept, so an admin can put it back: a connection changed since
by someone else is left as it is now.
"""

from __future__ import annotations

from .connection_edits import update_connection
from .fleet import Fleet
from .operators import Principal
from .remediation_rules import moved_order

__all__ = ["Moves", "move_connections", "revert_moves"]

Moves = dict[str, dict[str, list[str]]]
"""Connection name -> ``{"before": pools, "after": pools}``."""


async def move_connections(fleet: Fleet, actor: Principal, pool: str) -> tuple[str, Moves]:
    """Move every connection that prefers ``pool`` to another pool after it.

    Returns what happened in words and the moves made (to revert them).
    """
    moves: Moves = {}
    for conn in sorted(fleet.connections.values(), key=lambda c: c.name):
        after = moved_order(conn.pools, pool)
        if after is None:
            continue
        await update_connection(fleet, actor, conn.name, None, None, after)
        moves[conn.name] = {"before": list(conn.pools), "after": after}
    if not moves:
        return f"nothing to move: no connection lists pool {pool} before another pool", moves
    return "moved " + "; ".join(_change(name, m) for name, m in moves.items()), moves


async def revert_moves(fleet: Fleet, actor: Principal, moves: Moves) -> str:
    """Put back the pools of each connection in ``moves`` that still has the moved
    order; returns what was done, in words."""
    done, left = [], []
    for name, move in sorted(moves.items()):
        conn = fleet.connections.get(name)
        if conn is None:
            left.append(f"{name} (deleted since)")
        elif conn.pools != move["after"]:
            left.append(f"{name} (changed since: {', '.join(conn.pools)})")
        else:
            await update_connection(fleet, actor, name, None, None, move["before"])
            done.append(_change(name, {"before": move["after"], "after": move["before"]}))
    words = [f"put back {'; '.join(done)}"] if done else []
    if left:
        words.append(f"left as they are: {', '.join(left)}")
    return "; ".join(words)


def _change(name: str, move: dict[str, list[str]]) -> str:
    return f"{name}: {', '.join(move['before'])} -> {', '.join(move['after'])}"
