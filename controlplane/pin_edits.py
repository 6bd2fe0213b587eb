"""Set and clear pins of pools and agents, field by field, with what may refuse them.

Setting a version keeps the config pin and setting a config keeps the version pin
(:mod:`controlplane.pin_rules`); clearing takes one part or both.  A freeze of the
pool (an agent's pool, for an agent's pin) refuses any change with 409, audited; so
does a change of a pool's version while a rollout moves the pool.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .errors import BadRequest, Conflict, NotFound
from .operators import Principal
from .pin_rules import Part, merged, without
from .pool_edits import get_pin
from .store.base import PinRecord

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["clear_pin", "set_pin"]


def _pool_of(cp: ControlPlane, scope: str, name: str) -> str:
    if scope == "pool":
        return name
    agent = cp.fleet.agents.get(name)
    return agent.record.pool if agent is not None else name


async def _check_allowed(
    cp: ControlPlane, who: Principal, action: str, scope: str, name: str, version: bool
) -> None:
    """Refuse (409, audited) during a freeze of the pool, and a change of a pool's
    version while a rollout moves that pool (the rollout sets it when done)."""
    pool = _pool_of(cp, scope, name)
    await cp.windows.refuse_if_frozen(who.name, action, name, pool)
    rollout = cp.rollouts.active_in(pool) if scope == "pool" and version else None
    if rollout is not None:
        why = f"rollout {rollout.id} of {rollout.version} is {rollout.state} in pool {pool}"
        await cp.fleet.audit(who.name, action, name, "refused", why)
        raise Conflict(
            f"{why}: it sets the pool's version when done; abort it first "
            f"(fleet rollouts abort {rollout.id}) to pin another"
        )


async def set_pin(
    cp: ControlPlane,
    who: Principal,
    scope: str,
    name: str,
    version: str | None,
    config: dict[str, Any] | None,
) -> PinRecord:
    """Set the version and/or the config of the pin of a pool or an agent (a field
    not given keeps its value), and audit it."""
    who.require("admin")
    action = f"{scope}.pin"
    if version is None and config is None:
        await cp.fleet.audit(who.name, action, name, "refused", "empty pin")
        raise BadRequest("give a version, a config, or both")
    await _check_allowed(cp, who, action, scope, name, version is not None)
    existing = cp.fleet.pins.get((scope, name))
    pin = merged(existing, scope, name, version, config, time.time(), who.name)
    await cp.fleet.set_pin(pin)
    kept = []
    if existing is not None and version is None and existing.version is not None:
        kept.append("version")
    if existing is not None and config is None and existing.config is not None:
        kept.append("config")
    await cp.fleet.audit(
        who.name,
        action,
        name,
        "ok",
        f"version {pin.version}, config {pin.config is not None}"
        + (f" ({' and '.join(kept)} kept)" if kept else ""),
    )
    return pin


async def clear_pin(
    cp: ControlPlane, who: Principal, scope: str, name: str, part: Part | None = None
) -> PinRecord:
    """Clear ``part`` of a pin (None: all of it); the agents it covered get their
    drift checked again at once.  Returns the pin as it was."""
    who.require("admin")
    fleet = cp.fleet
    action = f"{scope}.unpin"
    try:
        pin = get_pin(fleet, scope, name)
        if part is not None and getattr(pin, part) is None:
            raise NotFound(f"the pin of {scope} {name} sets no {part}")
    except NotFound as exc:
        await fleet.audit(who.name, action, name, "refused", exc.message)
        raise
    await _check_allowed(cp, who, action, scope, name, part != "config")
    rest = without(pin, part)
    if rest is None:
        await fleet.store.delete_pin(scope, name)
        del fleet.pins[(scope, name)]
        members = (
            fleet.members.get(name, {}).values()
            if scope == "pool"
            else [a for a in (fleet.agents.get(name),) if a is not None]
        )
        for agent in list(members):
            fleet.apply_pin(agent)
            fleet.refresh(agent)
    else:
        await fleet.set_pin(rest)
    what = "the whole pin" if part is None else f"the {part}"
    await fleet.audit(
        who.name,
        action,
        name,
        "ok",
        f"cleared {what}; was version {pin.version}, config {pin.config is not None}",
    )
    return pin
