"""The few measurements ``/metrics`` cannot compute at scrape time: timings.

Everything else (agents by state, skew, queues, certificates, subscribers) is
read from the live fleet when Prometheus scrapes (:mod:`controlplane.metrics`),
so heartbeats pay nothing for it. What is timed here happens rarely: a command
an operator sent, a write-behind flush every few seconds. The histograms belong
to one control plane (not prometheus_client's global registry), so that several
can live in one process, as in tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Histogram
from prometheus_client.metrics_core import Metric

__all__ = ["Instruments"]

COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
"""Seconds: a probe on loopback takes milliseconds, one with a TLS handshake across a
WAN a second or two, and a timeout is ``command_timeout_s`` (15 s by default)."""

FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Seconds: a batch of thousands of rows in SQLite's WAL takes tens of milliseconds;
seconds mean a slow or full disk."""


class Instruments:
    """The histograms the command path and the write-behind flush observe."""

    def __init__(self) -> None:
        self.command_seconds = Histogram(
            "fleet_command_duration_seconds",
            "Time from sending a command (probe, logs, config) down an agent's channel to "
            "its answer; result is ok, failed (the agent answered with a failure) or error "
            "(timeout, channel closed).",
            ["command", "result"],
            buckets=COMMAND_BUCKETS,
            registry=None,
        )
        self.flush_seconds = Histogram(
            "fleet_store_flush_duration_seconds",
            "Time of one write-behind flush of changed agents and queued alerts to the "
            "store; result is ok or error (the rows are kept and retried).",
            ["result"],
            buckets=FLUSH_BUCKETS,
            registry=None,
        )

    def command(self, action: str, result: str, seconds: float) -> None:
        """Observe one command: ``action`` as audited (``agent.probe``), ``result``."""
        self.command_seconds.labels(action.removeprefix("agent."), result).observe(seconds)

    def flush(self, ok: bool, seconds: float) -> None:
        self.flush_seconds.labels("ok" if ok else "error").observe(seconds)

    def collect(self) -> Iterable[Metric]:
        yield from self.command_seconds.collect()
        yield from self.flush_seconds.collect()
