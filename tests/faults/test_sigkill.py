"""SIGKILL of the control plane under ingest and operator writes.

Real agent processes heartbeat, a writer thread creates connections and users
and remembers every acknowledged (2xx) write, a dashboard's stream client (the
one ``fleet tui`` runs) watches; the server is SIGKILLed mid-way and started
again on the same data directory.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from fleet.protocol import Snapshot, StreamToClient, parse_stream_message
from fleet_tui.client import LinkStatus, StreamClient
from tests.faults.conftest import real_agent
from tests.helpers.blackhole import BlackHoleRelay
from tests.helpers.server import RunningServer, wait_for
from tests.helpers.stream import start_agent, stop_agent, subscribe

pytestmark = pytest.mark.timeout(60)

ALIAS = "127.0.0.3"

AGENTS_BACK_S = 20.0
"""Reconnect windows 1, 2, 4, 8 s (full jitter, docs/agent.md) cover a restart of a few s."""
DASHBOARD_BACK_S = 20.0
"""The stream client's windows 1, 2, 4, 8, 10 s (fleet_tui/client/_stream.py)."""


@dataclass
class Writer:
    """Acknowledged operator writes, one after the other, until the server dies."""

    server: RunningServer
    connections: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with self.server.api() as api:
            i = 0
            while not self.stop.is_set():
                i += 1
                name = f"w{i}"
                try:
                    if i % 4:
                        body = {"name": name, "host": "db.internal", "port": 5432}
                        r = api.post("/v1/connections", json={**body, "pools": ["default"]})
                    else:
                        r = api.post("/v1/users", json={"name": name, "role": "viewer"})
                except httpx.TransportError:
                    self.unacknowledged.append(name)
                    return
                if r.is_success:
                    (self.connections if i % 4 else self.users).append(name)
                else:
                    self.unacknowledged.append(f"{name}: {r.status_code}")


async def test_sigkill_under_ingest_and_writes_loses_no_acknowledged_write(tmp_path, running):
    server = RunningServer(tmp_path / "cp").start()
    running.append(server)
    agents = [real_agent(server, tmp_path, running, f"edge-{i}") for i in range(3)]
    ids = {a.agent_id for a in agents}

    def all_connected() -> bool:
        with server.api() as api:
            states = {a["id"]: a["state"] for a in api.get("/v1/agents").json()}
        return all(states.get(i) == "connected" for i in ids)

    await asyncio.to_thread(wait_for, all_connected, 20, 0.1, "three agents connected")

    messages: list[tuple[float, StreamToClient]] = []
    statuses: list[LinkStatus] = []
    dashboard = StreamClient(
        server.url,
        server.admin_token,
        server.ssl_context(),
        lambda m: messages.append((time.monotonic(), m)),
        statuses.append,
    )
    watching = asyncio.create_task(dashboard.run())
    try:
        await asyncio.to_thread(
            wait_for, lambda: any(isinstance(m, Snapshot) for _, m in messages), 10, 0.05, "snap"
        )
        writer = Writer(server)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        await asyncio.to_thread(
            wait_for, lambda: len(writer.connections) >= 100, 30, 0.05, "100 acknowledged writes"
        )
        server.kill()
        writer.stop.set()
        await asyncio.to_thread(thread.join, 10)
        assert not thread.is_alive()
        acked_connections, acked_users = set(writer.connections), set(writer.users)
        # Every write before the kill was acknowledged; at most the one in flight was not.
        assert len(writer.unacknowledged) <= 1 and ":" not in "".join(writer.unacknowledged)

        server.start()
        restarted = time.monotonic()
        async with server.aapi() as api:
            stored = {c["name"] for c in (await api.get("/v1/connections")).json()}
            users = {u["name"] for u in (await api.get("/v1/users")).json()}
        assert acked_connections - stored == set(), "acknowledged connections lost"
        assert acked_users - users == set(), "acknowledged users lost"

        await asyncio.to_thread(wait_for, all_connected, AGENTS_BACK_S, 0.1, "agents back")
        agents_back = time.monotonic() - restarted

        # The dashboard comes back on its own and hears from the new server.
        def heard_again() -> bool:
            return any(at > restarted for at, _ in messages) and dashboard.status.state == "live"

        await asyncio.to_thread(wait_for, heard_again, DASHBOARD_BACK_S, 0.05, "dashboard back")
        assert any(s.state == "reconnecting" for s in statuses), "the loss was shown"
        print(
            f"{len(acked_connections) + len(acked_users)} acknowledged writes, 0 lost; "
            f"agents back {agents_back:.1f} s after the restart"
        )
    finally:
        await dashboard.stop()
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)


