"""Upgrade, roll back, restart and renew one agent, by hand.

Each goes through :class:`~controlplane.upgrades.Upgrades` (audited, shown on the
event stream like every command) and answers with the agent's own result: an
upgrade is *accepted* here, its steps follow on the agent (``GET
/v1/agents/{id}``, ``upgrade``). An agent that refuses (busy, unsupported, a bad
request) is a 409 with its reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from fleet.protocol import (
    CommandFinished,
    RenewResult,
    RestartResult,
    RollbackResult,
    UpgradeResult,
)

from ..errors import Conflict, NotFound
from ..live import LiveAgent
from .deps import CP, Admin, Operator
from .names import AgentRef, LabelValue, ReleaseVersion
from .responses import errors
from .structs import StructResponse, returns

__all__ = ["ReasonBody", "UpgradeBody", "router"]

router = APIRouter()


class UpgradeBody(BaseModel):
    # Strict: the schema says number, so ``"60"`` is refused (422).
    model_config = ConfigDict(strict=True)

    version: ReleaseVersion
    """A stored release (``GET /v1/releases``)."""
    deadline_s: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="The new version must connect and send healthy heartbeats within "
        "this, or the agent switches back (default: the server's upgrade_deadline_s)",
    )


class ReasonBody(BaseModel):
    model_config = ConfigDict(strict=True)

    reason: LabelValue = ""
    """Why, for the audit and the agent's log (default: who asked)."""


def _answer(result: CommandFinished, agent: LiveAgent, what: str, kind: type[Any]) -> Response:
    """The agent's result as the answer, or a 409 with its reason."""
    name = agent.record.name
    if result.error is not None:
        hint = ""
        if result.error.code == "unsupported":
            hint = "; this agent's version predates it: upgrade it on its host (docs/upgrades.md)"
        raise Conflict(
            f"agent {name} refused the {what} ({result.error.code}): {result.error.message}{hint}"
        )
    if not isinstance(result.result, kind):
        raise Conflict(f"agent {name} answered the {what} with something else; upgrade it")
    return StructResponse(result.result)


def _reason(body: ReasonBody, who: str) -> str:
    return body.reason or f"asked by {who}"


_ERRORS = errors(400, 403, 404, 409, 504)


@router.post(
    "/v1/agents/{agent_id}/upgrade",
    response_class=StructResponse,
    responses={**returns(UpgradeResult), **_ERRORS},
)
async def upgrade(agent_id: AgentRef, body: UpgradeBody, cp: CP, who: Admin) -> Response:
    """Ask the agent to upgrade to a stored release; its steps follow on the agent."""
    agent = cp.agent(agent_id)
    try:
        cp.releases.get(body.version)
    except NotFound as exc:
        await cp.fleet.audit(who.name, "agent.upgrade", agent.id, "refused", exc.message)
        raise
    result = await cp.upgrades.upgrade(who, agent, body.version, body.deadline_s)
    return _answer(result, agent, "upgrade", UpgradeResult)


@router.post(
    "/v1/agents/{agent_id}/rollback",
    response_class=StructResponse,
    responses={**returns(RollbackResult), **_ERRORS},
)
async def rollback(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Admin) -> Response:
    """Ask the agent to switch back to the version it ran before its last upgrade."""
    agent = cp.agent(agent_id)
    result = await cp.upgrades.rollback(who, agent, _reason(body, who.name))
    return _answer(result, agent, "rollback", RollbackResult)


@router.post(
    "/v1/agents/{agent_id}/restart",
    response_class=StructResponse,
    responses={**returns(RestartResult), **_ERRORS},
)
async def restart(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Operator) -> Response:
    """Ask the agent to restart its process; it reconnects within seconds."""
    agent = cp.agent(agent_id)
    result = await cp.upgrades.restart(who, agent, _reason(body, who.name))
    return _answer(result, agent, "restart", RestartResult)


@router.post(
    "/v1/agents/{agent_id}/renew",
    response_class=StructResponse,
    responses={**returns(RenewResult), **_ERRORS},
)
async def renew(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Operator) -> Response:
    """Ask the agent to renew its certificate now."""
    agent = cp.agent(agent_id)
    result = await cp.upgrades.renew(who, agent, _reason(body, who.name))
    return _answer(result, agent, "renewal", RenewResult)
