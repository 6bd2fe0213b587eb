"""The FastAPI application."""

from __future__ import annotations

import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fleet import __version__
from fleet.protocol import PROTOCOL_VERSION

from .agent_listener import start_agent_listener
from .api import admin, agents, connections, enroll, pools, streams, users
from .body_limit import BodyLimit
from .errors import FleetError, TooManyRequests
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

    @app.exception_handler(FleetError)
    async def fleet_error(request: Request, exc: FleetError) -> JSONResponse:
        headers = None
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "protocol_version": PROTOCOL_VERSION,
            "agents": len(cp.fleet.agents),
            "connected": len(cp.channels),
            "heartbeats": cp.fleet.heartbeats,
            "subscribers": cp.fleet.bus.subscriber_count,
        }

    for module in (enroll, agents, admin, users, pools, connections, streams):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, cp=cp)
    return app
