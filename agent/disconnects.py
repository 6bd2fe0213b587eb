"""Why each channel ended, remembered until the control plane has heard it.

Three small parts, each testable without a network:

* :func:`classify` turns the exception that ended a channel (or an attempt to
  open one) into a :data:`~fleet.protocol.DisconnectCause`, a close code and words;
* :class:`SleepWatch` notices that the host slept: the wall clock moved on while
  the monotonic clock (which stands still in a suspend on Linux) did not;
* :class:`DisconnectLog` keeps the last :data:`~fleet.protocol.MAX_DISCONNECTS`
  records in memory (they survive a reconnect, not a restart of the agent),
  folds a run of identical failed attempts into one record, and hands out the
  ones not yet reported.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections import deque
from collections.abc import Callable

from websockets.exceptions import ConnectionClosed, InvalidStatus, ProxyError

from fleet.protocol import (
    CLOSE_MEANINGS,
    MAX_DISCONNECTS,
    CloseCode,
    Disconnect,
    DisconnectCause,
    replace,
)

__all__ = ["SLEEP_THRESHOLD_S", "DisconnectLog", "SleepWatch", "classify"]

SLEEP_THRESHOLD_S = 10.0
"""A wall-clock jump ahead of the monotonic clock by more than this is a sleep
(NTP slews the clock by far less; a step of this size is worth reporting anyway)."""

_KEEPALIVE = "keepalive ping timeout"

_STANDARD_CLOSES = {
    CloseCode.NORMAL: "normal close",
    CloseCode.GOING_AWAY: "going away (the control plane is restarting or shutting down)",
    CloseCode.INTERNAL_ERROR: "internal error of the control plane",
    CloseCode.MESSAGE_TOO_BIG: "a message was too big",
}


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(exc: BaseException) -> tuple[DisconnectCause, int | None, str]:
    """The cause, close code and words for what ended a channel or an attempt."""
    if isinstance(exc, ConnectionClosed):
        if exc.rcvd is not None:
            code = exc.rcvd.code
            meaning = CLOSE_MEANINGS.get(code) or _STANDARD_CLOSES.get(code, "closed")
            said = f": {exc.rcvd.reason}" if exc.rcvd.reason else ""
            return (
                "server_close",
                code,
                _cut(f"closed by the control plane ({code} {meaning}){said}"),
            )
        if exc.sent is not None and exc.sent.reason == _KEEPALIVE:
            return "ping_timeout", None, "no answer to a websocket ping within 20 s"
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError):
            return "tls", None, _cut(f"TLS error on an open channel: {cause}")
        why = f" ({type(cause).__name__})" if cause is not None else ""
        return "reset", None, f"connection closed without a close frame{why}: TCP reset or FIN"
    if isinstance(exc, socket.gaierror):
        return "dns", None, _cut(f"name resolution failed: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls", None, _cut(f"TLS verification failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return "tls", None, _cut(f"TLS error: {exc}")
    if isinstance(exc, ProxyError):
        return "proxy", None, _cut(f"the proxy refused: {exc}")
    if isinstance(exc, InvalidStatus):
        return "other", None, _cut(f"websocket upgrade refused: {exc}")
    if isinstance(exc, ConnectionRefusedError):
        return "refused", None, "connection refused (is the control plane running?)"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset", None, _cut(f"connection reset: {exc}")
    if isinstance(exc, TimeoutError):
        return "timeout", None, "timed out"
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "other", None, _cut(text)


class SleepWatch:
    """Notices a sleep of the host between two :meth:`check` calls.

    Args:
        wall: the wall clock (a seam for tests).
        mono: the monotonic clock, which does not count a suspend.
        threshold_s: the smallest jump reported.
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        threshold_s: float = SLEEP_THRESHOLD_S,
    ) -> None:
        self._wall, self._mono, self.threshold_s = wall, mono, threshold_s
        self._last = (wall(), mono())

    def check(self) -> float | None:
        """Seconds slept since the last check, when over the threshold; else None."""
        wall, mono = self._wall(), self._mono()
        last_wall, last_mono = self._last
        self._last = (wall, mono)
        jump = (wall - last_wall) - (mono - last_mono)
        return jump if jump > self.threshold_s else None


class DisconnectLog:
    """The newest :data:`MAX_DISCONNECTS` records, each reported once."""

    def __init__(self, limit: int = MAX_DISCONNECTS) -> None:
        self._records: deque[tuple[Disconnect, bool]] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: Disconnect) -> None:
        """Remember ``record``; a failed attempt like the last unreported one is folded in."""
        if self._records and record.connected_at is None:
            last, reported = self._records[-1]
            if (
                not reported
                and last.connected_at is None
                and (last.cause, last.detail, last.tls_issuer)
                == (record.cause, record.detail, record.tls_issuer)
            ):
                self._records[-1] = (
                    replace(last, ended_at=record.ended_at, attempts=last.attempts + 1),
                    False,
                )
                return
        self._records.append((record, False))

    def records(self) -> list[Disconnect]:
        """Every record kept, oldest first."""
        return [r for r, _ in self._records]

    def unreported(self) -> list[Disconnect]:
        """The records the control plane has not heard yet, oldest first."""
        return [r for r, reported in self._records if not reported]

    def mark_reported(self, sent: list[Disconnect]) -> None:
        """``sent`` reached the control plane: do not send them again."""
        ids = {id(r) for r in sent}
        self._records = deque(
            ((r, reported or id(r) in ids) for r, reported in self._records),
            maxlen=self._records.maxlen,
        )
