"""Durable, calm alerts on a real server: SIGKILL, SIGSTOP/SIGCONT, flapping agents.

An alert is stored before it is published, so a crash right after a dashboard saw
it loses nothing; it comes back at once after a restart with its ``raised_at``; a
pause of the server does not blame the agents; an agent that comes and goes within
the hold time keeps one alert and counts the flaps.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import websockets

from fleet.protocol import (
    AgentUpdate,
    AlertCleared,
    AlertInfo,
    AlertRaised,
    Snapshot,
    StreamToClient,
)
from tests.fleet.run import clean_env, fleet
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import next_event, start_agent, stop_agent, subscribe

pytestmark = pytest.mark.timeout(120)


def server(tmp_path: Path, **settings: str) -> RunningServer:
    return RunningServer(tmp_path / "cp", settings={**FAST, **settings})


async def open_alerts(cp: RunningServer) -> dict[tuple[str, str], dict]:
    async with cp.aapi() as api:
        response = await api.get("/v1/alerts")
    assert response.status_code == 200, response.text
    return {(a["kind"], a["target"]): a for a in response.json()}


async def raised(
    ws: websockets.ClientConnection, kind: str, target: str, timeout: float = 10.0
) -> AlertInfo:
    msg = await next_event(
        ws,
        lambda m: isinstance(m, AlertRaised) and (m.alert.kind, m.alert.target) == (kind, target),
        timeout,
    )
    assert isinstance(msg, AlertRaised)
    return msg.alert


async def add_unroutable(cp: RunningServer, name: str) -> None:
    async with cp.aapi() as api:
        body = {"name": name, "host": "127.0.0.1", "port": 5432, "pools": ["nowhere"]}
        created = await api.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text


async def test_alerts_seen_before_a_sigkill_come_back_at_once_with_their_raised_at(tmp_path):
    # Write-behind every minute: only alerts stored before they were published survive.
    cp = server(tmp_path, flush_interval_s="60").start()
    try:
        ws = await subscribe(cp)
        await next_event(ws)
        agent, task = await start_agent(cp, "gone", pool="db", interval_s=0.2)
        await add_unroutable(cp, "orphan")
        unroutable = await raised(ws, "unroutable", "connection:orphan")
        await stop_agent(task)
        offline = await raised(ws, "offline", agent.identity.agent_id)
        await ws.close()
        cp.kill()  # at once: no flush

        # A long restart grace: nothing would be raised again before it ends.
        cp.settings["restart_grace_s"] = "60"
        cp.start()
        alerts = await open_alerts(cp)
        for before in (unroutable, offline):
            after = alerts.get((before.kind, before.target))
            assert after is not None, f"the {before.kind} alert was lost by the SIGKILL"
            assert after["id"] == before.id
            assert after["raised_at"] == before.raised_at
        ws = await subscribe(cp)
        snap = await next_event(ws)
        await ws.close()
        assert isinstance(snap, Snapshot)
        assert {a.id for a in snap.alerts} >= {unroutable.id, offline.id}
    finally:
        cp.stop()


async def test_a_paused_server_keeps_its_alerts_and_does_not_blame_the_agents(tmp_path):
    cp = server(tmp_path, offline_after_stale_s="6").start()
    assert cp.proc is not None
    try:
        ws = await subscribe(cp)
        await next_event(ws)
        steady, steady_task = await start_agent(cp, "steady", pool="db", interval_s=0.2)
        quiet, quiet_task = await start_agent(cp, "quiet", pool="db", interval_s=0.2)
        await add_unroutable(cp, "orphan")
        await raised(ws, "unroutable", "connection:orphan")
        quiet.heartbeating = False
        stale = await raised(ws, "stale", quiet.identity.agent_id)
        before = await open_alerts(cp)

        # Longer than the stale threshold (1.5 s) and than stale -> offline (6 s).
        os.kill(cp.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(7)
        finally:
            os.kill(cp.proc.pid, signal.SIGCONT)

        seen: list[StreamToClient] = []

        async def watch() -> None:
            while True:
                seen.append(await next_event(ws))

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(watch(), 2.5)
        await ws.close()
        steady_id = steady.identity.agent_id
        flaps = [
            m
            for m in seen
            if (isinstance(m, AgentUpdate) and m.agent.id == steady_id and m.agent.state == "stale")
            or (isinstance(m, AlertRaised | AlertCleared) and m.alert.target == steady_id)
        ]
        assert flaps == [], "a connected agent was blamed for the server's pause"
        changed = [m for m in seen if isinstance(m, AlertRaised | AlertCleared)]
        assert changed == [], f"alerts changed after the pause: {changed}"
        after = await open_alerts(cp)
        assert set(after) == set(before)
        for key, alert in before.items():
            assert after[key]["id"] == alert["id"]
            assert after[key]["raised_at"] == alert["raised_at"]
        assert after[("stale", quiet.identity.agent_id)]["id"] == stale.id
        assert "paused for" in cp.log_path.read_text()
        await stop_agent(steady_task)
        await stop_agent(quiet_task)
    finally:
        cp.stop()


async def test_an_agent_back_within_the_hold_time_keeps_one_alert_and_counts_flaps(tmp_path):
    cp = server(tmp_path, alert_hold_s="60").start()
    try:
        ws = await subscribe(cp)
        await next_event(ws)
        agent, task = await start_agent(cp, "flappy", pool="db", interval_s=0.2)
        target = agent.identity.agent_id
        await stop_agent(task)
        first = await raised(ws, "offline", target)
        for cycle in (1, 2):
            agent.connected.clear()
            task = asyncio.create_task(agent.run())
            await asyncio.wait_for(agent.connected.wait(), 10)
            await next_event(
                ws, lambda m: isinstance(m, AgentUpdate) and m.agent.state == "connected"
            )
            held = (await open_alerts(cp))[("offline", target)]
            assert held["id"] == first.id, "back within the hold time: the alert stays open"
            assert held["flaps"] == cycle - 1
            await stop_agent(task)
            again = await raised(ws, "offline", target)
            assert again.id == first.id and again.raised_at == first.raised_at
            assert again.flaps == cycle
        await ws.close()

        async with cp.aapi() as api:
            every = (await api.get("/v1/alerts", params={"all": 1})).json()
        mine = [a for a in every if a["target"] == target and a["kind"] == "offline"]
        assert len(mine) == 1 and mine[0]["flaps"] == 2 and mine[0]["cleared_at"] is None

        env = clean_env(tmp_path / "home")
        (tmp_path / "home").mkdir()
        assert fleet("login", "--data-dir", str(cp.data_dir), env=env).returncode == 0
        out = fleet("alerts", "list", env=env)
        assert out.returncode == 0, out.stderr
        header, *rows = out.stdout.splitlines()
        assert "FLAPS" in header.split()
        row = next(r for r in rows if "offline" in r)
        assert row[header.index("FLAPS") :].split()[0] == "2"
    finally:
        cp.stop()
