"""Request dependencies: the control plane and the caller's role."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import Forbidden, TooManyRequests, Unauthenticated
from ..state import ControlPlane, Principal, Role

__all__ = ["CP", "Admin", "Operator", "Viewer", "authorize", "bearer", "get_cp"]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API token (`flta_...`): `Authorization: Bearer <token>`",
)
"""The security scheme in the OpenAPI document; the token is checked by the role."""


def get_cp(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.cp
    return cp


def authorize(request: Request, role: Role, hint: str = "") -> Principal:
    """The caller of ``request`` if its API token has ``role`` or a higher one.

    Failures are counted per address (429 past the limit) and audited; ``hint``
    is added to the message of a 401 (what else the route accepts).
    """
    cp = get_cp(request)
    try:
        principal = cp.authenticate(request.headers.get("authorization"))
    except Unauthenticated as exc:
        message = f"{exc.message}; {hint}" if hint else exc.message
        # Anyone can send a bad token: counted per address and window.
        address = request.client.host if request.client else "?"
        wait = cp.auth_failed(address, "http.auth", message)
        if wait is not None:
            raise TooManyRequests(
                f"too many failed authentications from {address}: wait {wait:.0f} s, "
                f"then check your token ({message})",
                wait,
            ) from None
        if hint:
            raise Unauthenticated(message) from None
        raise
    try:
        principal.require(role)
    except Forbidden as exc:
        # A valid token asking beyond its role is worth a line in the audit.
        # Counted per window: a script looping on a 403 must not flood it.
        action = f"http.{request.method.lower()}"
        cp.refusals.note(principal.name, action, request.url.path, exc.message, "forbidden")
        raise
    return principal


def _role(
    role: Role,
) -> Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[Principal]]:
    async def dependency(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        # ``bearer`` only declares the scheme (it refuses nothing): the header is
        # checked here, so every refusal says what happened in our words.
        return authorize(request, role)

    return dependency


CP = Annotated[ControlPlane, Depends(get_cp)]
Viewer = Annotated[Principal, Depends(_role("viewer"))]
Operator = Annotated[Principal, Depends(_role("operator"))]
Admin = Annotated[Principal, Depends(_role("admin"))]
