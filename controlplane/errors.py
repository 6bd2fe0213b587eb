"""The control plane's exceptions.

Each maps to one HTTP status; the message says what happened and what to do::

    FleetError
    ├── BadRequest          400
    ├── Unauthenticated     401
    ├── Forbidden           403
    ├── NotFound            404
    ├── Conflict            409  (e.g. the agent is offline)
    ├── PolicyDenied        403  (a probe outside the pool's policy)
    ├── PayloadTooLarge     413  (an upload over its cap; the connection closes)
    ├── RangeNotSatisfiable 416  (a download's Range lies past the end)
    ├── TooManyRequests     429  (a limit: too many failed attempts, connections)
    ├── CommandTimeout      504
    └── StoreError          503  (the store could not write: e.g. a full disk)
        └── SchemaError          (the database's schema: newer than the code, a failed migration)
"""

from __future__ import annotations

import math

__all__ = [
    "BadRequest",
    "CommandTimeout",
    "Conflict",
    "FleetError",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PolicyDenied",
    "RangeNotSatisfiable",
    "SchemaError",
    "StoreError",
    "TooManyRequests",
    "Unauthenticated",
]


class FleetError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the JSON body."""
        return {}


class BadRequest(FleetError):
    status = 400


class Unauthenticated(FleetError):
    status = 401

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class Forbidden(FleetError):
    status = 403


class NotFound(FleetError):
    status = 404


class Conflict(FleetError):
    status = 409


class PolicyDenied(FleetError):
    status = 403


class PayloadTooLarge(FleetError):
    """A body over its cap, refused before (or as soon as) it passes it; the
    connection is closed, so the rest of the body is never read."""

    status = 413

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class RangeNotSatisfiable(FleetError):
    """A ``Range`` that starts past the end of the file; ``size`` goes out as
    ``Content-Range: bytes */SIZE``."""

    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Range": f"bytes */{self.size}"}


class TooManyRequests(FleetError):
    """A per-address limit; ``retry_after_s`` goes out as ``Retry-After``."""

    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class CommandTimeout(FleetError):
    status = 504


class StoreError(FleetError):
    status = 503


class SchemaError(StoreError):
    """The database cannot be used at this schema version; nothing was changed."""
