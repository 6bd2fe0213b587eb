"""Every error of the admin CLI, in one tree; each carries its exit code.

CtlError                 1  the server refused, or could not be reached
│   └── PinMismatchError 1  the server's CA is not the one --ca-pin names
├── UsageError           2  bad arguments, nothing configured, confirmation missing
├── NotFoundError        3  404: no such agent, user, token, pool or connection
├── ConflictError        4  409: already exists, or not possible in this state
└── AuthError            5  401/403: the token is unknown or its role too low
"""

from __future__ import annotations

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "AuthError",
    "ConflictError",
    "CtlError",
    "NotFoundError",
    "PinMismatchError",
    "UsageError",
]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_AUTH = 5


class CtlError(Exception):
    """Base of every admin CLI error; ``str()`` is meant for the user."""

    exit_code = EXIT_ERROR


class UsageError(CtlError):
    """The command line, the environment or the profile cannot be used as given."""

    exit_code = EXIT_USAGE


class NotFoundError(CtlError):
    """The object named does not exist (HTTP 404)."""

    exit_code = EXIT_NOT_FOUND


class ConflictError(CtlError):
    """The object exists already, or the change is not possible now (HTTP 409)."""

    exit_code = EXIT_CONFLICT


class AuthError(CtlError):
    """The server does not know the token, or its role is too low (HTTP 401, 403)."""

    exit_code = EXIT_AUTH


class PinMismatchError(CtlError):
    """The CA the server serves at ``/v1/ca`` does not have the pin given."""
