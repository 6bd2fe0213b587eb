"""Operators: create, list, revoke, rotate (``/v1/users``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ..state import ROLES
from .deps import CP, Admin
from .models import UserInfo, UserRevoked, UserToken
from .names import UserName
from .responses import errors

router = APIRouter()


class UserCreate(BaseModel):
    # Strict: the schema says string, so a number is refused (422).
    model_config = ConfigDict(strict=True)

    name: UserName
    role: str = Field(json_schema_extra={"enum": list(ROLES)})
    """Checked by the server (400 for another value), which says which roles exist."""


@router.post(
    "/v1/users", status_code=201, response_model=UserToken, responses=errors(400, 403, 409)
)
async def create_user(body: UserCreate, cp: CP, who: Admin) -> UserToken:
    token = await cp.operators.create(who, body.name, body.role)
    return UserToken(name=body.name, role=body.role, token=token)


@router.get("/v1/users", response_model=list[UserInfo], responses=errors(403))
async def list_users(cp: CP, who: Admin, all: bool = False) -> list[UserInfo]:
    """Active operators; with ``?all=true`` revoked ones too (with ``revoked_at``)."""
    return [UserInfo.of(op) for op in cp.operators.listing(include_revoked=all)]


@router.delete("/v1/users/{name}", response_model=UserRevoked, responses=errors(403, 404, 409))
async def revoke_user(name: UserName, cp: CP, who: Admin) -> UserRevoked:
    op = await cp.operators.revoke(who, name)
    assert op.revoked_at is not None
    return UserRevoked(name=op.name, role=op.role, revoked_at=op.revoked_at)


@router.post("/v1/users/{name}/rotate", response_model=UserToken, responses=errors(403, 404))
async def rotate_user(name: UserName, cp: CP, who: Admin) -> UserToken:
    op, token = await cp.operators.rotate(who, name)
    return UserToken(name=op.name, role=op.role, token=token)
