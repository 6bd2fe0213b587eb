"""Remediation: each pool's policy (admin), the inbox and its decisions (operator).

The rules live in :mod:`controlplane.remediation` and its helpers; these routes
only parse, check the role and answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from fleet.protocol import RemediationInfo, RemediationState

from ..remediation_policies import StoredPolicy
from ..remediation_rules import RemediationPolicy
from .deps import CP, Admin, Operator, Viewer
from .names import AgentRef, LabelValue, PoolName
from .responses import errors
from .structs import StructResponse, returns

router = APIRouter()

RemediationId = Annotated[
    str, Path(pattern=r"^rem_[0-9a-f]{1,32}$", description="a remediation's id (rem_...)")
]


class RemediationPolicyInfo(BaseModel):
    """A pool's remediation policy, with who set it and when."""

    pool: str
    policy: RemediationPolicy
    set_by: str
    set_at: float

    @classmethod
    def of(cls, stored: StoredPolicy) -> RemediationPolicyInfo:
        return cls(
            pool=stored.pool, policy=stored.policy, set_by=stored.set_by, set_at=stored.set_at
        )


class DecisionBody(BaseModel):
    """Why (optional): kept with the remediation and in the audit."""

    model_config = ConfigDict(extra="forbid")

    note: LabelValue = ""


# ------------------------------------------------------------------ policy


@router.put(
    "/v1/pools/{pool}/remediation",
    response_model=RemediationPolicyInfo,
    responses=errors(400, 403),
)
async def set_policy(
    pool: PoolName, body: RemediationPolicy, cp: CP, who: Admin
) -> RemediationPolicyInfo:
    """Set (replace) the pool's remediation policy: 400 when it does not fit the server
    (a check interval under ``remediation_min_check_s``, a probe rule's connection
    unknown, not of the pool, or not allowed by the pool's probe policy)."""
    await cp.remediation.set_policy(who, pool, body)
    return RemediationPolicyInfo.of(cp.remediation.policies.get(pool))


@router.get(
    "/v1/pools/{pool}/remediation", response_model=RemediationPolicyInfo, responses=errors(404)
)
async def show_policy(pool: PoolName, cp: CP, who: Viewer) -> RemediationPolicyInfo:
    """The pool's remediation policy; 404 when remediation is off there."""
    return RemediationPolicyInfo.of(cp.remediation.policies.get(pool))


@router.delete(
    "/v1/pools/{pool}/remediation",
    response_model=RemediationPolicyInfo,
    responses=errors(403, 404),
)
async def clear_policy(pool: PoolName, cp: CP, who: Admin) -> RemediationPolicyInfo:
    """Turn remediation off in the pool; answers with the policy it had.  Pending
    remediations stay in the inbox until decided or expired."""
    return RemediationPolicyInfo.of(await cp.remediation.clear_policy(who, pool))


# ------------------------------------------------------------------ inbox


@router.get(
    "/v1/remediations",
    response_class=StructResponse,
    responses={**returns(list[RemediationInfo]), **errors()},
)
async def list_remediations(
    cp: CP,
    who: Viewer,
    state: Annotated[RemediationState | None, Query(description="only this state")] = None,
    agent: Annotated[AgentRef | None, Query(description="only this agent's (id or name)")] = None,
    pool: Annotated[PoolName | None, Query(description="only this pool's")] = None,
) -> Response:
    """Pending and running remediations and the recent others, newest first."""
    found = [
        info
        for info in cp.remediation.book.infos()
        if (state is None or info.state == state)
        and (agent is None or agent in (info.agent_id, info.agent_name))
        and (pool is None or info.pool == pool)
    ]
    return StructResponse(found)


@router.get(
    "/v1/remediations/{rem_id}",
    response_class=StructResponse,
    responses={**returns(RemediationInfo), **errors(404)},
)
async def show_remediation(rem_id: RemediationId, cp: CP, who: Viewer) -> Response:
    return StructResponse(cp.remediation.get(rem_id).info)


@router.post(
    "/v1/remediations/{rem_id}/approve",
    response_class=StructResponse,
    responses={**returns(RemediationInfo), **errors(400, 403, 404, 409)},
)
async def approve(
    rem_id: RemediationId, cp: CP, who: Operator, body: DecisionBody | None = None
) -> Response:
    """Run a pending remediation now, as you; answers with it after its action was
    sent (a restart stays ``running`` until the agent is back).  409 when it is not
    pending, or its agent is not connected."""
    rec = await cp.remediation.approve(who, rem_id, body.note if body else "")
    return StructResponse(rec.info)


@router.post(
    "/v1/remediations/{rem_id}/reject",
    response_class=StructResponse,
    responses={**returns(RemediationInfo), **errors(400, 403, 404, 409)},
)
async def reject(
    rem_id: RemediationId, cp: CP, who: Operator, body: DecisionBody | None = None
) -> Response:
    """Say no to a pending remediation: it is kept as ``rejected``, with your note."""
    rec = await cp.remediation.reject(who, rem_id, body.note if body else "")
    return StructResponse(rec.info)


@router.post(
    "/v1/remediations/{rem_id}/revert",
    response_class=StructResponse,
    responses={**returns(RemediationInfo), **errors(403, 404, 409)},
)
async def revert(rem_id: RemediationId, cp: CP, who: Admin) -> Response:
    """Put back the connections a done ``move_connections`` moved (those changed since
    are left as they are, and named)."""
    rec = await cp.remediation.revert(who, rem_id)
    return StructResponse(rec.info)
