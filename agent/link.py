"""The lifecycle of the agent's channel, as an explicit state machine."""

from __future__ import annotations

import logging
from enum import StrEnum

__all__ = ["IllegalTransition", "Link", "LinkState"]

log = logging.getLogger("agent.link")


class LinkState(StrEnum):
    """Where the agent's channel is."""

    STARTING = "starting"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    CONNECTED = "connected"
    BACKING_OFF = "backing_off"
    STOPPED = "stopped"


_ALLOWED: dict[LinkState, frozenset[LinkState]] = {
    LinkState.STARTING: frozenset({LinkState.CONNECTING, LinkState.STOPPED}),
    LinkState.CONNECTING: frozenset(
        {LinkState.AUTHENTICATING, LinkState.BACKING_OFF, LinkState.STOPPED}
    ),
    LinkState.AUTHENTICATING: frozenset(
        {LinkState.CONNECTED, LinkState.BACKING_OFF, LinkState.STOPPED}
    ),
    # CONNECTING straight away: a renewal installed a new key, to be used at once.
    LinkState.CONNECTED: frozenset(
        {LinkState.CONNECTING, LinkState.BACKING_OFF, LinkState.STOPPED}
    ),
    LinkState.BACKING_OFF: frozenset({LinkState.CONNECTING, LinkState.STOPPED}),
    LinkState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A transition the lifecycle does not allow: a bug in the agent."""


class Link:
    """Holds the channel's state; every change is checked and logged at debug level."""

    def __init__(self) -> None:
        self.state = LinkState.STARTING

    def to(self, new: LinkState) -> None:
        """Move to ``new``.

        Raises:
            IllegalTransition: ``new`` may not follow the current state.
        """
        if new not in _ALLOWED[self.state]:
            raise IllegalTransition(f"channel cannot go from {self.state} to {new}")
        log.debug("channel %s -> %s", self.state, new)
        self.state = new
