"""Pools: list, show, probe policy (set, show, clear), pin (set, show, clear)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..errors import NotFound
from ..fleet import Fleet
from ..pin_edits import clear_pin, set_pin
from ..policy import ProbePolicy
from ..pool_edits import clear_policy, get_pin, get_policy
from .deps import CP, Admin, Viewer
from .models import PinInfo, PolicyCleared, PoolInfo
from .names import PoolName
from .pins import PartQuery, PinBody
from .responses import errors

router = APIRouter()


def _pool_names(fleet: Fleet) -> set[str]:
    pinned = {name for scope, name in fleet.pins if scope == "pool"}
    routed = {pool for conn in fleet.connections.values() for pool in conn.pools}
    return set(fleet.members) | set(fleet.pools) | pinned | routed


def _info(fleet: Fleet, name: str) -> PoolInfo:
    pin = fleet.pins.get(("pool", name))
    policy = fleet.pools.get(name)
    return PoolInfo(
        name=name,
        agents=len(fleet.members.get(name, {})),
        healthy=len(fleet.healthy_in_pool(name)),
        pin=PinInfo.of(pin) if pin else None,
        policy=policy.as_dict() if policy else None,
        pinned_version=pin.version if pin else None,
    )


@router.get("/v1/pools", response_model=list[PoolInfo], responses=errors())
async def list_pools(cp: CP, who: Viewer) -> list[PoolInfo]:
    return [_info(cp.fleet, name) for name in sorted(_pool_names(cp.fleet))]


@router.get("/v1/pools/{pool}", response_model=PoolInfo, responses=errors(404))
async def show_pool(pool: PoolName, cp: CP, who: Viewer) -> PoolInfo:
    if pool not in _pool_names(cp.fleet):
        raise NotFound(
            f"no pool {pool!r}: no agent, connection, policy or pin names it; "
            "list pools with GET /v1/pools (fleet pools list)"
        )
    return _info(cp.fleet, pool)


@router.put("/v1/pools/{pool}/policy", response_model=ProbePolicy, responses=errors(400, 403))
async def set_policy(pool: PoolName, body: ProbePolicy, cp: CP, who: Admin) -> dict[str, Any]:
    await cp.fleet.set_policy(pool, body)
    await cp.fleet.audit(who.name, "pool.policy", f"pool:{pool}", "ok", str(body.as_dict()))
    return body.as_dict()


@router.get("/v1/pools/{pool}/policy", response_model=ProbePolicy, responses=errors(404))
async def show_policy(pool: PoolName, cp: CP, who: Viewer) -> dict[str, Any]:
    return get_policy(cp.fleet, pool).as_dict()


@router.delete("/v1/pools/{pool}/policy", response_model=PolicyCleared, responses=errors(403, 404))
async def delete_policy(pool: PoolName, cp: CP, who: Admin) -> PolicyCleared:
    policy = await clear_policy(cp.fleet, who, pool)
    return PolicyCleared(pool=pool, policy=policy.as_dict())


@router.put("/v1/pools/{pool}/pin", response_model=PinInfo, responses=errors(400, 403, 409))
async def pin_pool(pool: PoolName, body: PinBody, cp: CP, who: Admin) -> PinInfo:
    """Sets the version and/or config of the pool's pin (a field not given keeps its
    value); 409 while the pool is frozen."""
    return PinInfo.of(await set_pin(cp, who, "pool", pool, body.version, body.config))


@router.get("/v1/pools/{pool}/pin", response_model=PinInfo, responses=errors(404))
async def show_pool_pin(pool: PoolName, cp: CP, who: Viewer) -> PinInfo:
    return PinInfo.of(get_pin(cp.fleet, "pool", pool))


@router.delete("/v1/pools/{pool}/pin", response_model=PinInfo, responses=errors(403, 404, 409))
async def unpin_pool(pool: PoolName, cp: CP, who: Admin, part: PartQuery = None) -> PinInfo:
    """Clears the pin, or one part of it; answers with the pin as it was; 409 while
    the pool is frozen."""
    return PinInfo.of(await clear_pin(cp, who, "pool", pool, part))
