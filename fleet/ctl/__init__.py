"""The admin CLI over the control plane's REST API: ``fleet agents``, ``users``, ...

One module per noun; each adds its verbs to the root parser's subcommands with
``register``.  Only the standard library is imported to build the parsers (httpx
is loaded by the first request), so ``fleet agent`` pays nothing for them.
"""

from __future__ import annotations

from . import (
    agents,
    connections,
    events,
    login,
    pools,
    releases,
    remediation,
    rollouts,
    silences,
    tokens,
    users,
)
from .common import Subparsers

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    """Add every admin command (and ``login``) to ``sub``."""
    login.register(sub)
    for noun in (
        agents,
        users,
        tokens,
        pools,
        connections,
        events,
        silences,
        releases,
        remediation,
        rollouts,
    ):
        noun.register(sub)
