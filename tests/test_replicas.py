"""Control-plane replicas on a real PostgreSQL behind a real HAProxy (issue 11).

Three real ``fleet server`` processes on one database (the second and third on copies
of the first's data directory), HAProxy in TCP passthrough in front, real agent
processes dialling HAProxy. What one replica hears, the others show; a command or a
revoke sent to a replica that does not hold the agent reaches it through the one
that does; a SIGKILLed replica's agents move to the others without going stale or
offline, and the fleet-wide timers move with the lead.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleet.simagent import SimAgent
from fleet.simagent import enroll as sim_enroll
from fleet.simrelease import sim_wheel
from fleet_tui.app import FleetApp
from tests.agent.agents import AgentProcess, enroll
from tests.fleet.run import clean_env, fleet
from tests.helpers.postgres import query, throwaway_database
from tests.helpers.replicas import ReplicaSet
from tests.helpers.rollouts import ROLLOUT_SETTINGS
from tests.helpers.server import REPO, RunningServer, wait_for

from .fleet_tui.test_live import until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[ReplicaSet]:
    with throwaway_database() as url:
        rs = ReplicaSet(
            tmp_path, url, count=3, settings={"replica_dead_s": "2", "heartbeat_interval_s": "1"}
        ).start()
        try:
            yield rs
        finally:
            rs.stop()


def _agent_via(rs: ReplicaSet, tmp_path: Path, name: str) -> AgentProcess:
    first = rs.replicas[0]
    state = tmp_path / name
    out = enroll(first, state, name=name, url=rs.url)
    assert out.returncode == 0, out.stderr
    assert rs.lb is not None
    assert json.loads((state / "agent.json").read_text())["channel_port"] == rs.lb.agent_port
    return AgentProcess(state).start()


def _agents(replica: RunningServer) -> dict[str, dict]:
    with replica.api() as api:
        return {a["name"]: a for a in api.get("/v1/agents").json()}


def _state_on(replica: RunningServer, name: str) -> str | None:
    agent = _agents(replica).get(name)
    return agent["state"] if agent else None


def test_three_replicas_share_the_fleet_commands_and_revokes_reach_the_holder(
    replicas: ReplicaSet, tmp_path: Path
) -> None:
    rs = replicas
    assert rs.leader() is not None, "one replica leads"
    agent = _agent_via(rs, tmp_path, "shared")
    try:
        holder = wait_for(rs.holder_of, 20, 0.2, "a replica holds the agent")
        others = [r for r in rs.replicas if r is not holder]
        # Every replica shows it connected and heard: the holder's heartbeats cross.
        for replica in rs.replicas:
            wait_for(
                lambda r=replica: _state_on(r, "shared") == "connected",
                10,
                0.2,
                f"the agent connected on {replica.data_dir.name}",
            )
        seen = _agents(others[0])["shared"]["last_heartbeat_at"]
        wait_for(
            lambda: _agents(others[0])["shared"]["last_heartbeat_at"] != seen,
            5,
            0.1,
            "a later heartbeat on a replica that does not hold it",
        )

        # A probe sent to a replica that does not hold the agent: through the holder.
        agent_id = _agents(others[0])["shared"]["id"]
        with others[0].api() as api:
            api.put(
                "/v1/pools/default/policy",
                json={"allow_cidrs": ["127.0.0.0/8"], "allow_ports": ["1-65535"]},
            ).raise_for_status()
        with others[1].api() as api:
            # The policy set on one replica holds on the others.
            wait_for(
                lambda: api.get("/v1/pools/default/policy").status_code == 200,
                5,
                0.1,
                "the policy on another replica",
            )
            probe = api.post(
                f"/v1/agents/{agent_id}/probe", json={"host": "127.0.0.1", "port": holder.port}
            )
            # The agent's own allow list (empty) answers: it came from the agent and back.
            assert probe.status_code == 200, probe.text
            assert probe.json()["failure"] == "denied", probe.text
            assert "not in the agent's allow_ports" in probe.json()["error"]

        # The CLI, through HAProxy (whichever replica answers), lists it connected.
        (tmp_path / "home").mkdir()
        token_file = tmp_path / "admin.token"
        token_file.write_text(rs.replicas[0].admin_token + "\n")
        token_file.chmod(0o600)
        env = clean_env(
            tmp_path / "home",
            FLEET_SERVER=rs.url,
            FLEET_CA_FILE=str(rs.replicas[0].ca_file),
            FLEET_TOKEN_FILE=str(token_file),
        )
        for _ in range(3):  # round robin: each replica answers once
            listed = fleet("agents", "list", "-o", "json", env=env)
            assert listed.returncode == 0, listed.stderr
            assert [(a["name"], a["state"]) for a in json.loads(listed.stdout)] == [
                ("shared", "connected")
            ]

        # A revoke sent to a third replica closes the agent's channel at once.
        started = time.monotonic()
        with others[1].api() as api:
            api.post(f"/v1/agents/{agent_id}/revoke").raise_for_status()
        assert agent.wait(10) != 0 or "revoked" in agent.output()
        took = time.monotonic() - started
        assert took < 3.0, f"the channel closed {took:.1f} s after the revoke"
        assert "revoked" in agent.output()
        for replica in rs.replicas:
            wait_for(
                lambda r=replica: _state_on(r, "shared") == "revoked",
                5,
                0.1,
                f"revoked on {replica.data_dir.name}",
            )
    finally:
        agent.stop()


SIMULATED = 150
"""Simulated agents (bench/_load.py: the real protocol, each with its own certificate)
heartbeating through HAProxy beside the real agent processes: the load."""


def _load(rs: ReplicaSet, tmp_path: Path, count: int) -> subprocess.Popen[bytes]:
    first = rs.replicas[0]
    token_file = tmp_path / "load.token"
    token_file.write_text(first.admin_token + "\n")
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "_load.py"),
            rs.url,
            str(first.ca_file),
            str(token_file),
            str(count),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _writes(replica: RunningServer, acknowledged: list[str], stop: threading.Event) -> None:
    """Create users on ``replica`` one after another until it stops answering."""
    with replica.api() as api:
        for i in range(10_000):
            if stop.is_set():
                return
            try:
                answer = api.post("/v1/users", json={"name": f"w{i}", "role": "viewer"})
            except httpx.HTTPError:
                return
            if answer.status_code == 201:
                acknowledged.append(f"w{i}")


def test_a_sigkilled_replica_under_load_its_agents_move_without_going_stale_nothing_lost(
    replicas: ReplicaSet, tmp_path: Path
) -> None:
    rs = replicas
    agents = [_agent_via(rs, tmp_path, f"a{i}") for i in range(6)]
    load = _load(rs, tmp_path, SIMULATED)
    try:
        names = {f"a{i}" for i in range(6)}
        watcher = rs.replicas[-1]
        wait_for(
            lambda: all(_state_on(watcher, n) == "connected" for n in names),
            30,
            0.2,
            "six agents connected",
        )
        total = 6 + SIMULATED
        wait_for(
            lambda: sum(rs.health(r)["connected"] for r in rs.replicas) == total,
            60,
            0.5,
            "every agent connected",
        )
        # The victim leads and holds agents (the leader, else the first that holds any).
        leader = rs.leader()
        assert leader is not None
        victim = leader if rs.health(leader)["connected"] else rs.holder_of()
        assert victim is not None and rs.health(victim)["connected"] >= 1
        survivors = [r for r in rs.replicas if r is not victim]
        watcher = survivors[-1]
        # Writes in flight on the victim when it dies.
        acknowledged: list[str] = []
        stop = threading.Event()
        writer = threading.Thread(target=_writes, args=(victim, acknowledged, stop))
        writer.start()
        wait_for(lambda: len(acknowledged) >= 5, 10, 0.05, "writes acknowledged")
        victim.kill()
        stop.set()
        writer.join(30)

        # Presence never leaves connected on the survivors while the agents move.
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            states = {n: _state_on(watcher, n) for n in names}
            assert set(states.values()) == {"connected"}, states
            time.sleep(0.1)
        wait_for(
            lambda: sum(rs.health(r)["connected"] for r in survivors) == total,
            30,
            0.5,
            "every agent back on the survivors",
        )
        with watcher.api() as api:
            alerts = api.get("/v1/alerts").json()
            assert [a for a in alerts if a["kind"] in ("stale", "offline")] == []
            users = {u["name"] for u in api.get("/v1/users").json()}
        # Nothing acknowledged is lost; a new leader runs the timers.
        assert set(acknowledged) <= users, set(acknowledged) - users
        assert wait_for(rs.leader, 10, 0.2, "a new leader") is not None
    finally:
        load.terminate()
        load.wait(10)
        for agent in agents:
            agent.stop()


def test_a_replica_stopped_for_patching_hands_its_agents_over_and_nobody_is_paged(
    replicas: ReplicaSet, tmp_path: Path
) -> None:
    rs = replicas
    agents = [_agent_via(rs, tmp_path, f"p{i}") for i in range(4)]
    try:
        names = {f"p{i}" for i in range(4)}
        watcher = rs.replicas[0]
        wait_for(
            lambda: all(_state_on(watcher, n) == "connected" for n in names),
            30,
            0.2,
            "four agents connected",
        )
        victim = (
            next(r for r in rs.replicas[1:] if rs.health(r)["connected"])
            if any(rs.health(r)["connected"] for r in rs.replicas[1:])
            else rs.replicas[0]
        )
        survivors = [r for r in rs.replicas if r is not victim]
        watcher = survivors[0]
        victim.stop()  # SIGTERM: a stop for patching
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            states = {n: _state_on(watcher, n) for n in names}
            assert set(states.values()) == {"connected"}, states
            time.sleep(0.1)
        assert sum(rs.health(r)["connected"] for r in survivors) == 4
        with watcher.api() as api:
            assert [a for a in api.get("/v1/alerts").json() if a["kind"] == "offline"] == []
    finally:
        for agent in agents:
            agent.stop()


def test_all_replicas_restarted_the_fleet_comes_back(replicas: ReplicaSet, tmp_path: Path) -> None:
    rs = replicas
    agent = _agent_via(rs, tmp_path, "again")
    try:
        wait_for(lambda: rs.holder_of() is not None, 20, 0.2, "held")
        rs.restart_all()
        for replica in rs.replicas:
            wait_for(
                lambda r=replica: _state_on(r, "again") == "connected",
                30,
                0.2,
                f"back on {replica.data_dir.name}",
            )
        assert rs.leader() is not None
    finally:
        agent.stop()


def test_fleet_wide_alerts_are_raised_once_and_the_lead_moves_with_them(
    replicas: ReplicaSet,
) -> None:
    """A pool below its minimum: one alert, raised by the leader, shown by all; when the
    leader dies the next one keeps that alert (no second row) and clears it once."""
    rs = replicas
    with rs.api() as api:
        api.put("/v1/pools/empty/policy", json={"allow_ports": [443], "min_healthy": 1})

    def pool_alerts(replica: RunningServer) -> list[dict]:
        with replica.api() as api:
            return [a for a in api.get("/v1/alerts").json() if a["target"] == "pool:empty"]

    for replica in rs.replicas:
        wait_for(lambda r=replica: pool_alerts(r), 10, 0.2, f"the alert on {replica.data_dir.name}")
    rows = asyncio.run(query(rs.store_url, "SELECT id FROM alerts WHERE target = 'pool:empty'"))
    assert len(rows) == 1, rows
    leader = rs.leader()
    assert leader is not None
    leader.kill()
    survivors = [r for r in rs.replicas if r is not leader]
    wait_for(rs.leader, 15, 0.2, "a new leader")
    time.sleep(2.0)  # the new leader's checks have run
    rows = asyncio.run(query(rs.store_url, "SELECT id FROM alerts WHERE target = 'pool:empty'"))
    assert len(rows) == 1, f"the new leader raised it again: {rows}"
    with survivors[0].api() as api:
        api.put("/v1/pools/empty/policy", json={"allow_ports": [443], "min_healthy": 0})
    for replica in survivors:
        wait_for(lambda r=replica: not pool_alerts(r), 10, 0.2, "cleared everywhere")


async def test_a_rollout_started_on_a_follower_upgrades_agents_held_by_every_replica(
    tmp_path: Path,
) -> None:
    """The leader runs the rollout; its upgrades go through the replicas holding the
    agents, and their steps come back through the outbox."""
    with throwaway_database() as url:
        rs = ReplicaSet(tmp_path, url, count=3, settings=dict(ROLLOUT_SETTINGS)).start()
        tasks: list[asyncio.Task[None]] = []
        try:
            first = rs.replicas[0]
            wheel = sim_wheel(tmp_path / "wheels", "2.0.0")
            with first.api() as api:
                api.put("/v1/releases/2.0.0", content=wheel.read_bytes()).raise_for_status()
                token = api.post("/v1/tokens", json={"pool": "web", "uses": 9}).json()["token"]
            # Uploaded to one replica, downloaded from another (as an agent's download
            # through the balancer may be): the wheel comes from the database.
            with rs.replicas[2].api() as api:
                got = wait_for(
                    lambda: (
                        api.get("/v1/releases/2.0.0/download").content
                        if api.get("/v1/releases/2.0.0").status_code == 200
                        else None
                    ),
                    10,
                    0.2,
                    "the release on another replica",
                )
                assert got == wheel.read_bytes()
            agents = []
            async with httpx.AsyncClient(base_url=rs.url, verify=first.ssl_context()) as client:
                for i in range(1, 10):
                    identity = await sim_enroll(client, token, f"web-{i:02d}", "1.0.0")
                    agents.append(
                        SimAgent(
                            identity=identity,
                            ws_url=rs.url.replace("https://", "wss://"),
                            ca_file=first.ca_file,
                            version="1.0.0",
                            obeys_actions=True,
                        )
                    )
            tasks = [asyncio.create_task(a.run()) for a in agents]
            async with asyncio.timeout(30):
                await asyncio.gather(*(a.connected.wait() for a in agents))
            held = [rs.health(r)["connected"] for r in rs.replicas]
            assert sum(held) == 9 and sum(1 for h in held if h) >= 2, held
            leader = rs.leader()
            follower = next(r for r in rs.replicas if r is not leader)
            async with follower.aapi() as api:
                started = await api.post(
                    "/v1/rollouts",
                    json={
                        "pool": "web",
                        "version": "2.0.0",
                        "canaries": 1,
                        "soak_s": 1,
                        "wave": 4,
                        "pause_s": 1,
                    },
                )
                assert started.status_code == 201, started.text
                rid = started.json()["id"]

                async def finished() -> dict | None:
                    doc = (await api.get(f"/v1/rollouts/{rid}")).json()
                    return doc if doc["state"] in ("done", "halted", "aborted") else None

                done = await _until(finished, 60, lambda: api.get(f"/v1/rollouts/{rid}"))
                assert done["state"] == "done", done["detail"]
                assert done["detail"] == "9 of 9 agents upgraded; pool web pinned to 2.0.0"
            assert all(a.version == "2.0.0" for a in agents)
            for replica in rs.replicas:
                versions = {a["version"] for a in _agents(replica).values()}
                assert versions == {"2.0.0"}, (replica.data_dir.name, versions)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            rs.stop()


async def _until(check, timeout: float, show):  # type: ignore[no-untyped-def]
    """Await ``check()`` until it returns something; on timeout fail showing ``show()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(0.3)
    shown = await show()
    raise AssertionError(f"not within {timeout} s: {shown.text[:3000]}")


