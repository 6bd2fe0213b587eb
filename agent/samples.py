"""Health samples for heartbeats: host CPU %, process RSS, host memory used %."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

__all__ = ["Sample", "Sampler"]


@dataclass(frozen=True)
class Sample:
    """One reading; every field is ``None`` when samples are turned off."""

    cpu_percent: float | None = None
    mem_rss_bytes: int | None = None
    mem_host_percent: float | None = None


class Sampler:
    """Reads samples with psutil, or nothing at all when ``enabled`` is false.

    CPU % is the host's, averaged since the previous reading (the first reading
    after start averages since the sampler was made).
    """

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._process = psutil.Process() if enabled else None
        if enabled:
            psutil.cpu_percent(interval=None)  # primes the since-last-call average

    def read(self) -> Sample:
        """Take a reading now."""
        if self._process is None:
            return Sample()
        return Sample(
            cpu_percent=psutil.cpu_percent(interval=None),
            mem_rss_bytes=self._process.memory_info().rss,
            mem_host_percent=psutil.virtual_memory().percent,
        )
