"""``GET /metrics``: the Prometheus scrape, for the scrape token or any API token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST

from ..metrics import render
from ..secrets import API_PREFIX
from .deps import authorize, bearer, get_cp
from .responses import errors

__all__ = ["router"]

router = APIRouter()

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The control plane's metrics in the Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}

_HINT = "Prometheus sends the scrape token of the server's metrics_token_file, or an API token"


async def _scraper(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """Who scrapes: ``scrape-token``, or the API token's operator (any role)."""
    cp = get_cp(request)
    token = cp.scrape_token
    scheme, _sep, value = (request.headers.get("authorization") or "").partition(" ")
    value = value.strip()
    if (
        token is not None
        and scheme.lower() == "bearer"
        and value
        and not value.startswith(API_PREFIX)
        and token.matches(value)
    ):
        return "scrape-token"
    return authorize(request, "viewer", _HINT if token is not None else "").name


@router.get(
    "/metrics", response_class=PlainTextResponse, responses={**METRICS_RESPONSES, **errors()}
)
async def metrics(request: Request, who: Annotated[str, Depends(_scraper)]) -> Response:
    """Agents by state and pool, heartbeats, skew and queue depths, certificates,
    event-stream subscribers, alerts, notifications, command and flush timings."""
    return Response(content=render(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
