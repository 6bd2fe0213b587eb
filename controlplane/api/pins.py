"""The pin body and the part to clear, shared by the pool and agent routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from ..pin_rules import Part

__all__ = ["PartQuery", "PinBody"]


class PinBody(BaseModel):
    """A version, a config, or both (an empty pin is refused with 400); a field not
    given keeps what the pin had."""

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


PartQuery = Annotated[
    Part | None,
    Query(description="clear only the version or only the config (default: the whole pin)"),
]
