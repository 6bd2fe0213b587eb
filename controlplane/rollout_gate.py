"""The health gate: do the upgraded agents do worse than the rest of their pool?

Every tick of an active rollout samples each agent of the pool: away (stale or
offline), degraded for a reason other than version drift (the upgraded agents
run another version than the pool's pin until the rollout is done: that is not
a fault) that it did not have before (a certificate near its end before the
upgrade is not the release's doing), and whether its uptime went down since the
last sample (a restart), and whether its last heartbeat is late (older than
``LATE_INTERVALS`` heartbeat intervals while it still counts as connected: a
release that stalls its own loop, or sends heartbeats the channel refuses,
shows here before it goes stale).
An upgraded agent's counts start when it counts as upgraded, so the restart
into the new version is not held against it; the rest of the pool is counted
from the start of the rollout.

The verdict compares rates, each signal on its own: the share of samples away,
the share degraded, the share with a late heartbeat, the share of agents that
restarted.  The upgraded agents
fail the gate when their rate exceeds the rest's by more than the margin
(``rollout_gate_margin``, 10 points by default).  Comparing with the rest of
the same pool, over the same time, is what tells a bad release from a bad
night: a network blip or a dependency down makes both groups worse alike.  A
rate is judged once every upgraded agent has ``MIN_SAMPLES`` samples (one
late heartbeat in the first second is not a verdict), a restart at once.
docs/decisions.md says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fleet.protocol import Presence

from .alerts import agent_findings
from .config import Settings
from .live import LiveAgent
from .rollout_plan import Gauge

__all__ = ["LATE_INTERVALS", "MIN_SAMPLES", "Rates", "problems", "rates", "sample", "verdict"]

MIN_SAMPLES = 5
"""Samples each upgraded agent needs before its share of bad samples is judged."""

LATE_INTERVALS = 1.5
"""A heartbeat older than this many intervals is late (stale comes at 3)."""

RESTART_SLACK_S = 1.0
"""An uptime this much lower than the last one seen is a restart (not jitter)."""


def problems(agent: LiveAgent, settings: Settings, now: float) -> list[str]:
    """Kinds of what degrades ``agent`` now, version drift aside."""
    if agent.state != Presence.DEGRADED:
        return []
    return sorted({f.kind for f in agent_findings(agent, settings, now)} - {"version_drift"})


def sample(gauge: Gauge, agent: LiveAgent, settings: Settings, now: float) -> None:
    """Count one sample of ``agent`` into ``gauge``.

    Degraded counts only for a problem it did not have before (``gauge.baseline``):
    a certificate that was already near its end is not the release's doing.
    """
    gauge.samples += 1
    if agent.state in (Presence.STALE, Presence.OFFLINE):
        gauge.away += 1
    else:
        if set(problems(agent, settings, now)) - set(gauge.baseline):
            gauge.degraded += 1
        last = agent.last_heartbeat_at
        if last is not None and now - last > LATE_INTERVALS * agent.heartbeat_interval_s:
            gauge.late += 1
    if agent.uptime_s is not None:
        if gauge.uptime is not None and agent.uptime_s + RESTART_SLACK_S < gauge.uptime:
            gauge.restarts += 1
        gauge.uptime = agent.uptime_s


@dataclass(frozen=True)
class Rates:
    """A group's rates: shares of samples away, degraded and with a late heartbeat,
    share of agents restarted."""

    agents: int
    away: float
    degraded: float
    late: float
    restarted: float
    fewest_samples: int


def rates(gauges: Iterable[Gauge]) -> Rates:
    found = [g for g in gauges if g.samples > 0]
    if not found:
        return Rates(0, 0.0, 0.0, 0.0, 0.0, 0)
    count = len(found)
    return Rates(
        agents=count,
        away=sum(g.away / g.samples for g in found) / count,
        degraded=sum(g.degraded / g.samples for g in found) / count,
        late=sum(g.late / g.samples for g in found) / count,
        restarted=sum(g.restarts > 0 for g in found) / count,
        fewest_samples=min(g.samples for g in found),
    )


_WORDS = {
    "away": "stale or offline",
    "degraded": "degraded (other than version drift)",
    "late": f"late with their heartbeats (over {LATE_INTERVALS:g} intervals)",
}


def verdict(
    gauges: Mapping[str, Gauge], upgraded: Iterable[str], margin: float, final: bool = False
) -> str | None:
    """Why the upgraded agents fail the gate, in words; None while they pass.

    Args:
        gauges: every agent's counts, by id.
        upgraded: the ids of the upgraded agents (the others are the rest).
        margin: how much higher a rate of theirs may be.
        final: the soak or pause has ended: judge whatever was sampled.
    """
    chosen = set(upgraded)
    ours = rates(g for k, g in gauges.items() if k in chosen)
    rest = rates(g for k, g in gauges.items() if k not in chosen)
    if ours.agents == 0:
        return None
    if ours.restarted - rest.restarted > margin:
        return (
            f"{ours.restarted:.0%} of the upgraded agents restarted against "
            f"{rest.restarted:.0%} of the rest of the pool (margin {margin:.0%})"
        )
    if not final and ours.fewest_samples < MIN_SAMPLES:
        return None
    for signal, words in _WORDS.items():
        mine, theirs = getattr(ours, signal), getattr(rest, signal)
        if mine - theirs > margin:
            return (
                f"the upgraded agents were {words} {mine:.0%} of the time against "
                f"{theirs:.0%} for the rest of the pool (margin {margin:.0%})"
            )
    return None
