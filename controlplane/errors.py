"""The control plane's exceptions.

Each maps to one HTTP status; the message says what happened and what to do::

    FleetError
    ├── BadRequest          400
    ├── Unauthenticated     401
    ├── Forbidden           403
    ├── NotFound            404
    ├── Conflict            409  (e.g. the agent is offline)
    ├── PolicyDenied        403  (a probe outside the pool's policy)
    ├── TooManyRequests     429  (a limit: too many failed attempts, connections)
    ├── CommandTimeout      504
    └── StoreError          503  (the store could not write: e.g. a full disk)
        └── SchemaError          (the database's schema: newer than the code, a failed migration)
"""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "CommandTimeout",
    "Conflict",
    "FleetError",
    "Forbidden",
    "NotFound",
    "PolicyDenied",
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


class TooManyRequests(FleetError):
    """A per-address limit; ``retry_after_s`` goes out as ``Retry-After``."""

    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class CommandTimeout(FleetError):
    status = 504


class StoreError(FleetError):
    status = 503


class SchemaError(StoreError):
    """The database cannot be used at this schema version; nothing was changed."""
