"""Agents: list, detail, revoke, decommission, probe, logs, config, pins."""

from __future__ import annotations

import difflib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fleet.protocol import (
    MAX_DISCONNECTS,
    AgentState,
    CommandEvent,
    ConfigCommand,
    ConfigResult,
    Disconnect,
    LogsCommand,
    LogsResult,
    ProbeCommand,
    ProbeResult,
    ProtocolError,
    convert,
)

from ..body_types import JsonInt, Port
from ..decommission import decommission
from ..disconnects import read_patterns
from ..errors import Conflict, NotFound, StoreError
from ..fleet import config_hash
from ..pin_edits import clear_pin, set_pin
from ..state import ControlPlane, Principal
from .deps import CP, Admin, Operator, Viewer
from .headers import attachment
from .models import AgentConfigView, AgentDetail, AgentRemovedInfo, PinInfo
from .names import AgentRef
from .pins import PartQuery, PinBody
from .responses import LOGS_RESPONSES, errors
from .structs import StructResponse, returns

router = APIRouter()
log = logging.getLogger("controlplane.api")


class ProbeBody(BaseModel):
    # Strict: the schema says integer, so ``true`` or ``"80"`` is refused (422).
    model_config = ConfigDict(strict=True)

    host: str = Field(min_length=1, max_length=253)
    port: Port
    tls: bool = False
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class LogsBody(BaseModel):
    # Strict: the schema says integer, so ``true`` or ``"80"`` is refused (422).
    model_config = ConfigDict(strict=True)

    lines: JsonInt = Field(default=500, ge=1, le=10_000)
    since: float | None = None


@router.get(
    "/v1/agents",
    response_class=StructResponse,
    responses={**returns(list[AgentState]), **errors()},
)
async def list_agents(cp: CP, who: Viewer) -> Response:
    return StructResponse([a.to_state() for a in cp.fleet.agents.values()])


@router.get(
    "/v1/agents/{agent_id}",
    response_class=StructResponse,
    responses={**returns(AgentDetail), **errors(404)},
)
async def get_agent(agent_id: AgentRef, cp: CP, who: Viewer) -> Response:
    agent = cp.agent(agent_id)
    events = [
        e for e in cp.fleet.bus.recent() if isinstance(e, CommandEvent) and e.agent_id == agent.id
    ]
    history = await disconnect_history(cp, agent.id)
    return StructResponse(
        AgentDetail(
            agent=agent.to_state(),
            history=agent.history(),
            events=events[-50:],
            disconnects=history,
            disconnect_hints=read_patterns(history, cp.settings.channel_keepalive_s),
            remediations=cp.remediation.book.of_agent(agent.id),
        )
    )


async def disconnect_history(cp: ControlPlane, agent_id: str) -> list[Disconnect]:
    """The agent's stored disconnect records, oldest first (a record an older or newer
    agent wrote that does not validate is left out rather than failing the answer)."""
    out = []
    try:
        await cp.fleet.flush_disconnects()  # what came in since the last flush, too
    except StoreError as exc:  # a full disk: answer with what is stored; retried later
        log.error("storing disconnect records failed, will retry: %s", exc)
    for raw in await cp.fleet.store.list_disconnects(agent_id, MAX_DISCONNECTS):
        try:
            out.append(convert(raw, Disconnect))
        except ProtocolError:
            continue
    return out


@router.post(
    "/v1/agents/{agent_id}/revoke",
    response_class=StructResponse,
    responses={**returns(AgentState), **errors(403, 404)},
)
async def revoke(agent_id: AgentRef, cp: CP, who: Admin) -> Response:
    return StructResponse((await cp.revoke(who, agent_id)).to_state())


async def probe_agent(
    cp: ControlPlane, who: Principal, agent_id: str, body: ProbeBody, action: str
) -> ProbeResult:
    agent = cp.agent(agent_id)
    target = f"{agent.id} -> {body.host}:{body.port}"
    why = cp.check_policy(agent, body.host, body.port)
    if why is not None:
        raise await cp.deny(who, action, target, why)
    command = ProbeCommand(host=body.host, port=body.port, tls=body.tls, timeout_s=body.timeout_s)
    result = await cp.command(who, agent, command, action, target)
    if result.error is not None:
        if result.error.code == "denied":
            return ProbeResult(
                host=body.host,
                port=body.port,
                tls=body.tls,
                ok=False,
                failure="denied",
                error=f"the agent's local policy refused: {result.error.message}",
            )
        raise Conflict(f"the agent could not run the probe: {result.error.message}")
    if not isinstance(result.result, ProbeResult):
        raise Conflict("the agent answered a probe with something else; upgrade the agent")
    return result.result


@router.post(
    "/v1/agents/{agent_id}/probe",
    response_class=StructResponse,
    responses={**returns(ProbeResult), **errors(400, 403, 404, 409, 504)},
)
async def probe(agent_id: AgentRef, body: ProbeBody, cp: CP, who: Operator) -> Response:
    return StructResponse(await probe_agent(cp, who, agent_id, body, "agent.probe"))


