"""The error answers each operation can send, for its OpenAPI ``responses``.

Every error leaves the app as ``{"detail": "<what happened and what to do>"}``
(the handlers in :mod:`controlplane.app`), whatever raised it: a
:class:`~controlplane.errors.FleetError`, a body that failed validation (422), a
body that is not JSON (400), a body over the size limit (413) or a rate limit
(429). :func:`errors` builds the ``responses`` dict of a route from the codes it
can send on top of the ones every route can.
"""

from __future__ import annotations

from typing import Any

from .models import ErrorBody

__all__ = ["LOGS_RESPONSES", "add_error_schema", "errors"]

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

_WHY: dict[int, str] = {
    400: "The request is malformed: a body that is not JSON, or a value the server refuses",
    401: "No, unknown, revoked or rotated token (or, at enrollment, a bad enrollment token)",
    403: "The token's role is too low for this operation (or a probe outside the pool policy)",
    404: "No such object; the message says how to list them",
    409: "The state forbids it (e.g. the agent is offline, the name is taken); "
    "the message says what to do instead",
    413: "The request body is larger than the server accepts",
    416: "The Range asked for lies past the end of the file (Content-Range: bytes */SIZE)",
    422: "A parameter or body field failed validation; the message names it",
    429: "Too many requests (or failed attempts) from this client; retry after Retry-After",
    503: "The store could not write (e.g. a full disk); nothing was changed",
    504: "The agent did not answer in time",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "string"},
    }
}

_CONTENT_RANGE = {
    "Content-Range": {
        "description": "bytes */SIZE: the file's size",
        "schema": {"type": "string"},
    }
}

COMMON = (413, 422, 429)
"""What any operation can send: the body limit, validation, rate limits."""


def errors(*codes: int, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``codes`` plus :data:`COMMON`.

    With ``auth`` (an API token is required) 401 too; with 403 also 503, since a
    refusal is audited, which writes to the store. Each is declared with the
    :class:`ErrorBody` it is sent with; declaring 422 also replaces FastAPI's
    default ``HTTPValidationError``, which is never sent.
    """
    wanted = set(codes) | set(COMMON) | ({401} if auth else set())
    if 403 in wanted:
        wanted.add(503)
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted(wanted):
        # Not ``"model": ErrorBody``: FastAPI would file it under the route's media
        # type, text/plain for the CA and the logs, while errors are always JSON.
        entry: dict[str, Any] = {
            "description": _WHY[code],
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
        if code == 429:
            entry["headers"] = _RETRY_AFTER
        elif code == 416:
            entry["headers"] = _CONTENT_RANGE
        out[code] = entry
    return out


def add_error_schema(document: dict[str, Any]) -> dict[str, Any]:
    """Put :class:`ErrorBody`, which :func:`errors` refers to, in the document's schemas."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    return document


LOGS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The agent's recent log lines (redacted on the agent), as a download",
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "headers": {
            "Content-Disposition": {
                "description": "attachment; the file name is the agent's name and a UTC stamp",
                "required": True,
                "schema": {"type": "string"},
            },
            "X-Fleet-Truncated": {
                "description": "1 when the agent cut the lines to the limit, else 0",
                "required": True,
                "schema": {"type": "string", "enum": ["0", "1"]},
            },
        },
    },
}
"""The logs route's 200: text, not JSON, with its two headers."""
