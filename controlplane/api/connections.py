"""Connections: data sources that agents of given pools can reach."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from fleet.protocol import ConnectionInfo

from ..body_types import Port
from ..connection_edits import (
    create_connection,
    delete_connection,
    get_connection,
    update_connection,
)
from ..errors import Conflict
from ..store.base import ConnectionRecord
from .agents import ProbeBody, probe_agent
from .deps import CP, Admin, Operator, Viewer
from .models import ConnectionDeleted, ConnectionProbeAnswer
from .names import ConnectionName, PoolName
from .responses import errors
from .structs import StructResponse, returns

router = APIRouter()


class ConnectionCreate(BaseModel):
    # Strict: the schema says integer, so ``true`` or ``"80"`` is refused (422).
    model_config = ConfigDict(strict=True)

    name: ConnectionName
    host: str = Field(min_length=1, max_length=253)
    port: Port
    pools: list[PoolName] = Field(min_length=1)


class ConnectionProbe(BaseModel):
    # Strict: the schema says integer, so ``true`` or ``"80"`` is refused (422).
    model_config = ConfigDict(strict=True)

    tls: bool = False
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class ConnectionPatch(BaseModel):
    """The fields to change; those left out keep their value."""

    model_config = ConfigDict(extra="forbid", strict=True)

    host: str | None = Field(default=None, min_length=1, max_length=253)
    port: Port | None = None
    pools: list[PoolName] | None = Field(default=None, min_length=1)


@router.post(
    "/v1/connections",
    status_code=201,
    response_class=StructResponse,
    responses={**returns(ConnectionInfo, "Created", 201), **errors(400, 403, 409)},
)
async def create(body: ConnectionCreate, cp: CP, who: Admin) -> Response:
    """409 when the name is taken: change that connection with PATCH instead."""
    rec = ConnectionRecord(body.name, body.host, body.port, body.pools, time.time())
    return StructResponse(await create_connection(cp.fleet, who, rec), status_code=201)


@router.get(
    "/v1/connections",
    response_class=StructResponse,
    responses={**returns(list[ConnectionInfo]), **errors()},
)
async def list_connections(cp: CP, who: Viewer) -> Response:
    return StructResponse(list(cp.fleet.connection_state.values()))


@router.patch(
    "/v1/connections/{name}",
    response_class=StructResponse,
    responses={**returns(ConnectionInfo), **errors(400, 403, 404)},
)
async def update(name: ConnectionName, body: ConnectionPatch, cp: CP, who: Admin) -> Response:
    info = await update_connection(cp.fleet, who, name, body.host, body.port, body.pools)
    return StructResponse(info)


@router.delete(
    "/v1/connections/{name}", response_model=ConnectionDeleted, responses=errors(403, 404)
)
async def delete(name: ConnectionName, cp: CP, who: Admin) -> ConnectionDeleted:
    rec = await delete_connection(cp.fleet, who, name)
    return ConnectionDeleted(name=rec.name)


@router.post(
    "/v1/connections/{name}/probe",
    response_class=StructResponse,
    responses={**returns(ConnectionProbeAnswer), **errors(400, 403, 404, 409, 504)},
)
async def probe(name: ConnectionName, body: ConnectionProbe, cp: CP, who: Operator) -> Response:
    rec = get_connection(cp.fleet, name)
    route = cp.fleet.route(rec)
    if route is None:
        await cp.fleet.audit(who.name, "connection.probe", name, "refused", "unroutable")
        raise Conflict(
            f"connection {name} is unroutable: no healthy agent in pools {', '.join(rec.pools)}; "
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
    answer = ConnectionProbeAnswer(connection=name, pool=pool, agent_id=agent.id, result=result)
    return StructResponse(answer)