@router.post(
    "/v1/agents/{agent_id}/logs",
    response_class=PlainTextResponse,
    responses={**LOGS_RESPONSES, **errors(400, 403, 404, 409, 504)},
)
async def logs(agent_id: AgentRef, body: LogsBody, cp: CP, who: Operator) -> Response:
    agent = cp.agent(agent_id)
    result = await cp.command(
        who, agent, LogsCommand(lines=body.lines, since=body.since), "agent.logs", agent.id
    )
    if result.error is not None or not isinstance(result.result, LogsResult):
        detail = result.error.message if result.error else "unexpected answer"
        raise Conflict(f"the agent could not return its logs: {detail}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = "\n".join(result.result.lines) + ("\n" if result.result.lines else "")
    return Response(
        content=text,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": attachment(f"{agent.record.name}-{stamp}.log"),
            "X-Fleet-Truncated": "1" if result.result.truncated else "0",
        },
    )


def _lines(config: dict[str, Any] | None) -> list[str]:
    if config is None:
        return []
    return json.dumps(config, indent=2, sort_keys=True).splitlines()


@router.get(
    "/v1/agents/{agent_id}/config",
    response_model=AgentConfigView,
    responses=errors(404, 409, 503, 504),
)
async def config(agent_id: AgentRef, cp: CP, who: Viewer) -> dict[str, Any]:
    agent = cp.agent(agent_id)
    pin = cp.fleet.effective_pin(agent)
    effective: dict[str, Any] | None = None
    effective_hash = agent.config_hash
    error = None
    if cp.reachable(agent):
        # Reading config changes nothing on the agent, so viewers may ask for it.
        result = await cp.command(
            Principal(who.name, "operator"), agent, ConfigCommand(), "agent.config", agent.id
        )
        if isinstance(result.result, ConfigResult):
            effective, effective_hash = result.result.config, result.result.hash
        elif result.error is not None:
            error = result.error.message
    else:
        error = f"agent is {agent.state.value}: showing the last reported hash only"
    pinned = pin.config
    diff: list[str] = []
    if pinned is not None and effective is not None:  # nothing to compare otherwise
        diff = list(
            difflib.unified_diff(
                _lines(pinned), _lines(effective), "pinned", "effective", lineterm="", n=2
            )
        )
    pinned_hash = config_hash(pinned) if pinned is not None else None
    return {
        "effective": effective,
        "effective_hash": effective_hash,
        "pinned": pinned,
        "pinned_hash": pinned_hash,
        "version": agent.version,
        "pinned_version": pin.version,
        "diff": diff,
        "in_sync": pinned_hash is None or pinned_hash == effective_hash,
        "error": error,
    }


@router.delete("/v1/agents/{agent_id}", response_model=AgentRemovedInfo, responses=errors(403, 404))
async def decommission_agent(agent_id: AgentRef, cp: CP, who: Admin) -> AgentRemovedInfo:
    """Decommission (or, never connected, forget) an agent: revoke, then remove it."""
    removal = await decommission(cp, who, agent_id)
    return AgentRemovedInfo(id=removal.id, name=removal.name, action=removal.action)


@router.put(
    "/v1/agents/{agent_id}/pin", response_model=PinInfo, responses=errors(400, 403, 404, 409)
)
async def pin_agent(agent_id: AgentRef, body: PinBody, cp: CP, who: Admin) -> PinInfo:
    """Sets the version and/or config of the agent's own pin (a field not given keeps
    its value); 409 while its pool is frozen."""
    agent = cp.agent(agent_id)
    return PinInfo.of(await set_pin(cp, who, "agent", agent.id, body.version, body.config))


@router.get("/v1/agents/{agent_id}/pin", response_model=PinInfo, responses=errors(404))
async def show_agent_pin(agent_id: AgentRef, cp: CP, who: Viewer) -> PinInfo:
    """The pin set on this agent itself; a 404 names its pool's pin when that applies."""
    agent = cp.agent(agent_id)
    pin = cp.fleet.pins.get(("agent", agent.id))
    if pin is None:
        pool = agent.record.pool
        inherited = (
            f"; it follows its pool's pin (GET /v1/pools/{pool}/pin)"
            if ("pool", pool) in cp.fleet.pins
            else ""
        )
        raise NotFound(
            f"no pin on agent {agent.record.name}{inherited}; "
            f"set one with PUT /v1/agents/{agent.id}/pin"
        )
    return PinInfo.of(pin)


@router.delete("/v1/agents/{agent_id}/pin", response_model=PinInfo, responses=errors(403, 404, 409))
async def unpin_agent(agent_id: AgentRef, cp: CP, who: Admin, part: PartQuery = None) -> PinInfo:
    """Clears the agent's own pin, or one part of it (its pool's applies again for
    that part); answers with the pin as it was; 409 while its pool is frozen."""
    agent = cp.agent(agent_id)
    return PinInfo.of(await clear_pin(cp, who, "agent", agent.id, part))
