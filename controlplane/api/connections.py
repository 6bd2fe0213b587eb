"""Connections: data sources that agents of given pools can reach."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from fleet.protocol import ConnectionInfo

from ..errors import Conflict, NotFound
from ..store.base import ConnectionRecord
from .agents import ProbeBody, probe_agent
from .deps import CP, Admin, Operator, Viewer

router = APIRouter()


class ConnectionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    pools: list[str] = Field(min_length=1)


class ConnectionProbe(BaseModel):
    tls: bool = False
    timeout_s: float = Field(default=5.0, gt=0, le=60)


@router.post("/v1/connections", status_code=201)
async def create(body: ConnectionCreate, cp: CP, who: Admin) -> ConnectionInfo:
    rec = ConnectionRecord(body.name, body.host, body.port, body.pools, time.time())
    info = await cp.fleet.add_connection(rec)
    await cp.fleet.audit(who.name, "connection.create", rec.name, "ok", f"{rec.host}:{rec.port}")
    return info


@router.get("/v1/connections")
async def list_connections(cp: CP, who: Viewer) -> list[ConnectionInfo]:
    return list(cp.fleet.connection_state.values())


@router.post("/v1/connections/{name}/probe")
async def probe(name: str, body: ConnectionProbe, cp: CP, who: Operator) -> dict[str, Any]:
    rec = cp.fleet.connections.get(name)
    if rec is None:
        raise NotFound(f"no connection {name!r}; list them with GET /v1/connections")
    route = cp.fleet.route(rec)
    if route is None:
        await cp.fleet.audit(who.name, "connection.probe", name, "refused", "unroutable")
        raise Conflict(
            f"connection {name} is unroutable: no healthy agent in pools {rec.pools}; "
            "start or fix an agent in one of them"
        )
    pool, agent = route
    result = await probe_agent(
        cp,
        who,
        agent.id,
        ProbeBody(host=rec.host, port=rec.port, tls=body.tls, timeout_s=body.timeout_s),
        "connection.probe",
    )
    return {"connection": name, "pool": pool, "agent_id": agent.id, "result": result.model_dump()}
