"""Field types for REST bodies: exactly as strict as their JSON Schema says.

The bodies are strict models (``true`` is not an integer, ``"80"`` not a port),
but JSON Schema counts ``80.0`` as an integer, and so must the server:
:data:`JsonInt` takes an int or an integral float, and refuses booleans and strings.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, Strict

__all__ = ["JsonInt", "Port", "json_integer"]


def json_integer(value: object) -> object:
    """A ``BeforeValidator`` for an integer as JSON Schema means it (put the bounds
    before it in the ``Annotated``, so the schema states them, as :data:`Port` does)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer (not a string or a boolean)")
    return value  # lax int then takes 80.0 and refuses 80.5


JsonInt = Annotated[int, Strict(False), BeforeValidator(json_integer)]
"""An integer as JSON Schema means it: ``80`` or ``80.0``, never ``true`` or ``"80"``."""

Port = Annotated[int, Field(ge=1, le=65535), Strict(False), BeforeValidator(json_integer)]
"""A TCP port, as a :data:`JsonInt` (the bounds first, so the schema states them)."""
