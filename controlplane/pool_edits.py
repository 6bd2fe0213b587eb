"""Pins and pool policies: find them, and clear a policy with its effects on the fleet."""

from __future__ import annotations

from .errors import NotFound
from .fleet import Fleet
from .operators import Principal
from .policy import ProbePolicy
from .store.base import PinRecord

__all__ = ["clear_policy", "get_pin", "get_policy"]


def _pin_hint(scope: str, name: str) -> str:
    path = f"/v1/pools/{name}/pin" if scope == "pool" else f"/v1/agents/{name}/pin"
    return f"no pin on {scope} {name}; set one with PUT {path}"


def get_pin(fleet: Fleet, scope: str, name: str) -> PinRecord:
    """The pin set on exactly this pool or agent (not one it inherits), or a 404."""
    pin = fleet.pins.get((scope, name))
    if pin is None:
        raise NotFound(_pin_hint(scope, name))
    return pin


def get_policy(fleet: Fleet, pool: str) -> ProbePolicy:
    """The pool's probe policy, or a 404 that says how to set one."""
    policy = fleet.pools.get(pool)
    if policy is None:
        raise NotFound(
            f"pool {pool!r} has no probe policy; set one with PUT /v1/pools/{pool}/policy"
        )
    return policy


async def clear_policy(fleet: Fleet, actor: Principal, pool: str) -> ProbePolicy:
    """Remove a pool's probe policy: no probe is allowed there until one is set again."""
    actor.require("admin")
    try:
        policy = get_policy(fleet, pool)
    except NotFound:
        await fleet.audit(actor.name, "pool.policy.clear", f"pool:{pool}", "refused", "none")
        raise
    await fleet.store.delete_pool(pool)
    del fleet.pools[pool]
    # With no policy there is no minimum, so its below-minimum alert goes too.
    fleet.publish_alerts([], fleet.alerts.clear_target(f"pool:{pool}"))
    await fleet.settle_alerts()
    await fleet.audit(actor.name, "pool.policy.clear", f"pool:{pool}", "ok", str(policy.as_dict()))
    return policy
