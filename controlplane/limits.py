"""Limits against abuse: token buckets, failures and pending connections per
address, and an audit that counts refusals per window instead of writing a row
for each.

Every check here runs on a hot path (a token bucket is taken once per agent
message, 2,000 a second for 10,000 agents), so each is a few attribute reads and
one comparison, with no allocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["FailureCounter", "PendingConnections", "RefusalAudit", "TokenBucket", "address_of"]


def address_of(client: str | None) -> str:
    """The host of a ``host:port`` peer string (IPv6 too), or ``"?"``."""
    if not client:
        return "?"
    host, sep, port = client.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() else client


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved; one per message."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, now: float) -> bool:
        """Spend one token at ``now`` (``time.monotonic()``); false when none is left."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class FailureCounter:
    """Failed attempts per source address in fixed windows of ``window_s``.

    After ``limit`` failures in a window the address is refused until the window
    ends; :meth:`retry_after` says for how long.
    """

    MAX_ADDRESSES = 10_000
    """Addresses tracked at most: past it, expired windows go, then the oldest."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._windows: dict[str, tuple[float, int]] = {}

    def retry_after(self, address: str, now: float | None = None) -> float | None:
        """Seconds until ``address`` may try again, or ``None`` if it may now."""
        entry = self._windows.get(address)
        if entry is None:
            return None
        now = time.monotonic() if now is None else now
        start, count = entry
        if now - start >= self.window_s:
            del self._windows[address]
            return None
        return start + self.window_s - now if count >= self.limit else None

    def fail(self, address: str, now: float | None = None) -> None:
        """Count one failure from ``address``."""
        now = time.monotonic() if now is None else now
        entry = self._windows.get(address)
        if entry is None or now - entry[0] >= self.window_s:
            if len(self._windows) >= self.MAX_ADDRESSES:
                self._prune(now)
            self._windows[address] = (now, 1)
        else:
            self._windows[address] = (entry[0], entry[1] + 1)

    def _prune(self, now: float) -> None:
        for address in [a for a, (s, _) in self._windows.items() if now - s >= self.window_s]:
            del self._windows[address]
        while len(self._windows) >= self.MAX_ADDRESSES:  # insertion order: oldest first
            del self._windows[next(iter(self._windows))]


class PendingConnections:
    """Connections per source address that have not authenticated yet, at most ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._count: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more from ``address``; false (and not counted) over the cap."""
        count = self._count.get(address, 0)
        if count >= self.cap:
            return False
        self._count[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """That connection authenticated or went away."""
        count = self._count.get(address, 0) - 1
        if count > 0:
            self._count[address] = count
        else:
            self._count.pop(address, None)


@dataclass
class _Tally:
    started: float
    count: int
    detail: str


AuditWriter = Callable[[str, str, str, str, str], Awaitable[None]]
"""``audit(actor, action, target, result, detail)``, as :meth:`Fleet.audit`."""


class RefusalAudit:
    """Refusals that anyone could repeat, written as one audit row per
    ``(actor, action, target)`` per window with their count.

    :meth:`note` is synchronous and cheap; the rows are written by :meth:`run`
    when a window ends, and by :meth:`flush` (before the audit is read, and at
    shutdown), so a reader always sees every refusal counted.
    """

    MAX_TALLIES = 10_000
    """Distinct rows held per window at most; refusals past it (from yet more
    addresses) are counted in one row per actor and action with target ``*``."""

    def __init__(self, write: AuditWriter, window_s: float) -> None:
        self.write = write
        self.window_s = window_s
        self._tallies: dict[tuple[str, str, str, str], _Tally] = {}

    def note(
        self, actor: str, action: str, target: str, detail: str, result: str = "refused"
    ) -> None:
        """Count one refusal; ``detail`` (the latest) says why."""
        key = (actor, action, target, result)
        tally = self._tallies.get(key)
        if tally is None and len(self._tallies) >= self.MAX_TALLIES:
            key = (actor, action, "*", result)
            tally = self._tallies.get(key)
        if tally is None:
            self._tallies[key] = _Tally(time.monotonic(), 1, detail)
        else:
            tally.count += 1
            tally.detail = detail

    async def flush(self, *, everything: bool = True) -> None:
        """Write the tallies (all, or only those whose window ended)."""
        now = time.monotonic()
        due = [
            key
            for key, tally in self._tallies.items()
            if everything or now - tally.started >= self.window_s
        ]
        for key in due:
            tally = self._tallies.pop(key)
            actor, action, target, result = key
            times = "once" if tally.count == 1 else f"{tally.count} times"
            span = max(0.0, now - tally.started)
            await self.write(
                actor, action, target, result, f"{tally.detail} ({times} in {span:.0f} s)"
            )

    async def run(self) -> None:
        """Write each window's rows as it ends, until cancelled."""
        while True:
            await asyncio.sleep(max(0.05, self.window_s / 4))
            await self.flush(everything=False)
