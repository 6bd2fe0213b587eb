"""Reconnect delays with full jitter: a random delay in a window that doubles.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads
agents evenly over the window, so a control-plane restart does not bring every
agent back on the same tick.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["FullJitter"]


class FullJitter:
    """Delays uniform in ``[0, min(cap, base * 2**attempt))``.

    Args:
        base_s: the first window.
        cap_s: the largest window.
        rng: a source of floats in ``[0, 1)`` (a seam for tests).
    """

    def __init__(
        self, *, base_s: float = 1.0, cap_s: float = 60.0, rng: Callable[[], float] = random.random
    ) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.attempt = 0
        self._rng = rng

    def window(self) -> float:
        """The window the next delay is drawn from."""
        return min(self.cap_s, self.base_s * 2.0 ** min(self.attempt, 32))

    def next_delay(self) -> float:
        """Draw the next delay and widen the window."""
        delay = self._rng() * self.window()
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Back to the first window, after a connection that held."""
        self.attempt = 0
