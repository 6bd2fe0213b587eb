"""The agent's exceptions, in one tree.

Every message says what happened and what to do about it::

    AgentError
    ├── ConfigError              bad configuration file, variable or flag
    ├── StateError               the state directory is missing or damaged
    ├── InstallError             install-service could not write a file
    ├── EnrollError              enrollment did not complete
    │   ├── PinMismatch          the server's CA does not match the pin (token not sent)
    │   ├── TokenRejected        unknown, used or expired enrollment token
    │   ├── TLSRefused           the server's certificate failed a TLS check (token not sent)
    │   └── ServerUnreachable    no answer from the server
    └── ChannelClosed            the control plane closed the channel with a code
        ├── Revoked              the agent's identity was revoked: stop
        └── CertificateExpired   the certificate expired: enroll again
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "CertificateExpired",
    "ChannelClosed",
    "ConfigError",
    "EnrollError",
    "InstallError",
    "PinMismatch",
    "Revoked",
    "ServerUnreachable",
    "StateError",
    "TLSRefused",
    "TokenRejected",
]


class AgentError(Exception):
    """Base of every error the agent reports to its operator."""


class ConfigError(AgentError):
    """A configuration file, environment variable or flag is invalid."""


class StateError(AgentError):
    """The state directory is missing, incomplete or has unsafe permissions."""


class InstallError(AgentError):
    """``fleet agent install-service`` could not write one of its files."""


class EnrollError(AgentError):
    """Enrollment failed; the message says why and what to do."""


class PinMismatch(EnrollError):
    """The server's CA public key does not match the pin; the token was not sent."""


class TokenRejected(EnrollError):
    """The control plane refused the enrollment token (unknown, used or expired)."""


class TLSRefused(EnrollError):
    """The server's TLS certificate failed a check (chain, dates or name); no token sent."""


class ServerUnreachable(EnrollError):
    """The control plane could not be reached."""


class ChannelClosed(AgentError):
    """The control plane closed the channel with one of our close codes.

    Attributes:
        code: the websocket close code.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Revoked(ChannelClosed):
    """The agent's identity was revoked: the agent stops and does not retry."""


class CertificateExpired(ChannelClosed):
    """The agent's certificate expired before it was renewed: enroll again."""
