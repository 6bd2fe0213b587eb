"""The one name type of the API, for request bodies and path parameters alike.

Built from :data:`fleet.units.NAME_PATTERN` and :func:`fleet.units.check_name`, the
rule the CLI and the agent use too, so a name the API accepts is one that every
header, file name and log line can carry.  A refused name is a 422 that says what
is allowed; the OpenAPI schema states the pattern and the length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

from fleet.units import (
    LABEL_VALUE_MAX,
    LABEL_VALUE_PATTERN,
    NAME_MAX,
    NAME_PATTERN,
    NAME_RULE,
    VERSION_MAX,
    VERSION_PATTERN,
    VERSION_RULE,
    check_name,
    check_version,
)
from fleet.units import check_label_value as _check_label_value

__all__ = [
    "AgentName",
    "AgentRef",
    "ConnectionName",
    "LabelKey",
    "LabelValue",
    "Labels",
    "PoolName",
    "ReleaseVersion",
    "UserName",
]

LABELS_MAX = 64
"""At most this many labels on one token (and so on one agent)."""


def _checker(kind: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        return check_name(kind, value)

    return check


def _schema(kind: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": NAME_MAX,
        "pattern": NAME_PATTERN,
        "description": f"{kind} name: {NAME_RULE}",
    }


# check_name, not a pydantic pattern: its message says what is allowed.
AgentName = Annotated[str, AfterValidator(_checker("agent")), WithJsonSchema(_schema("agent"))]
"""An agent's name, as given at enrollment."""
AgentRef = Annotated[str, AfterValidator(_checker("agent")), WithJsonSchema(_schema("agent id or"))]
"""An agent's id (``ag_...``) or name, in a path."""
PoolName = Annotated[str, AfterValidator(_checker("pool")), WithJsonSchema(_schema("pool"))]
UserName = Annotated[str, AfterValidator(_checker("user")), WithJsonSchema(_schema("user"))]
ConnectionName = Annotated[
    str, AfterValidator(_checker("connection")), WithJsonSchema(_schema("connection"))
]
LabelKey = Annotated[str, AfterValidator(_checker("label")), WithJsonSchema(_schema("label"))]
ReleaseVersion = Annotated[
    str,
    AfterValidator(check_version),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": VERSION_MAX,
            "pattern": VERSION_PATTERN,
            "description": f"release version: {VERSION_RULE}",
        }
    ),
]
"""A release version, in a path or a body (:func:`fleet.units.check_version`)."""


def _check_value(value: str) -> str:
    return _check_label_value("", value)


_VALUE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": LABEL_VALUE_MAX,
    "pattern": LABEL_VALUE_PATTERN,
    "description": f"at most {LABEL_VALUE_MAX} characters; no control characters, line "
    "separators or bidirectional controls",
}
LabelValue = Annotated[str, AfterValidator(_check_value), WithJsonSchema(_VALUE_SCHEMA)]
# The schema is spelt out: pydantic would turn the key pattern into patternProperties,
# which leaves keys that do not match it unconstrained.
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=LABELS_MAX),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": LABELS_MAX,
            "propertyNames": _schema("label"),
            "additionalProperties": _VALUE_SCHEMA,
        }
    ),
]
"""Labels: keys are names, values printable text; at most :data:`LABELS_MAX`."""
