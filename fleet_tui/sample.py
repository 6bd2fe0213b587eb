"""A fixed, reproducible fleet for snapshot tests, screenshots and the benchmark.

It mirrors the demo's variety: mostly healthy, one stale, one with a skewed
clock, one with a certificate about to expire, one off its pin, one with a deep
queue, and a connection with no healthy agent.  With ``upgrades=True`` it also has
rollouts (one in its first wave, one halted after its canary rolled back, one
waiting for its pool's maintenance window, one done) and remediations (two waiting
for approval, three decided or run).
"""

from __future__ import annotations

import random
from typing import Any, Literal

from fleet.protocol import (
    PROTOCOL_VERSION,
    AgentHistory,
    AgentState,
    AlertInfo,
    ConnectionInfo,
    ConnectionSchedule,
    Presence,
    RemediationInfo,
    RemediationState,
    RolloutAgent,
    RolloutInfo,
    RolloutState,
    RolloutWave,
    Snapshot,
    UpgradeInfo,
    UpgradeStep,
    convert,
    replace,
)

from .holds import Hold

__all__ = [
    "NOW",
    "sample_holds",
    "sample_remediations",
    "sample_rollouts",
    "sample_snapshot",
]

NOW = 1_790_000_000.0
"""The fixed server time of the sample (2026-09-21)."""

RemediationAction = Literal["restart", "renew", "rollback", "move_connections"]
WaveState = Literal["pending", "upgrading", "soaking", "done", "failed"]

_POOLS = ("build-eu", "build-us", "deploy", "etl", "edge")


def sample_snapshot(
    n: int = 50,
    *,
    seed: int = 7,
    now: float = NOW,
    role: str = "admin",
    seq: int = 100,
    upgrades: bool = False,
) -> Snapshot:
    """A snapshot of ``n`` agents (at least 8 for all the special cases; 50 for
    every agent the rollouts name).

    Args:
        upgrades: Add :func:`sample_rollouts` and :func:`sample_remediations`, and
            the upgrade steps of the agents they name.
    """
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
    rollouts: list[RolloutInfo] = []
    remediations: list[RemediationInfo] = []
    if upgrades:
        steps = _upgrade_steps(now)
        agents = [replace(a, **steps[a.id]) if a.id in steps else a for a in agents]
        rollouts = sample_rollouts(now)
        remediations = sample_remediations(now)
    return Snapshot(
        protocol_version=PROTOCOL_VERSION,
        seq=seq,
        server_time=now,
        agents=agents,
        history=history,
        alerts=alerts,
        connections=connections,
        role=role,
        rollouts=rollouts,
        remediations=remediations,
    )


def _upgrade_steps(now: float) -> dict[str, dict[str, object]]:
    """What the agents that :func:`sample_rollouts` names report of their upgrades."""

    def step(name: UpgradeStep, ago: float, detail: str = "") -> UpgradeInfo:
        return UpgradeInfo(
            version="1.5.0", step=name, detail=detail, from_version="1.4.2", at=now - ago
        )

    return {
        "ag-00003": {"version": "1.5.0", "upgrade": step("running", 1500)},
        "ag-00008": {"version": "1.5.0", "upgrade": step("running", 240)},
        "ag-00013": {"upgrade": step("installing", 12)},
        "ag-00018": {"upgrade": step("downloading", 30, "4.1 of 9.8 MiB")},
        "ag-00000": {"upgrade": step("rolled_back", 1380, "exited at start twice (exit code 1)")},
    }


def _agents(pool: str, first: int) -> list[RolloutAgent]:
    """Ten agents of ``pool`` (every fifth from ``first``): a canary, three waves of 3."""
    return [
        RolloutAgent(
            agent_id=f"ag-{i:05d}", name=f"{pool}-{i:04d}", wave=(k + 2) // 3, step="pending"
        )
        for k, i in enumerate(range(first, 50, 5))
    ]


def _rollout(
    id: str,
    pool: str,
    version: str,
    state: RolloutState,
    detail: str,
    agents: list[RolloutAgent],
    created_by: str,
    created_at: float,
    finished_at: float | None = None,
) -> RolloutInfo:
    """A rollout with one canary, a soak of 10 m and waves of 3 five minutes apart;
    its waves' counts are those of its agents."""
    waves = []
    for index in sorted({a.wave for a in agents}):
        members = [a for a in agents if a.wave == index]
        upgraded = sum(a.step == "upgraded" for a in members)
        failed = sum(a.step in ("failed", "rolled_back", "refused") for a in members)
        wave_state: WaveState = "pending"
        if failed:
            wave_state = "failed"
        elif upgraded == len(members):
            wave_state = "done"
        elif any(a.step != "pending" for a in members):
            wave_state = "upgrading"
        waves.append(
            RolloutWave(
                index=index, size=len(members), upgraded=upgraded, failed=failed, state=wave_state
            )
        )
    return RolloutInfo(
        id=id, pool=pool, version=version, state=state, detail=detail, canaries=1,
        soak_s=600.0, wave_size=3, pause_s=300.0, waves=waves, agents=agents,
        created_by=created_by, created_at=created_at,
        updated_at=finished_at or created_at, finished_at=finished_at,
    )  # fmt: skip


