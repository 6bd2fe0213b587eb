"""The dashboard's link to the control plane as an explicit state machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ConnectionState", "IllegalTransition", "LinkStatus"]


class ConnectionState(StrEnum):
    """Where the event stream stands, named as the header shows it."""

    CONNECTING = "connecting"
    LIVE = "live"
    NOT_ANSWERING = "not answering"
    """Connected, but the server's heartbeats stopped: hung or stopped (SIGSTOP)."""
    RECONNECTING = "reconnecting"
    REFUSED = "refused"
    STOPPED = "stopped"


class IllegalTransition(RuntimeError):
    """A state change the lifecycle does not allow: a bug, not a network event."""


_ALLOWED: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.CONNECTING: frozenset(
        {
            ConnectionState.LIVE,
            ConnectionState.RECONNECTING,
            ConnectionState.REFUSED,
            ConnectionState.STOPPED,
        }
    ),
    ConnectionState.LIVE: frozenset(
        {
            ConnectionState.NOT_ANSWERING,
            ConnectionState.RECONNECTING,
            ConnectionState.STOPPED,
            ConnectionState.REFUSED,
        }
    ),
    ConnectionState.NOT_ANSWERING: frozenset(
        {
            ConnectionState.LIVE,
            ConnectionState.RECONNECTING,
            ConnectionState.STOPPED,
            ConnectionState.REFUSED,
        }
    ),
    ConnectionState.RECONNECTING: frozenset(
        {
            ConnectionState.LIVE,
            ConnectionState.RECONNECTING,
            ConnectionState.REFUSED,
            ConnectionState.STOPPED,
        }
    ),
    ConnectionState.REFUSED: frozenset({ConnectionState.STOPPED}),
    ConnectionState.STOPPED: frozenset(),
}


@dataclass(frozen=True)
class LinkStatus:
    """The stream's state with the words to show for it.

    Args:
        state: The lifecycle state.
        detail: Why (for ``refused``: the reason and what to do; for
            ``reconnecting``: the last error and when the next try is).
        attempt: Reconnection attempts since the link was last live.
    """

    state: ConnectionState
    detail: str = ""
    attempt: int = 0

    def to(self, state: ConnectionState, detail: str = "", attempt: int = 0) -> LinkStatus:
        """The next status; raises :class:`IllegalTransition` for a move not allowed."""
        if state not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.state} -> {state}")
        return LinkStatus(state, detail, attempt)

    def words(self) -> str:
        """The header text: ``"live"``, ``"refused: token unknown …"``."""
        return f"{self.state.value}: {self.detail}" if self.detail else self.state.value