async def test_the_dashboard_through_haproxy_sees_an_agent_held_elsewhere_and_its_revoke(
    replicas: ReplicaSet, tmp_path: Path
) -> None:
    """The dashboard's stream reaches one replica through HAProxy; the agent is held by
    whichever its channel reached; a revoke sent to a third shows on the dashboard."""
    rs = replicas
    first = rs.replicas[0]
    agent = _agent_via(rs, tmp_path, "watched")
    try:
        app = FleetApp(server_url=rs.url, token=first.admin_token, ca_file=first.ca_file, tick=0.2)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(
                pilot,
                lambda: any(
                    a.name == "watched" and a.state.value == "connected"
                    for a in app.model.agents.values()
                ),
                20,
                "the agent connected on the dashboard",
            )
            watched = next(a for a in app.model.agents.values() if a.name == "watched")
            assert watched.replica, "the agent's holder is named"
            seen = watched.last_heartbeat_at
            await until(
                pilot,
                lambda: app.model.agents[watched.id].last_heartbeat_at != seen,
                5,
                "a later heartbeat on the dashboard",
            )
            for replica in rs.replicas:  # the revoke goes to one that does not hold it
                async with replica.aapi() as api:
                    held = (await api.get("/healthz")).json()
                    if held["replica"] != watched.replica:
                        (await api.post(f"/v1/agents/{watched.id}/revoke")).raise_for_status()
                        break
            await until(
                pilot,
                lambda: app.model.agents[watched.id].state.value == "revoked",
                5,
                "revoked on the dashboard",
            )
        assert agent.wait(10) is not None
    finally:
        agent.stop()


def test_a_replica_that_missed_pruned_batches_reads_the_records_again(
    replicas: ReplicaSet,
) -> None:
    rs = replicas
    paused, other = rs.replicas[1], rs.replicas[2]
    assert paused.proc is not None
    paused.proc.send_signal(signal.SIGSTOP)
    try:
        with other.api() as api:
            pin = {"version": "7.0.0"}
            api.put("/v1/pools/db/pin", json=pin).raise_for_status()
        # The batch that told of the pin is gone before the paused replica read it (as
        # the leader prunes batches older than two minutes).
        asyncio.run(query(rs.store_url, "DELETE FROM outbox RETURNING seq"))
        wait_for(
            lambda: asyncio.run(query(rs.store_url, "SELECT count(*) FROM outbox"))[0][0] > 0,
            10,
            0.2,
            "later batches",
        )
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    with paused.api() as api:
        wait_for(
            lambda: api.get("/v1/pools/db/pin").json().get("version") == "7.0.0",
            10,
            0.2,
            "the pin read again on the replica that missed its batch",
        )
    assert "are missing here: reading the records again" in paused.log_path.read_text()
