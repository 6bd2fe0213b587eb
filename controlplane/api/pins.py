"""Setting a pin, shared by the pool and agent routes."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BadRequest
from ..state import ControlPlane, Principal
from ..store.base import PinRecord

__all__ = ["PinBody", "set_pin"]


class PinBody(BaseModel):
    """A version, a config, or both (an empty pin is refused with 400)."""

    # The schema says "one at least", so clients (and the fuzzer) know before a 400.
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["version"], "properties": {"version": {"type": "string"}}},
                {"required": ["config"], "properties": {"config": {"type": "object"}}},
            ]
        },
    )

    version: str | None = Field(default=None, max_length=64)
    config: dict[str, Any] | None = None


async def set_pin(
    cp: ControlPlane, who: Principal, scope: str, name: str, body: PinBody
) -> PinRecord:
    """Set (or replace) the pin of a pool or an agent, and audit it."""
    if body.version is None and body.config is None:
        await cp.fleet.audit(who.name, f"{scope}.pin", name, "refused", "empty pin")
        raise BadRequest("give a version, a config, or both")
    pin = PinRecord(scope, name, body.version, body.config, time.time(), who.name)
    await cp.fleet.set_pin(pin)
    await cp.fleet.audit(
        who.name,
        f"{scope}.pin",
        name,
        "ok",
        f"version {body.version}, config {body.config is not None}",
    )
    return pin
