"""REST answers made of the protocol's msgspec Structs: encoded and documented by msgspec.

The agents, alerts, connections and probe results a route answers with are the
wire protocol's own types (:mod:`fleet.protocol`), so the REST API and the
event stream cannot disagree.  FastAPI knows pydantic, not msgspec: a route
returns :class:`StructResponse` (msgspec encodes it, several times faster than
pydantic's serializer), declares its 200 with :func:`returns`, and
:func:`add_struct_schemas` puts the schemas msgspec generates for those types
into the OpenAPI document, so the document describes exactly what is sent.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi.responses import JSONResponse

__all__ = ["StructResponse", "add_struct_schemas", "returns"]

_REF = "#/components/schemas/{name}"
_DOCUMENTED: list[Any] = []
"""Every type a route declared with :func:`returns`."""

_ENCODER = msgspec.json.Encoder()


class StructResponse(JSONResponse):
    """A JSON answer encoded by msgspec: a Struct, a list of them, or plain data.

    A :class:`JSONResponse` so that FastAPI documents its body with the schema
    :func:`returns` gives, and nothing of its own beside it.
    """

    def render(self, content: Any) -> bytes:
        return _ENCODER.encode(content)


def returns(
    kind: Any, description: str = "Successful Response", status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entry for a route that answers ``kind`` (a Struct type or ``list[...]``)."""
    (schema,), _ = msgspec.json.schema_components([kind], ref_template=_REF)
    _DOCUMENTED.append(kind)
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}}
    }


def add_struct_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """Put the schema of every type :func:`returns` named into the document's components."""
    if not _DOCUMENTED:
        return document
    _, components = msgspec.json.schema_components(_DOCUMENTED, ref_template=_REF)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in components.items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(f"two OpenAPI schemas are named {name}: rename one")
        schemas[name] = schema
    return document
