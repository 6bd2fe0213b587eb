"""Enrollment and tokens: ``/v1/tokens``, ``/v1/enroll``, ``/v1/ca``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from ..body_types import JsonInt
from .deps import CP, Admin
from .models import Enrolled, TokenCreated, TokenInfo, TokenRevoked
from .names import AgentName, Labels, PoolName
from .responses import errors

router = APIRouter()


class TokenCreate(BaseModel):
    # Strict: the schema says integer, so ``true`` or ``"80"`` is refused (422).
    model_config = ConfigDict(strict=True)

    pool: PoolName
    ttl_s: float = Field(default=1800.0, gt=0, le=30 * 86400)
    uses: JsonInt = Field(default=1, ge=1, le=100_000)
    labels: Labels = Field(default_factory=dict)


class EnrollRequest(BaseModel):
    # Strict: the schema says string, so a number is refused (422).
    model_config = ConfigDict(strict=True)

    token: str = Field(max_length=256)
    csr_pem: str = Field(max_length=16_384)
    name: AgentName | None = None
    """The agent's name (refused, not changed, when it breaks the name rule)."""
    version: str | None = Field(default=None, max_length=64)


@router.get("/v1/ca", response_class=PlainTextResponse, responses=errors(auth=False))
async def ca_certificate(cp: CP) -> str:
    """The CA certificate (PEM). Check its pin before trusting it."""
    return cp.ca.pem


@router.post("/v1/tokens", status_code=201, response_model=TokenCreated, responses=errors(400, 403))
async def create_token(body: TokenCreate, cp: CP, who: Admin) -> TokenCreated:
    token, rec = await cp.create_token(who, body.pool, body.ttl_s, body.uses, body.labels)
    return TokenCreated(
        token=token,
        id=rec.id,
        pool=rec.pool,
        expires_at=rec.expires_at,
        uses=rec.uses_total,
        labels=rec.labels,
        ca_pin=cp.ca.pin,
        endpoint=cp.endpoint,
        server_tls=cp.server_tls,
    )


@router.get("/v1/tokens", response_model=list[TokenInfo], responses=errors(403))
async def list_tokens(cp: CP, who: Admin) -> list[TokenInfo]:
    """Metadata only: a token's value is shown once, at creation."""
    now = time.time()
    return [TokenInfo.of(t, now) for t in await cp.store.list_tokens()]


@router.delete("/v1/tokens/{token_id}", response_model=TokenRevoked, responses=errors(403, 404))
async def revoke_token(token_id: str, cp: CP, who: Admin) -> TokenRevoked:
    """Refused at enrollment from now on; revoking twice keeps the first time."""
    rec = await cp.revoke_token(who, token_id)
    assert rec.revoked_at is not None
    return TokenRevoked(id=rec.id, revoked_at=rec.revoked_at)


@router.post(
    "/v1/enroll",
    status_code=201,
    response_model=Enrolled,
    responses=errors(400, 401, 503, auth=False),
)
async def enroll(body: EnrollRequest, request: Request, cp: CP) -> dict[str, object]:
    client = request.client.host if request.client else "?"
    result = await cp.enroll(body.token, body.csr_pem, body.name, client)
    return {
        "agent_id": result.agent.id,
        "name": result.agent.name,
        "pool": result.agent.pool,
        "certificate_pem": result.certificate_pem,
        "ca_pem": cp.ca.pem,
        "not_after": result.agent.cert_not_after,
        # The agent channel's own port, on the host the agent reached us at (as a load
        # balancer in front publishes it, when it does).
        "channel_port": cp.settings.public_agent_port or cp.channel_port,
        "release_key": cp.releases.key.public,
    }
