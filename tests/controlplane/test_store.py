"""The SQLite store: WAL, a full disk reported clearly, nothing lost from memory."""

from __future__ import annotations

import time

import pytest

from controlplane.config import Settings
from controlplane.errors import StoreError
from controlplane.fleet import Fleet
from controlplane.live import LiveAgent
from controlplane.store.base import AgentRecord, AuditRecord
from controlplane.store.sqlite import SQLiteStore


async def test_wal_mode_and_round_trip(tmp_path):
    store = SQLiteStore(tmp_path / "fleet.db")
    await store.open()
    async with store.db.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    await store.audit(AuditRecord(time.time(), "admin", "x", "y", "ok"))
    assert [a.action for a in await store.list_audit(10)] == ["x"]
    await store.close()


async def test_full_disk_is_a_clear_error_and_write_behind_retries(tmp_path):
    store = SQLiteStore(tmp_path / "fleet.db")
    await store.open()
    fleet = Fleet(Settings(), store)
    rec = AgentRecord("ag_1", "a1", "p", {}, time.time(), "01", time.time() + 3600)
    await store.add_agent(rec)
    agent = LiveAgent(rec, 60)
    fleet.agents[rec.id] = agent
    # Cap the database at its current size: SQLite then fails with SQLITE_FULL,
    # exactly as on a full disk.
    async with store.db.execute("PRAGMA page_count") as cur:
        pages = (await cur.fetchone())[0]
    await store.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError, match="disk holding the data directory is full"):
        for i in range(200):
            await store.audit(AuditRecord(time.time(), "admin", "fill", "x" * 2000, str(i)))

    agent.version = "9.9.9"
    agent.config_hash = "x" * 4000  # a status row too large for the space left
    agent.dirty = True
    with pytest.raises(StoreError):
        await fleet.flush()
    assert agent.dirty, "kept in memory, to be written when space is back"

    await store.db.execute("PRAGMA max_page_count = 1073741823")
    assert await fleet.flush() == 1
    assert not agent.dirty
    [stored] = await store.list_agents()
    assert stored.status["version"] == "9.9.9"
    await store.close()
