"""Every error the dashboard raises, in one tree.

FleetTuiError
├── ConfigError            bad command line, unreadable token or CA file
├── TlsPinMismatch         the server's CA does not match the given pin
└── ApiError               the REST API answered with an error
    ├── RefusedError       401/403: the token is unknown or its role too low
    ├── UnavailableError   409/504: the agent is offline or did not answer
    └── ServerError        anything else, including no answer at all
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ConfigError",
    "FleetTuiError",
    "RefusedError",
    "ServerError",
    "TlsPinMismatch",
    "UnavailableError",
]


class FleetTuiError(Exception):
    """Base of every dashboard error; ``str()`` is meant for the user."""


class ConfigError(FleetTuiError):
    """The command line or a file it names cannot be used."""


class TlsPinMismatch(FleetTuiError):
    """The server presented a CA whose public key does not match the pin."""


class ApiError(FleetTuiError):
    """The control plane answered a REST call with an error.

    Args:
        status: The HTTP status, or 0 when there was no answer.
        detail: The server's ``detail`` text, or what went wrong.
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.detail} (HTTP {self.status})" if self.status else self.detail


class RefusedError(ApiError):
    """The token is unknown (401) or its role may not do this (403)."""


class UnavailableError(ApiError):
    """The agent cannot do it now: offline (409) or no answer in time (504)."""


class ServerError(ApiError):
    """Any other failure, including a network error."""
