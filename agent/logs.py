"""The agent's own logs: a rotating file in the state directory and a ring in memory.

On request the agent returns its last N lines, or the lines since a time,
redacted by :class:`agent.redaction.Redactor` before they leave the host.  The ring
answers recent requests; the files (current first, then rotated ones) answer for
older lines, including those of earlier runs.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.redaction import Redactor

__all__ = ["LOGGER_NAME", "MAX_BUNDLE_BYTES", "LogBook", "restrict_umask"]

LOGGER_NAME = "agent"
MAX_BUNDLE_BYTES = 512 * 1024
"""A logs answer stays well under the 1 MiB frame limit."""

_TS_LEN = len("2026-01-01T00:00:00.000Z")


class _Formatter(logging.Formatter):
    """``2026-11-27T03:12:58.123Z INFO agent.channel: message`` in UTC."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _line_time(line: str) -> float | None:
    if len(line) < _TS_LEN or line[_TS_LEN - 1] != "Z":
        return None
    try:
        moment = datetime.strptime(line[: _TS_LEN - 1], "%Y-%m-%dT%H:%M:%S.%f")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC).timestamp()


class _RingHandler(logging.Handler):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.lines: collections.deque[tuple[float, str]] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a bad format argument must not kill the agent
            self.handleError(record)
            return
        for line in text.splitlines() or [""]:
            self.lines.append((record.created, line))


class LogBook:
    """Owns the agent's log handlers and answers log requests.

    Args:
        log_dir: where ``agent.log`` and its rotations live; ``None`` for memory only.
        max_bytes: size at which the file rotates.
        backups: rotated files kept.
        ring_lines: lines kept in memory.
    """

    def __init__(
        self, log_dir: Path | None, *, max_bytes: int, backups: int, ring_lines: int
    ) -> None:
        self.formatter = _Formatter(_FORMAT)
        self.ring = _RingHandler(ring_lines)
        self.ring.setFormatter(self.formatter)
        self.file: Path | None = None
        self.handlers: list[logging.Handler] = [self.ring]
        if log_dir is not None:
            log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.file = log_dir / "agent.log"
            if not self.file.exists():
                self.file.touch(mode=0o600)
            handler = logging.handlers.RotatingFileHandler(
                self.file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            handler.setFormatter(self.formatter)
            self.handlers.append(handler)

    def install(self, level: str, *, stderr: bool = True) -> logging.Logger:
        """Attach the handlers to the ``agent`` logger and return it."""
        logger = logging.getLogger(LOGGER_NAME)
        logger.setLevel(level.upper())
        logger.propagate = False
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handlers = list(self.handlers)
        if stderr:
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(self.formatter)
            handlers.append(console)
        for handler in handlers:
            logger.addHandler(handler)
        return logger

    def close(self) -> None:
        """Detach the handlers from the ``agent`` logger and close them."""
        logger = logging.getLogger(LOGGER_NAME)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        for handler in self.handlers:
            handler.close()

    def _from_ring(self, since: float | None) -> list[str]:
        return [line for ts, line in self.ring.lines if since is None or ts >= since]

    def _from_files(self, since: float | None, limit: int) -> list[str]:
        if self.file is None:
            return []
        paths = [self.file]
        index = 1
        while (rotated := self.file.with_name(f"{self.file.name}.{index}")).exists():
            paths.append(rotated)
            index += 1
        collected: list[str] = []
        for path in paths:  # newest file first
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            chunk: list[str] = []
            current: float | None = None
            reached_since = False
            for line in text.splitlines():
                # Lines without a time (traceback lines) belong to the record above.
                stamp = _line_time(line)
                current = stamp if stamp is not None else current
                if since is None or (current is not None and current >= since):
                    chunk.append(line)
                else:
                    reached_since = True
            collected = chunk + collected
            # Older files hold only older lines: stop once enough, or once past `since`.
            if len(collected) >= limit or reached_since:
                break
        return collected

    def tail(self, lines: int, since: float | None = None) -> tuple[list[str], bool]:
        """The last ``lines`` lines (since ``since`` if given), redacted.

        Returns:
            The lines, oldest first, and whether they were cut to the size limit.
        """
        picked = self._from_ring(since)
        # The files hold what the ring dropped, and earlier runs of the agent.
        if len(picked) < lines and self.file is not None:
            from_files = self._from_files(since, lines)
            if len(from_files) > len(picked):
                picked = from_files
        picked = picked[-lines:]
        return _redact_within_budget(picked)


def _redact_within_budget(picked: list[str]) -> tuple[list[str], bool]:
    """The newest of ``picked`` that fit :data:`MAX_BUNDLE_BYTES` once redacted,
    oldest first, and whether any were left out.

    Redacting is the cost (10,000 lines of 16 KiB took 6.5 s), so only the lines
    that fit are redacted, newest first.  A line inside a private key block is
    masked whole: one cheap pass, oldest first, finds which lines start inside
    one, so each line comes out as redacting them all in order would give it.
    """
    tracker = Redactor()
    inside: list[bool] = []
    for line in picked:
        inside.append(tracker.in_private_key)
        tracker.follow(line)
    kept: list[str] = []
    size = 0
    for line, in_key in zip(reversed(picked), reversed(inside), strict=True):
        redacted = Redactor(in_private_key=in_key).redact_line(line)
        size += len(redacted.encode("utf-8")) + 1
        if size > MAX_BUNDLE_BYTES:
            break
        kept.append(redacted)
    kept.reverse()
    return kept, len(kept) < len(picked)


def restrict_umask() -> None:
    """Files the agent creates are private to its user (keys, logs, state)."""
    os.umask(0o077)
