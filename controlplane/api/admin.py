"""Whoami, the audit and alerts."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from fleet.protocol import AlertInfo

from ..alerts import to_info
from .deps import CP, Operator, Viewer
from .models import AuditEntry, WhoAmI
from .responses import errors
from .structs import StructResponse, returns

router = APIRouter()


@router.get("/v1/whoami", response_model=WhoAmI, responses=errors())
async def whoami(who: Viewer) -> dict[str, str]:
    return {"name": who.name, "role": who.role}


@router.get("/v1/audit", response_model=list[AuditEntry], responses=errors(403))
async def audit(
    cp: CP,
    who: Operator,
    since: float | None = Query(default=None, ge=0, description="epoch seconds; newer only"),
    actor: str | None = Query(default=None, max_length=128),
    limit: int = Query(default=100, ge=1, le=10_000),
) -> list[AuditEntry]:
    """Newest first; the filters run in the store."""
    await cp.refusals.flush()  # refusals counted in the current window, too
    return [AuditEntry.of(e) for e in await cp.store.list_audit(limit, since, actor)]


@router.get(
    "/v1/alerts",
    response_class=StructResponse,
    responses={**returns(list[AlertInfo]), **errors(503)},
)
async def alerts(cp: CP, who: Viewer, all: bool = False) -> Response:
    """Open alerts (with ``all``, cleared ones too), as stored: changes made before
    the request are written first."""
    # Never fails for a full disk: reads go on, with what is stored.
    await cp.fleet.settle_alerts()
    if not all:
        return StructResponse(cp.fleet.alert_infos())
    return StructResponse([to_info(r) for r in await cp.store.list_alerts(include_cleared=True)])
