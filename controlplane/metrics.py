"""``/metrics``: the control plane's state in the Prometheus text format.

A custom collector reads the live fleet when Prometheus scrapes: agents by
state and pool, skew and queue-depth distributions, the soonest certificate
expiry, event-stream subscribers and what their buffers coalesced or dropped,
open alerts and notification deliveries. Nothing of it costs a heartbeat
anything; one scrape is one pass over the agents (``bench/metrics_bench.py``:
10,000 agents in a few milliseconds). The heartbeat count is the integer the
fleet already keeps for ``/healthz``; only command and flush timings are
observed as they happen (:mod:`controlplane.instruments`).

Distributions of the current state (skew, queue depth) are *gauge histograms*:
they describe the fleet now, not events since start, so their buckets go down as
well as up and ``rate()`` makes no sense on them; ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fleet import __version__
from fleet.protocol import PROTOCOL_VERSION, Presence

from .notify.stats import ReceiverStats, StatsSource

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["FleetCollector", "make_registry", "render"]

SKEW_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds of absolute clock skew; 1 s warns and 30 s is critical by default."""
QUEUE_BUCKETS = (0.0, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
"""Commands waiting on an agent; 100 warns by default."""
LIVE = (Presence.CONNECTED, Presence.DEGRADED, Presence.STALE)
"""Agents whose channel is (or was until moments ago) up: their measures are current."""


def _buckets(bounds: Sequence[float], values: list[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts of ``values`` for a (gauge) histogram, +Inf last."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        # The first bound at or above the value (Prometheus buckets are "le").
        counts[bisect_left(bounds, value)] += 1
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), counts, strict=True):
        running += count
        out.append((bound, float(running)))
    return out


class FleetCollector(Collector):
    """Reads a control plane's state at scrape time."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp

    def collect(self) -> Iterator[Metric]:
        cp = self.cp
        fleet = cp.fleet
        info = GaugeMetricFamily(
            "fleet_build_info",
            "The control plane's version and wire protocol version (always 1).",
            labels=["version", "protocol_version"],
        )
        info.add_metric([__version__, str(PROTOCOL_VERSION)], 1.0)
        yield info

        by_pool: dict[str, dict[Presence, int]] = {
            pool: dict.fromkeys(Presence, 0) for pool in (*fleet.members, *fleet.pools)
        }
        skews: list[float] = []
        queues: list[float] = []
        soonest: float | None = None
        for agent in fleet.agents.values():
            state = agent.state
            pool = agent.record.pool
            counts = by_pool.get(pool)
            if counts is None:
                counts = by_pool[pool] = dict.fromkeys(Presence, 0)
            counts[state] += 1
            if state in LIVE:
                if agent.skew_ms is not None:
                    skews.append(abs(agent.skew_ms) / 1000)
                if agent.queue_depth is not None:
                    queues.append(float(agent.queue_depth))
                expiry = agent.cert_not_after
                if expiry is not None and (soonest is None or expiry < soonest):
                    soonest = expiry

        agents = GaugeMetricFamily(
            "fleet_agents",
            "Enrolled agents by presence state (pending, connected, degraded, stale, "
            "offline, revoked) and pool; every state of every pool is listed, 0 included.",
            labels=["state", "pool"],
        )
        for pool in sorted(by_pool):
            for state, count in by_pool[pool].items():
                agents.add_metric([state.value, pool], float(count))
        yield agents

        yield GaugeMetricFamily(
            "fleet_agent_channels",
            "Agent channels open now (authenticated websocket connections).",
            value=float(len(cp.channels)),
        )
        yield CounterMetricFamily(
            "fleet_heartbeats",
            "Heartbeats received from agents since the control plane started; "
            "rate() gives heartbeats per second.",
            value=float(fleet.heartbeats),
        )
        yield CounterMetricFamily(
            "fleet_server_pauses",
            "Times the control plane noticed it had been paused (SIGSTOP, a suspended VM, "
            "a blocked event loop) and held back presence judgements.",
            value=float(fleet.pauses),
        )
        yield GaugeHistogramMetricFamily(
            "fleet_agent_clock_skew_seconds",
            "Absolute clock offset of connected, degraded and stale agents against the "
            "control plane, now (a gauge histogram of the fleet's current state).",
            buckets=_buckets(SKEW_BUCKETS, skews),
            gsum_value=math.fsum(skews),
        )
        yield GaugeHistogramMetricFamily(
            "fleet_agent_queue_depth",
            "Commands waiting on connected, degraded and stale agents, as last reported "
            "(a gauge histogram of the fleet's current state).",
            buckets=_buckets(QUEUE_BUCKETS, queues),
            gsum_value=math.fsum(queues),
        )
        if soonest is not None:
            yield GaugeMetricFamily(
                "fleet_agent_certificate_soonest_expiry_timestamp_seconds",
                "When the first certificate of a connected, degraded or stale agent expires "
                "(Unix time); absent when no such agent has one. Agents renew at two thirds "
                "of the lifetime, so one close to now means renewal is failing.",
                value=soonest,
            )

        open_alerts: dict[tuple[str, str], int] = {}
        for alert in fleet.published.values():
            key = (alert.kind, alert.severity)
            open_alerts[key] = open_alerts.get(key, 0) + 1
        alerts = GaugeMetricFamily(
            "fleet_alerts_open",
            "Open alerts by kind and severity, as stored and shown on the dashboard.",
            labels=["kind", "severity"],
        )
        for (kind, severity), count in sorted(open_alerts.items()):
            alerts.add_metric([kind, severity], float(count))
        yield alerts

        bus = fleet.bus
        yield GaugeMetricFamily(
            "fleet_event_stream_subscribers",
            "Event-stream clients (dashboards) subscribed now.",
            value=float(bus.subscriber_count),
        )
        counts_now = bus.counts()
        yield CounterMetricFamily(
            "fleet_event_stream_coalesced_updates",
            "Agent updates replaced by a newer one before a subscriber was sent them "
            "(latest state wins): a measure of how far dashboards lag.",
            value=float(counts_now.coalesced),
        )
        yield CounterMetricFamily(
            "fleet_event_stream_dropped_updates",
            "Pending updates discarded because a subscriber fell too far behind "
            "(subscriber_buffer); it got a fresh snapshot instead.",
            value=float(counts_now.dropped),
        )
        yield CounterMetricFamily(
            "fleet_event_stream_snapshot_resets",
            "Times a subscriber fell too far behind and was sent a fresh snapshot.",
            value=float(counts_now.resets),
        )
        yield GaugeMetricFamily(
            "fleet_event_stream_sequence",
            "The event stream's latest sequence number (restarts at 0 with the server).",
            value=float(bus.seq),
        )
        yield from _notifications(getattr(cp, "notifier", None))
        yield from cp.instruments.collect()


def _notifications(source: StatsSource | None) -> Iterable[Metric]:
    """Delivery counters per receiver, when a notifier is configured."""
    stats: list[ReceiverStats] = source.stats() if source is not None else []
    labels = ["receiver", "kind"]
    delivered = CounterMetricFamily(
        "fleet_notifications_delivered",
        "Notifications a receiver accepted (a 2xx answer) since start.",
        labels=labels,
    )
    failed = CounterMetricFamily(
        "fleet_notifications_failed",
        "Delivery attempts that failed (network error, timeout, non-2xx) since start; "
        "failed attempts are retried with backoff.",
        labels=labels,
    )
    dropped = CounterMetricFamily(
        "fleet_notifications_dropped",
        "Notifications dropped, oldest first, because a receiver's queue was full.",
        labels=labels,
    )
    held = CounterMetricFamily(
        "fleet_notifications_held",
        "Notifications held back, not sent, since start: an alert's raise while a "
        "silence or maintenance window holds it (once per hold), and the resolve of a "
        "raise the receiver never got.",
        labels=labels,
    )
    queued = GaugeMetricFamily(
        "fleet_notifications_queued",
        "Notifications waiting to be sent to a receiver now.",
        labels=labels,
    )
    last_success = GaugeMetricFamily(
        "fleet_notifications_last_success_timestamp_seconds",
        "When a receiver last accepted a notification (Unix time); absent before the first.",
        labels=labels,
    )
    for s in stats:
        key = [s.name, s.kind]
        delivered.add_metric(key, float(s.delivered))
        failed.add_metric(key, float(s.failed))
        dropped.add_metric(key, float(s.dropped))
        held.add_metric(key, float(s.held))
        queued.add_metric(key, float(s.queued))
        if s.last_success_at is not None:
            last_success.add_metric(key, s.last_success_at)
    yield from (delivered, failed, dropped, held, queued, last_success)


def make_registry(cp: ControlPlane, process: bool = True) -> CollectorRegistry:
    """A registry of this control plane's metrics (with ``process``, the process's
    own too: CPU, memory, open files, as every Prometheus client exports them)."""
    # No ``*_created`` series (a gauge beside every histogram, in the text format):
    # Prometheus 2 does not read them and they double the series. Process-wide.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(cp))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry`` (``CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)
