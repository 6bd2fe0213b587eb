"""Rollouts: start (admin), list and show (viewer), pause, resume, abort (operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Strict, Tag

from fleet.protocol import RolloutInfo

from ..body_types import json_integer
from ..rollout_plan import to_info
from .deps import CP, Admin, Operator, Viewer
from .names import PoolName
from .responses import errors
from .structs import StructResponse, returns

__all__ = ["RolloutBody", "router"]

router = APIRouter()

Percent = Annotated[
    str,
    Field(pattern=r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)%$", description="a share of the pool"),
]


def _kind(value: Any) -> str:
    return "percent" if isinstance(value, str) else "count"


# A count or a percentage, told apart by their JSON type so that a refusal names
# the one meant (``canaries.count: ...``).
Canaries = Annotated[
    Annotated[
        int, Field(ge=0, le=100_000), Strict(False), BeforeValidator(json_integer), Tag("count")
    ]
    | Annotated[Percent, Tag("percent")],
    Discriminator(_kind),
]
Wave = Annotated[
    Annotated[
        int, Field(ge=1, le=100_000), Strict(False), BeforeValidator(json_integer), Tag("count")
    ]
    | Annotated[Percent, Tag("percent")],
    Discriminator(_kind),
]
WEEK_S = 7 * 86400.0


class RolloutBody(BaseModel):
    """What to roll out where, and how fast."""

    model_config = ConfigDict(strict=True, extra="forbid")

    pool: PoolName
    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")
    canaries: Canaries = Field(
        default=1, description="agents upgraded first and watched: a count or a percentage"
    )
    soak_s: float = Field(
        default=600.0, ge=0, le=WEEK_S, description="how long the canaries are watched"
    )
    wave: Wave = Field(
        default="25%", description="agents per wave after the canaries: a count or a percentage"
    )
    pause_s: float = Field(
        default=300.0, ge=0, le=WEEK_S, description="how long each wave is watched"
    )


@router.post(
    "/v1/rollouts",
    status_code=201,
    response_class=StructResponse,
    responses={**returns(RolloutInfo, "The rollout, started", 201), **errors(400, 403, 404, 409)},
)
async def start_rollout(body: RolloutBody, cp: CP, who: Admin) -> Response:
    """Starts rolling a stored release out to a pool: 404 no such release or no agent
    in the pool; 409 a rollout is active there, or the pool is frozen."""
    doc = await cp.rollouts.start(
        who, body.pool, body.version, body.canaries, body.soak_s, body.wave, body.pause_s
    )
    return StructResponse(to_info(doc), status_code=201)


@router.get(
    "/v1/rollouts",
    response_class=StructResponse,
    responses={**returns(list[RolloutInfo]), **errors(422)},
)
async def list_rollouts(
    cp: CP,
    who: Viewer,
    pool: Annotated[PoolName | None, Query(description="only this pool's")] = None,
) -> Response:
    """Every rollout, newest first."""
    return StructResponse(cp.rollouts.listed(pool))


@router.get(
    "/v1/rollouts/{rollout_id}",
    response_class=StructResponse,
    responses={**returns(RolloutInfo), **errors(404)},
)
async def show_rollout(rollout_id: str, cp: CP, who: Viewer) -> Response:
    return StructResponse(to_info(cp.rollouts.get(rollout_id)))


@router.post(
    "/v1/rollouts/{rollout_id}/pause",
    response_class=StructResponse,
    responses={**returns(RolloutInfo), **errors(403, 404, 409)},
)
async def pause_rollout(rollout_id: str, cp: CP, who: Operator) -> Response:
    """Holds it where it is: upgrades in flight finish, the health gate watches on."""
    return StructResponse(to_info(await cp.rollouts.pause(who, rollout_id)))


@router.post(
    "/v1/rollouts/{rollout_id}/resume",
    response_class=StructResponse,
    responses={**returns(RolloutInfo), **errors(403, 404, 409)},
)
async def resume_rollout(rollout_id: str, cp: CP, who: Operator) -> Response:
    """Goes on from where it was paused; 409 during a freeze of its pool."""
    return StructResponse(to_info(await cp.rollouts.resume(who, rollout_id)))


@router.post(
    "/v1/rollouts/{rollout_id}/abort",
    response_class=StructResponse,
    responses={**returns(RolloutInfo), **errors(403, 404, 409)},
)
async def abort_rollout(rollout_id: str, cp: CP, who: Operator) -> Response:
    """Stops it and rolls back every agent it upgraded (allowed during a freeze)."""
    return StructResponse(to_info(await cp.rollouts.abort(who, rollout_id)))
