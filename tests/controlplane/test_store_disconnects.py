"""Disconnect history in the store: append-only, the newest 50 per agent, written behind;
on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from controlplane.config import Settings
from controlplane.fleet import Fleet
from controlplane.live import LiveAgent
from controlplane.store.base import AgentRecord


def record(i: int) -> dict[str, object]:
    return {"cause": "reset", "detail": f"cut {i}", "ended_at": 1000.0 + i}


async def test_each_agent_keeps_its_newest_records_oldest_first(backend, store):
    await store.add_disconnects([("a", [record(i) for i in range(40)]), ("b", [record(0)])], 50)
    await store.add_disconnects([("a", [record(i) for i in range(40, 60)])], 50)
    kept = await store.list_disconnects("a", 50)
    assert [r["detail"] for r in kept] == [f"cut {i}" for i in range(10, 60)]
    assert [r["detail"] for r in await store.list_disconnects("a", 3)] == [
        "cut 57",
        "cut 58",
        "cut 59",
    ]
    assert len(await store.list_disconnects("b", 50)) == 1
    assert await backend.count("disconnects") == 51  # trimmed, not just hidden
    rec = AgentRecord("a", "a", "p", {}, time.time(), "01", time.time() + 3600)
    await store.add_agent(rec)
    await store.delete_agent("a")
    assert await store.list_disconnects("a", 50) == []


async def test_reports_wait_for_the_flush_and_go_in_one_batch(store):
    fleet = Fleet(Settings(), store)
    agents = []
    for n in ("x", "y"):
        rec = AgentRecord(n, n, "p", {}, time.time(), "01", time.time() + 3600)
        agents.append(LiveAgent(rec, 60))
    fleet.on_disconnects(agents[0], [record(1)])
    fleet.on_disconnects(agents[1], [record(2), record(3)])
    assert await store.list_disconnects("x", 50) == []  # not yet written
    await fleet.flush()
    assert [r["detail"] for r in await store.list_disconnects("y", 50)] == ["cut 2", "cut 3"]
    assert len(await store.list_disconnects("x", 50)) == 1
