"""What each receiver has delivered: read by ``GET /v1/notifications`` and ``/metrics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["ReceiverStats", "StatsSource"]


@dataclass(frozen=True)
class ReceiverStats:
    """One receiver's delivery state.

    Attributes:
        name: the receiver's name in the server config.
        kind: ``alertmanager``, ``webhook`` or ``slack``.
        queued: notifications waiting to be sent now.
        delivered: notifications the receiver accepted (2xx), since start.
        failed: attempts that failed (network error, timeout, non-2xx), since start.
        dropped: notifications dropped because the queue was full (oldest first).
        last_success_at: epoch seconds of the last accepted delivery, if any.
        last_error: what the last failed attempt said, if any.
        last_error_at: when it failed.
        held: notifications held back (a silence, maintenance; see
            :class:`controlplane.notify.notifier.Notifier`), not sent.
    """

    name: str
    kind: str
    queued: int
    delivered: int
    failed: int
    dropped: int
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    held: int = 0


class StatsSource(Protocol):
    """What the notifier offers to the API and the metrics."""

    def stats(self) -> list[ReceiverStats]:
        """Every configured receiver, in config order."""
        ...
