"""The FastAPI application."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from fleet import __version__
from fleet.protocol import PROTOCOL_VERSION

from .agent_listener import start_agent_listener
from .api import (
    admin,
    agent_actions,
    agents,
    connections,
    enroll,
    metrics,
    notifications,
    pools,
    releases,
    remediation,
    rollouts,
    silences,
    streams,
    users,
    windows,
)
from .api.models import Health
from .api.responses import add_error_schema, errors
from .api.structs import add_struct_schemas
from .body_limit import BodyLimit
from .errors import FleetError
from .metrics import make_registry
from .state import ControlPlane

__all__ = ["create_app"]

log = logging.getLogger("controlplane")


def create_app(
    cp: ControlPlane,
    on_ready: Callable[[], None] | None = None,
    agent_listener: tuple[socket.socket, ssl.SSLContext | None] | None = None,
) -> FastAPI:
    """The API; with ``agent_listener`` (a bound socket and its TLS) also the
    agents' own listener, started and stopped with the app."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cp.start()
        listener = None
        if agent_listener is not None:
            listener = await start_agent_listener(cp, *agent_listener)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if listener is not None:
                listener.close()
                await listener.wait_closed()
            await cp.stop()

    app = FastAPI(title="Fleet control plane", version=__version__, lifespan=lifespan)
    app.state.cp = cp
    app.state.metrics = make_registry(cp)
    generate_openapi = app.openapi
    app.openapi = lambda: add_struct_schemas(  # type: ignore[method-assign]
        add_error_schema(generate_openapi())
    )

    @app.exception_handler(FleetError)
    async def fleet_error(request: Request, exc: FleetError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        # FastAPI's own refusals (404 no route, 405, 400 a body that is not JSON), as
        # {"detail": "<string>"} like ours; a 405's Allow names every method of the path.
        headers = dict(exc.headers or {})
        detail = exc.detail
        if exc.status_code == 405:
            allowed = _allowed_methods(app.router.routes, request.scope)
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed on {request.url.path}; use " + (
                " or ".join(allowed)
            )
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=headers)
        return JSONResponse({"detail": str(detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.get("/healthz", response_model=Health, responses=errors(auth=False))
    async def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "agents": len(cp.fleet.agents),
            "connected": len(cp.channels),
            "heartbeats": cp.fleet.heartbeats,
            "subscribers": cp.fleet.bus.subscriber_count,
            "replica": cp.fleet.replica_id,
            "leader": cp.fleet.leader,
        }

    for module in (
        enroll,
        agents,
        agent_actions,
        releases,
        admin,
        users,
        pools,
        connections,
        streams,
        metrics,
        notifications,
        silences,
        windows,
        rollouts,
        remediation,
    ):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, cp=cp)
    return app


def _allowed_methods(routes: list[BaseRoute], scope: Scope) -> list[str]:
    """Every method the routes of this request's path answer (for a 405's Allow)."""
    methods: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)
