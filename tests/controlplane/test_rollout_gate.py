"""The rollout health gate on made-up samples: each signal on its own, against the
rest of the pool, within the margin (tests/controlplane/test_rollouts.py runs it
against real channels)."""

from __future__ import annotations

from controlplane.config import Settings
from controlplane.live import LiveAgent
from controlplane.rollout_gate import MIN_SAMPLES, sample, verdict
from controlplane.rollout_plan import Gauge
from controlplane.store.base import AgentRecord
from fleet.protocol import Presence

NOW = 2_000_000_000.0
SETTINGS = Settings()
CERT_END = NOW + 90 * 86400


def agent(name: str, state: Presence = Presence.CONNECTED, heartbeat_age: float = 1.0) -> LiveAgent:
    record = AgentRecord(f"ag_{name}", name, "p", {}, NOW - 3600, "01", CERT_END)
    live = LiveAgent(record, history_len=10, heartbeat_interval_s=5.0)
    live.state = state
    live.last_heartbeat_at = NOW - heartbeat_age
    live.uptime_s = 100.0
    live.cert_not_after = CERT_END
    return live


def sampled(gauge: Gauge, live: LiveAgent, times: int) -> Gauge:
    for _ in range(times):
        sample(gauge, live, SETTINGS, NOW)
    return gauge


def test_late_heartbeats_of_the_upgraded_agents_fail_the_gate() -> None:
    gauges = {
        "new": sampled(Gauge(), agent("new", heartbeat_age=9.0), MIN_SAMPLES),
        "old": sampled(Gauge(), agent("old", heartbeat_age=1.0), MIN_SAMPLES),
    }
    assert gauges["new"].late == MIN_SAMPLES and gauges["new"].away == 0
    why = verdict(gauges, ["new"], margin=0.1)
    assert why == (
        "the upgraded agents were late with their heartbeats (over 1.5 intervals) 100% of "
        "the time against 0% for the rest of the pool (margin 10%)"
    )


def test_late_heartbeats_across_the_whole_pool_are_a_bad_night_not_a_bad_release() -> None:
    gauges = {
        "new": sampled(Gauge(), agent("new", heartbeat_age=9.0), MIN_SAMPLES),
        "old": sampled(Gauge(), agent("old", heartbeat_age=9.0), MIN_SAMPLES),
    }
    assert verdict(gauges, ["new"], margin=0.1) is None


def test_a_stale_agent_counts_as_away_not_late() -> None:
    gauge = sampled(Gauge(), agent("gone", Presence.STALE, heartbeat_age=30.0), 3)
    assert (gauge.away, gauge.late) == (3, 0)


def test_no_verdict_on_rates_before_every_upgraded_agent_has_its_samples() -> None:
    gauges = {
        "new": sampled(Gauge(), agent("new", Presence.STALE), MIN_SAMPLES - 1),
        "old": sampled(Gauge(), agent("old"), MIN_SAMPLES - 1),
    }
    assert verdict(gauges, ["new"], margin=0.1) is None
    assert "stale or offline 100% of the time" in str(
        verdict(gauges, ["new"], margin=0.1, final=True)
    )


def test_a_restart_fails_the_gate_at_once() -> None:
    live = agent("new")
    gauge = sampled(Gauge(), live, 1)
    live.uptime_s = 2.0
    sample(gauge, live, SETTINGS, NOW)
    gauges = {"new": gauge, "old": sampled(Gauge(), agent("old"), 2)}
    assert gauge.restarts == 1
    assert verdict(gauges, ["new"], margin=0.1) == (
        "100% of the upgraded agents restarted against 0% of the rest of the pool (margin 10%)"
    )
