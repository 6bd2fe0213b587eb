"""Operators, pools and policies, audit, alerts, whoami."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from fleet.protocol import AlertInfo

from ..alerts import to_info
from ..policy import ProbePolicy
from .deps import CP, Admin, Operator, Viewer

router = APIRouter()


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    role: str


@router.get("/v1/whoami")
async def whoami(who: Viewer) -> dict[str, str]:
    return {"name": who.name, "role": who.role}


@router.post("/v1/users", status_code=201)
async def create_user(body: UserCreate, cp: CP, who: Admin) -> dict[str, str]:
    token = await cp.create_user(who, body.name, body.role)
    return {"name": body.name, "role": body.role, "token": token}


@router.get("/v1/users")
async def list_users(cp: CP, who: Admin) -> list[dict[str, Any]]:
    return [{"name": u.name, "role": u.role, "created_at": u.created_at} for u in cp.list_users()]


@router.get("/v1/pools")
async def list_pools(cp: CP, who: Viewer) -> list[dict[str, Any]]:
    names = {a.record.pool for a in cp.fleet.agents.values()} | set(cp.fleet.pools)
    out = []
    for name in sorted(names):
        members = [a for a in cp.fleet.agents.values() if a.record.pool == name]
        pin = cp.fleet.pins.get(("pool", name))
        policy = cp.fleet.pools.get(name)
        out.append(
            {
                "name": name,
                "agents": len(members),
                "healthy": len(cp.fleet.healthy_in_pool(name)),
                "pinned_version": pin.version if pin else None,
                "policy": policy.as_dict() if policy else None,
            }
        )
    return out


@router.put("/v1/pools/{pool}/policy")
async def set_policy(pool: str, body: ProbePolicy, cp: CP, who: Admin) -> dict[str, Any]:
    await cp.fleet.set_policy(pool, body)
    await cp.fleet.audit(who.name, "pool.policy", f"pool:{pool}", "ok", str(body.as_dict()))
    return body.as_dict()


@router.get("/v1/audit")
async def audit(
    cp: CP, who: Operator, limit: int = Query(default=100, ge=1, le=10_000)
) -> list[dict[str, Any]]:
    return [
        {
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "result": e.result,
            "detail": e.detail,
        }
        for e in await cp.store.list_audit(limit)
    ]


@router.get("/v1/alerts")
async def alerts(cp: CP, who: Viewer, all: bool = False) -> list[AlertInfo]:
    if not all:
        return cp.fleet.alerts.infos()
    await cp.fleet.flush()
    return [to_info(r) for r in await cp.store.list_alerts(include_cleared=True)]
