"""A fixed, reproducible fleet for snapshot tests, screenshots and the benchmark.

It mirrors the demo's variety: mostly healthy, one stale, one with a skewed
clock, one with a certificate about to expire, one off its pin, one with a deep
queue, and a connection with no healthy agent.
"""

from __future__ import annotations

import random

from fleet.protocol import (
    PROTOCOL_VERSION,
    AgentHistory,
    AgentState,
    AlertInfo,
    ConnectionInfo,
    ConnectionSchedule,
    Presence,
    Snapshot,
    convert,
)

from .holds import Hold

__all__ = ["NOW", "sample_holds", "sample_snapshot"]

NOW = 1_790_000_000.0
"""The fixed server time of the sample (2026-09-21)."""

_POOLS = ("build-eu", "build-us", "deploy", "etl", "edge")


def sample_snapshot(
    n: int = 50, *, seed: int = 7, now: float = NOW, role: str = "admin", seq: int = 100
) -> Snapshot:
    """A snapshot of ``n`` agents (at least 8 for all the special cases)."""
    rnd = random.Random(seed)
    agents: list[AgentState] = []
    history: dict[str, AgentHistory] = {}
    for i in range(n):
        pool = _POOLS[i % len(_POOLS)]
        agent_id = f"ag-{i:05d}"
        cpu = round(rnd.uniform(2, 60), 1)
        mem = round(rnd.uniform(20, 70), 1)
        fields: dict[str, object] = {
            "id": agent_id,
            "name": f"{pool}-{i:04d}",
            "pool": pool,
            "labels": {"region": "eu" if i % 2 else "us", "tier": "prod" if i % 3 else "test"},
            "state": Presence.CONNECTED,
            "version": "1.4.2",
            "pinned_version": "1.4.2",
            "enrolled_at": now - 30 * 86400,
            "connected_at": now - rnd.uniform(600, 86400),
            "last_heartbeat_at": now - rnd.uniform(0, 4),
            "uptime_s": rnd.uniform(3600, 30 * 86400),
            "cpu_percent": cpu,
            "mem_rss_bytes": rnd.randint(20, 40) * 1024 * 1024,
            "mem_host_percent": mem,
            "queue_depth": rnd.randint(0, 3),
            "cert_not_after": now + rnd.uniform(10, 20) * 3600,
            "config_hash": "c0ffee12",
            "pinned_config_hash": "c0ffee12",
            "skew_ms": round(rnd.uniform(-8, 8), 1),
            "rtt_ms": round(rnd.uniform(1, 30), 1),
            "remote_addr": f"10.{i // 250}.{i % 250}.7",
        }
        special = i % max(n, 1) if n >= 8 else -1
        if special == 1:
            fields |= {
                "state": Presence.STALE,
                "last_heartbeat_at": now - 19,
                "reasons": ["no heartbeat for 19 s (3 intervals)"],
            }
        elif special == 2:
            fields |= {
                "state": Presence.DEGRADED,
                "skew_ms": 2350.0,
                "reasons": ["clock skew +2.4 s"],
            }
        elif special == 3:
            fields |= {
                "state": Presence.DEGRADED,
                "cert_not_after": now + 2 * 3600 + 600,
                "reasons": ["certificate expires in 2h: renewal overdue"],
            }
        elif special == 4:
            fields |= {
                "state": Presence.DEGRADED,
                "version": "1.3.9",
                "reasons": ["version 1.3.9 differs from pin 1.4.2"],
            }
        elif special == 5:
            fields |= {
                "state": Presence.DEGRADED,
                "queue_depth": 4812,
                "reasons": ["queue depth 4812 above 1000"],
            }
        elif special == 6:
            fields |= {
                "state": Presence.OFFLINE,
                "last_heartbeat_at": now - 420,
                "cpu_percent": None,
                "mem_host_percent": None,
                "reasons": ["channel closed 7m ago"],
            }
        elif special == 7:
            fields |= {
                "state": Presence.PENDING,
                "last_heartbeat_at": None,
                "connected_at": None,
                "cpu_percent": None,
                "mem_host_percent": None,
                "queue_depth": None,
                "skew_ms": None,
                "rtt_ms": None,
                "version": None,
            }
        agent = convert(fields, AgentState)
        agents.append(agent)
        # As the control plane keeps them: 60 samples, one decimal.
        history[agent_id] = AgentHistory(
            cpu=[round(max(0.0, cpu + rnd.uniform(-15, 15)), 1) for _ in range(60)],
            mem=[round(max(0.0, mem + rnd.uniform(-5, 5)), 1) for _ in range(60)],
            queue=[rnd.randint(0, 5) for _ in range(60)],
        )
    alerts = []
    if n >= 8:
        alerts = [
            AlertInfo(
                id="al-1",
                kind="stale",
                severity="critical",
                target="ag-00001",
                message="no heartbeat for 19 s",
                raised_at=now - 14,
            ),
            AlertInfo(
                id="al-2",
                kind="skew",
                severity="warning",
                target="ag-00002",
                message="clock skew +2.4 s",
                raised_at=now - 300,
            ),
            AlertInfo(
                id="al-3",
                kind="cert",
                severity="warning",
                target="ag-00003",
                message="certificate expires in 2h: renewal overdue",
                raised_at=now - 3600,
            ),
            AlertInfo(
                id="al-4",
                kind="unroutable",
                severity="critical",
                target="connection:warehouse",
                message="no healthy agent in pool etl-dr",
                raised_at=now - 60,
            ),
        ]
    connections = [
        ConnectionInfo(
            name="orders-db",
            host="orders.db.internal",
            port=5432,
            pools=["build-eu", "deploy"],
            routable=True,
            via_pool="build-eu",
            via_agent="build-eu-0000",
            schedules=[ConnectionSchedule(cron="0 2 * * *", timezone="Europe/Berlin")],
            next_run_at=now + 6 * 3600,
            next_run="02:00 Europe/Berlin",
        ),
        ConnectionInfo(
            name="warehouse",
            host="wh.internal",
            port=5439,
            pools=["etl-dr"],
            routable=False,
            schedules=[ConnectionSchedule(cron="0 14 * * *", timezone="UTC", name="daily-load")],
            next_run_at=now + 600,
            next_run="14:00 UTC (daily-load)",
            at_risk=True,
        ),
    ]
    return Snapshot(
        protocol_version=PROTOCOL_VERSION,
        seq=seq,
        server_time=now,
        agents=agents,
        history=history,
        alerts=alerts,
        connections=connections,
        role=role,
    )


def sample_holds(now: float = NOW) -> list[Hold]:
    """Silences and maintenance windows to go with :func:`sample_snapshot`: one
    silence and one window active, one window planned."""
    return [
        Hold("silence", "sil_5f2a91c04e7d", "pool=etl kind=stale", now - 1200, now + 4800,
             "alice", "etl hosts migrate to the new rack"),
        Hold("maintenance", "mnt_0b8e33d1a6f2", "agent edge-0004", now - 600, now + 3000,
             "bob", "kernel update"),
        Hold("maintenance", "mnt_9c41e07b2d55", "pool deploy", now + 1500, now + 5100,
             "alice", "switch swap in rack 4"),
    ]  # fmt: skip