def sample_rollouts(now: float = NOW) -> list[RolloutInfo]:
    """Rollouts to go with :func:`sample_snapshot` of 50 agents: 1.5.0 to pool etl in
    its first wave, to build-eu halted (its canary rolled back), to deploy waiting for
    its maintenance window; and 1.4.2 to pool edge, done three days ago."""
    etl = _agents("etl", 3)
    etl[:4] = [
        replace(etl[0], step="upgraded", from_version="1.4.2", detail="runs 1.5.0"),
        replace(etl[1], step="upgraded", from_version="1.4.2", detail="runs 1.5.0"),
        replace(etl[2], step="upgrading", from_version="1.4.2", detail="installing"),
        replace(etl[3], step="upgrading", from_version="1.4.2", detail="downloading"),
    ]
    build = _agents("build-eu", 0)
    build[0] = replace(
        build[0], step="rolled_back", from_version="1.4.2", detail="rolled back to 1.4.2"
    )
    edge = [
        replace(a, step="upgraded", from_version="1.4.1", detail="runs 1.4.2")
        for a in _agents("edge", 4)
    ]
    done_at = now - 3 * 86400 + 5400
    return [
        _rollout("ro_3f9a1c07e2", "etl", "1.5.0", "wave", "wave 1 of 3", etl, "alice",
                 now - 1800),
        _rollout("ro_81d2e4b6a0", "build-eu", "1.5.0", "halted",
                 "build-eu-0000 (canary) rolled back: exited at start twice (exit code 1)",
                 build, "alice", now - 1500, finished_at=now - 1380),
        _rollout("ro_c5077f19d3", "deploy", "1.5.0", "waiting",
                 "pool deploy is outside its maintenance windows until Tue 02:00 "
                 "Europe/Berlin (nightly)", _agents("deploy", 2), "bob", now - 600),
        _rollout("ro_0a6e29c4f8", "edge", "1.4.2", "done",
                 "10 of 10 agents upgraded; pool edge pinned to 1.4.2", edge, "alice",
                 now - 3 * 86400, finished_at=done_at),
    ]  # fmt: skip


def _remediation(
    id: str,
    agent: int,
    condition: str,
    action: RemediationAction,
    state: RemediationState,
    created_at: float,
    **more: Any,
) -> RemediationInfo:
    pool = _POOLS[agent % len(_POOLS)]
    return RemediationInfo(
        id=id, pool=pool, agent_id=f"ag-{agent:05d}", agent_name=f"{pool}-{agent:04d}",
        condition=condition, action=action, state=state, created_at=created_at,
        automatic=more.pop("automatic", False), **more,
    )  # fmt: skip


def sample_remediations(now: float = NOW) -> list[RemediationInfo]:
    """Remediations to go with :func:`sample_snapshot`: a restart of the stale agent
    and a move of the deep queue's connections wait for approval; a renewal failed,
    a restart was rejected and one ran by itself."""
    stale = "stale or offline for 3 checks"
    return [
        _remediation("rem_4c1f8a2e90", 1, stale, "restart", "pending_approval", now - 240,
                     why_approval="budget spent: 1 restart per agent per hour",
                     expires_at=now - 240 + 86400),
        _remediation("rem_9b03d7e1c4", 5, "queue depth over 1000 for 5 checks",
                     "move_connections", "pending_approval", now - 60,
                     why_approval="the policy asks for approval", expires_at=now + 3540),
        _remediation("rem_2e7a60f5b1", 3,
                     "certificate past two thirds of its life (renewal failing) for 3 checks",
                     "renew", "failed", now - 900, automatic=True, finished_at=now - 870,
                     detail="renew: the agent did not answer within 30 s"),
        _remediation("rem_71ab3e08d6", 1, stale, "restart", "rejected", now - 3000,
                     why_approval="the policy asks for approval", decided_by="bob",
                     decided_at=now - 2700, finished_at=now - 2700,
                     detail="network blip in rack 4, leave it"),
        _remediation("rem_d40c9f2a17", 1, stale, "restart", "done", now - 3300,
                     automatic=True, finished_at=now - 3290, detail="restarted; back after 4 s"),
    ]  # fmt: skip


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
