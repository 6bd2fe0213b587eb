"""The pin reconciler: its backoff with injected time (1, 5, 10, 15, 30 min, then
hourly, from when an attempt ended), and on a real server: an agent's own pin
upgrades it at once, an agent a rollout found away is upgraded by the pool's pin
when it is back, a failing version is not retried at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from controlplane.reconciler import Backoff, Reconciler, retry_delay
from fleet.protocol import Presence, UpgradeInfo
from tests.helpers.rollouts import release_server, start_pool, stop_all
from tests.helpers.stream import eventually

MIN = 60.0


def test_retry_delays_are_elastic_fleets() -> None:
    assert [retry_delay(n) for n in range(1, 9)] == [
        1 * MIN,
        5 * MIN,
        10 * MIN,
        15 * MIN,
        30 * MIN,
        60 * MIN,
        60 * MIN,
        60 * MIN,
    ]


def test_backoff_counts_from_the_end_of_each_failed_attempt() -> None:
    backoff = Backoff()
    key = ("ag_1", "2.0.0")
    assert backoff.ready(key, 0.0)
    assert backoff.failed(key, 100.0) == 100.0 + MIN
    assert not backoff.ready(key, 100.0 + MIN - 1) and backoff.ready(key, 100.0 + MIN)
    assert backoff.failed(key, 1000.0) == 1000.0 + 5 * MIN
    assert backoff.failures(key) == 2
    # Another version of the same agent starts from nothing; a success forgets both.
    assert backoff.ready(("ag_1", "3.0.0"), 1000.0)
    backoff.forget("ag_1")
    assert backoff.ready(key, 1000.0) and backoff.failures(key) == 0


class FakeAgent(SimpleNamespace):
    pass


def fake_cp(agent: FakeAgent, sent: list[float]) -> SimpleNamespace:
    """Just what the reconciler reads, with an agent whose every upgrade fails."""
    holder = SimpleNamespace(now=0.0)

    async def upgrade(actor, target, version):
        sent.append(holder.now)
        target.upgrade = UpgradeInfo(version=version, step="requested", at=holder.now)

    def record(target, info):
        target.upgrade = info

    return SimpleNamespace(
        holder=holder,
        settings=SimpleNamespace(
            upgrade_deadline_s=120.0,
            upgrade_margin_s=120.0,
            pin_upgrades_per_pool=1,
            rollout_tick_s=1.0,
        ),
        fleet=SimpleNamespace(agents={agent.id: agent}, pins={}),
        releases=SimpleNamespace(releases={"2.0.0": object()}),
        rollouts=SimpleNamespace(active_in=lambda pool: None),
        windows=SimpleNamespace(hold=lambda pool, now: None, freeze=lambda pool, now: None),
        upgrades=SimpleNamespace(upgrade=upgrade, record=record, listeners=[]),
        reachable=lambda a: a.channel is not None,
    )


async def test_the_reconciler_backs_off_after_each_failure_and_forgets_on_success() -> None:
    agent = FakeAgent(
        id="ag_1",
        record=SimpleNamespace(name="db-1", pool="db"),
        version="1.0.0",
        pinned_version="2.0.0",
        channel=object(),
        state=Presence.CONNECTED,
        rollout=None,
        upgrade=None,
    )
    sent: list[float] = []
    cp = fake_cp(agent, sent)
    reconciler = Reconciler(cp)  # type: ignore[arg-type]

    async def tick(now: float) -> None:
        cp.holder.now = now
        reconciler.tick(now)
        await asyncio.sleep(0)  # let the upgrade it sent run

    def fail(at: float) -> None:
        agent.upgrade = UpgradeInfo(version="2.0.0", step="failed", detail="bad", at=at)

    await tick(0.0)
    assert sent == [0.0]
    await tick(10.0)  # in flight: nothing more
    fail(30.0)
    await tick(30.0)  # the attempt ended: one failure, next at 30 + 60
    await tick(89.0)
    assert sent == [0.0]
    await tick(90.0)
    assert sent == [0.0, 90.0]
    fail(100.0)
    await tick(100.0)  # second failure: five minutes
    await tick(100.0 + 5 * MIN - 1)
    assert len(sent) == 2
    await tick(100.0 + 5 * MIN)
    assert len(sent) == 3
    # Not a word back: the attempt ends at the deadline (240 s) and counts as failed.
    await tick(100.0 + 5 * MIN + 241)
    assert reconciler.backoff.failures(("ag_1", "2.0.0")) == 3
    await tick(100.0 + 5 * MIN + 241 + 10 * MIN)
    assert len(sent) == 4
    # It runs the pin now: the failures are forgotten.
    agent.version = "2.0.0"
    agent.upgrade = UpgradeInfo(version="2.0.0", step="running", at=2000.0)
    await tick(2000.0)
    assert reconciler.backoff.failures(("ag_1", "2.0.0")) == 0
    # Rolled back by something else (a remediation): the pin waits before undoing it.
    agent.version = "1.0.0"
    reconciler._on_step(agent, UpgradeInfo(version="2.0.0", step="rolled_back", at=3000.0))
    assert reconciler.backoff.failures(("ag_1", "2.0.0")) == 1
    assert reconciler.why_not(agent, "2.0.0", time.time()) == "1 attempts failed: backing off"
    # Away, frozen or outside the windows: not sent, and the reason says why.
    agent.state, agent.channel = Presence.OFFLINE, None
    assert reconciler.why_not(agent, "2.0.0", 3000.0) == "it is offline"


@pytest.fixture
def cp(tmp_path: Path):
    server = release_server(tmp_path / "cp", "2.0.0", "3.0.0")
    try:
        yield server
    finally:
        server.stop()


async def test_an_agents_own_pin_upgrades_it_at_once(cp):
    agents, tasks = await start_pool(cp, "db", 2, "1.0.0")
    one = agents[0]
    async with cp.aapi() as api:
        r = await api.put(f"/v1/agents/{one.identity.agent_id}/pin", json={"version": "2.0.0"})
        assert r.status_code == 200
        await eventually(lambda: one.version == "2.0.0" and one.connected.is_set(), 20)
        rows = (await api.get("/v1/audit")).json()
    assert agents[1].version == "1.0.0"  # only the one pinned
    sent = [r for r in rows if r["action"] == "agent.upgrade"]
    assert [(r["actor"], r["target"], r["result"]) for r in sent] == [
        ("reconciler", one.identity.agent_id, "ok")
    ]
    await stop_all(tasks)


async def test_an_agent_away_at_its_turn_is_upgraded_by_the_pools_pin_when_back(cp):
    agents, tasks = await start_pool(cp, "db", 3, "1.0.0")
    away = agents[2]
    tasks[2].cancel()  # gone without a word: offline
    async with cp.aapi() as api:

        async def offline():
            agent = (await api.get(f"/v1/agents/{away.identity.agent_id}")).json()["agent"]
            return agent["state"] == "offline"

        await eventually(offline, 10, "the agent offline")
        body = {"pool": "db", "version": "2.0.0", "canaries": 1, "soak_s": 0.5, "wave": 2}
        r = await api.post("/v1/rollouts", json={**body, "pause_s": 0.5})
        rid = r.json()["id"]

        async def done():
            found = (await api.get(f"/v1/rollouts/{rid}")).json()
            return found if found["state"] in ("done", "halted") else None

        finished = await eventually(done, 30, "the rollout done")
        assert finished["state"] == "done"
        last = finished["agents"][2]
        assert last["step"] == "skipped"
        assert last["detail"] == "offline at its turn; the pool's pin upgrades it when it is back"
        assert "the pin upgrades the 1 others when they can be" in finished["detail"]
        # It comes back on 1.0.0: its pool's pin (2.0.0 now) upgrades it.
        back = asyncio.create_task(away.run())
        await eventually(lambda: away.version == "2.0.0" and away.connected.is_set(), 20)
        rows = (await api.get("/v1/audit")).json()
    assert [
        r["actor"]
        for r in rows
        if r["target"] == away.identity.agent_id and r["action"] == "agent.upgrade"
    ] == ["reconciler"]
    await stop_all([*tasks, back])


async def _pinned_to_a_failing_version(cp, api):  # type: ignore[no-untyped-def]
    """One agent pinned to 3.0.0, whose upgrade to it fails; once it has failed."""
    agents, tasks = await start_pool(cp, "db", 1, "1.0.0", bad_versions={"3.0.0": "fail"})
    one = agents[0]
    await api.put(f"/v1/agents/{one.identity.agent_id}/pin", json={"version": "3.0.0"})

    async def failed():
        agent = (await api.get(f"/v1/agents/{one.identity.agent_id}")).json()["agent"]
        return (agent["upgrade"] or {}).get("step") == "failed"

    await eventually(failed, 20, "the failed step")
    return one, tasks


async def test_a_failing_version_is_not_tried_again_at_once(cp):
    async with cp.aapi() as api:
        one, tasks = await _pinned_to_a_failing_version(cp, api)
        # Something that must not happen: 15 ticks of the reconciler, none may resend it.
        await asyncio.sleep(3)
        rows = (await api.get("/v1/audit")).json()
    sent = [r for r in rows if r["action"] == "agent.upgrade"]
    assert len(sent) == 1 and one.version == "1.0.0"
    await stop_all(tasks)


async def test_the_backoff_outlives_a_restart_of_the_control_plane(cp):
    async with cp.aapi() as api:
        one, tasks = await _pinned_to_a_failing_version(cp, api)
        await asyncio.sleep(1.0)  # a reconciler tick has counted and stored it
    await asyncio.to_thread(cp.restart)
    async with cp.aapi() as api:

        async def back():
            agent = (await api.get(f"/v1/agents/{one.identity.agent_id}")).json()["agent"]
            return agent["state"] in ("connected", "degraded")

        await eventually(back, 30, "the agent back after the restart")
        await asyncio.sleep(3)  # 15 ticks of the new reconciler: it goes on waiting
        rows = (await api.get("/v1/audit")).json()
    sent = [r for r in rows if r["action"] == "agent.upgrade"]
    assert len(sent) == 1, sent
    await stop_all(tasks)
