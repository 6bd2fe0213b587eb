"""Request dependencies: the control plane and the caller's role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from ..state import ControlPlane, Principal, Role

__all__ = ["CP", "Admin", "Operator", "Viewer", "get_cp"]


def get_cp(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.cp
    return cp


def _role(role: Role) -> Callable[[Request], Principal]:
    def dependency(request: Request) -> Principal:
        principal = get_cp(request).authenticate(request.headers.get("authorization"))
        principal.require(role)
        return principal

    return dependency


CP = Annotated[ControlPlane, Depends(get_cp)]
Viewer = Annotated[Principal, Depends(_role("viewer"))]
Operator = Annotated[Principal, Depends(_role("operator"))]
Admin = Annotated[Principal, Depends(_role("admin"))]