async def test_a_dashboard_back_after_a_sigkill_gets_a_fresh_snapshot(tmp_path, running):
    # The dashboard's path comes back only once the new server's sequence has
    # passed the dashboard's: a resume then must still be told it is another stream.
    server = RunningServer(tmp_path / "cp", extra_args=["--san", ALIAS]).start()
    running.append(server)
    started = [await start_agent(server, f"sim-{i}") for i in range(2)]
    messages: list[tuple[float, StreamToClient]] = []
    with BlackHoleRelay(ALIAS, server.port, "127.0.0.1") as relay:
        dashboard = StreamClient(
            f"https://{ALIAS}:{server.port}",
            server.admin_token,
            server.ssl_context(),
            lambda m: messages.append((time.monotonic(), m)),
            lambda status: None,
            backoff_cap=1.0,
        )
        watching = asyncio.create_task(dashboard.run())
        try:
            await asyncio.to_thread(
                wait_for, lambda: (dashboard.last_seq or 0) >= 5, 10, 0.05, "a few deltas"
            )
            relay.refuse()
            server.kill()
            killed = time.monotonic()
            since = dashboard.last_seq or 0
            server.start()

            async def new_seq() -> int:
                ws = await subscribe(server)
                try:
                    first = parse_stream_message(await ws.recv())
                finally:
                    await ws.close()
                assert isinstance(first, Snapshot)
                return first.seq

            deadline = time.monotonic() + 20
            while await new_seq() <= since + 5:
                assert time.monotonic() < deadline, "the new server's sequence did not grow"
                await asyncio.sleep(0.2)
            relay.heal()

            def fresh_snapshot() -> Snapshot | None:
                for at, m in messages:
                    if at > killed and isinstance(m, Snapshot):
                        return m
                return None

            await asyncio.to_thread(
                wait_for, fresh_snapshot, 10, 0.05, "a snapshot after the restart"
            )
        finally:
            await dashboard.stop()
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
            for _, task in started:
                await stop_agent(task)


async def test_alerts_keep_raised_at_across_sigkill(tmp_path, running):
    # A long write-behind interval: an alert must be stored before it is
    # published, not whenever the next flush comes.
    server = RunningServer(tmp_path / "cp")
    server.settings["flush_interval_s"] = "60"
    server.start()
    running.append(server)
    agent, task = await start_agent(server, "drifting", interval_s=0.5)
    try:
        async with server.aapi() as api:
            (await api.put("/v1/pools/default/pin", json={"version": "9.9.9"})).raise_for_status()
            for i in range(10):
                body = {"name": f"nowhere-{i}", "host": "db", "port": 5432, "pools": ["none"]}
                (await api.post("/v1/connections", json=body)).raise_for_status()

        def open_alerts() -> dict[tuple[str, str], float]:
            with server.api() as api:
                return {
                    (a["kind"], a["target"]): a["raised_at"] for a in api.get("/v1/alerts").json()
                }

        before = await asyncio.to_thread(
            wait_for, lambda: len(open_alerts()) >= 11 and open_alerts(), 10, 0.1, "11 alerts"
        )
        assert ("version_drift", agent.identity.agent_id) in before
        server.kill()
        server.start()

        def connected() -> bool:
            with server.api() as api:
                a = api.get(f"/v1/agents/{agent.identity.agent_id}").json()["agent"]
            return bool(a["state"] in ("connected", "degraded"))

        await asyncio.to_thread(wait_for, connected, AGENTS_BACK_S, 0.1, "the agent back")
        after = open_alerts()
        assert {k: after.get(k) for k in before} == before, "alerts lost or raised anew"
    finally:
        await stop_agent(task)
