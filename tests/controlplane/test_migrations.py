"""Schema migrations: versions recorded, old databases upgraded with nothing lost,
newer ones refused, a failed step rolled back; on SQLite and PostgreSQL (``backend``),
and on PostgreSQL two control planes starting at once migrate once."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.errors import SchemaError
from controlplane.store.base import AgentRecord
from controlplane.store.migrations import Migration, MigrationContext, latest_version
from controlplane.store.sqlite import MIGRATIONS, SQLiteStore
from tests.helpers.postgres import query, throwaway_database
from tests.helpers.stores import StoreBackend

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v0.db"
TABLES = (
    "agents",
    "certificates",
    "tokens",
    "operators",
    "pins",
    "pools",
    "connections",
    "alerts",
    "audit",
)
LATEST = latest_version(MIGRATIONS)
NEXT = LATEST + 1
ADD_NOTE = Migration(NEXT, "agents.test_note", ("ALTER TABLE agents ADD COLUMN test_note TEXT",))
"""A test-only step after the real ones: the kind of change a next step makes."""


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def old_db(tmp_path) -> Path:
    path = tmp_path / "fleet.db"
    shutil.copyfile(FIXTURE, path)
    assert user_version(path) == 0
    return path


async def test_a_fresh_database_gets_the_latest_version(backend: StoreBackend):
    store = backend.make()
    await store.open()
    await store.close()
    assert await backend.version() == latest_version(backend.steps) == LATEST
    assert [s.version for s in store.applied] == [s.version for s in backend.steps]
    assert {t: await backend.count(t) for t in TABLES} == dict.fromkeys(TABLES, 0)
    # Opening again applies nothing.
    await store.open()
    await store.close()
    assert store.applied == []


async def test_a_database_from_before_versions_is_upgraded_with_nothing_lost(old_db):
    before = counts(old_db)
    assert before["agents"] == 2 and before["audit"] > 10 and before["alerts"] >= 1
    assert all(before[t] >= 1 for t in TABLES), before
    store = SQLiteStore(old_db, migrations=(*MIGRATIONS, ADD_NOTE))
    await store.open()
    try:
        # Adopted as version 1, then every later step.
        assert [s.version for s in store.applied] == list(range(2, NEXT + 1))
        agents = {a.name: a for a in await store.list_agents()}
        assert sorted(agents) == ["db-1", "web-1"]
        web, db = agents["web-1"], agents["db-1"]
        assert (web.pool, web.revoked, db.pool, db.revoked) == ("web", False, "db", True)
        assert web.status.get("version")  # the last heartbeat's status survived
        assert await store.revoked_serials() == {db.cert_serial}
        operators = {o.name: o.role for o in await store.list_operators()}
        assert operators == {"admin": "admin", "alice": "operator", "bob": "viewer"}
        pins = {(p.scope, p.name): p for p in await store.list_pins()}
        assert pins[("pool", "web")].version == "0.1.0"
        assert pins[("agent", web.id)].config == {"max_queue": 8}
        (pool,) = await store.list_pools()
        assert (pool.name, pool.policy["allow_hosts"]) == ("web", ["*.db.internal"])
        (conn,) = await store.list_connections()
        assert (conn.name, conn.host, conn.port, conn.pools) == (
            "pg",
            "pg.db.internal",
            5432,
            ["web"],
        )
        assert {t.pool for t in await store.list_tokens()} == {"web", "db"}
        kinds = {a.kind for a in await store.list_alerts(include_cleared=True)}
        assert "offline" in kinds
        actions = [a.action for a in await store.list_audit(100)]
        assert "agent.revoke" in actions and "connection.create" in actions
    finally:
        await store.close()
    assert counts(old_db) == before
    assert user_version(old_db) == NEXT
    assert "test_note" in columns(old_db, "agents")


async def test_the_real_steps_upgrade_the_old_database(old_db):
    before = counts(old_db)
    store = SQLiteStore(old_db)
    await store.open()
    await store.close()
    assert user_version(old_db) == latest_version(MIGRATIONS)
    assert counts(old_db) == before


async def test_a_database_newer_than_the_code_is_refused_and_left_alone(backend):
    store = backend.make()
    await store.open()
    await store.close()
    newer = LATEST + 3
    await backend.set_version(newer)
    with pytest.raises(SchemaError) as err:
        await backend.make().open()
    message = str(err.value)
    assert f"schema version {newer}" in message
    assert f"knows versions up to {LATEST}" in message
    assert "Upgrade fleet" in message and backend.target in message
    assert await backend.version() == newer


async def with_agents(backend: StoreBackend) -> None:
    """The database at the latest version, holding two agents."""
    store = backend.make()
    await store.open()
    for i, pool in enumerate(("web", "db")):
        await store.add_agent(AgentRecord(f"ag_{i}", f"{pool}-1", pool, {}, 1.0, "01", 2.0))
    await store.close()


async def test_a_failing_step_is_rolled_back_and_the_version_unchanged(backend):
    await with_agents(backend)
    broken = Migration(
        NEXT,
        "add a column, then fail",
        ("ALTER TABLE agents ADD COLUMN test_note TEXT", "UPDATE no_such_table SET x = 1"),
    )
    with pytest.raises(SchemaError) as err:
        await backend.make((*backend.steps, broken)).open()
    message = str(err.value)
    assert f"step {NEXT} (add a column, then fail) failed" in message
    assert (
        "no such table: no_such_table" in message
        if backend.name == "sqlite"
        else 'relation "no_such_table" does not exist' in message
    )
    assert f"unchanged at version {LATEST}" in message
    assert await backend.version() == LATEST  # the broken step left no trace
    assert "test_note" not in await backend.columns("agents")
    assert await backend.count("agents") == 2
    # Fixed, the same step applies.
    store = backend.make((*backend.steps, ADD_NOTE))
    await store.open()
    await store.close()
    assert await backend.version() == NEXT and "test_note" in await backend.columns("agents")


async def test_a_step_may_be_a_function_written_once_for_both(backend):
    async def note_pools(db: MigrationContext) -> None:
        for agent_id, pool in await db.fetchall("SELECT id, pool FROM agents"):
            await db.execute(
                "UPDATE agents SET test_note = ? WHERE id = ?", (f"in {pool}", agent_id)
            )

    await with_agents(backend)
    step = Migration(NEXT, "agents.test_note from pool", ADD_NOTE.statements, run=note_pools)
    store = backend.make((*backend.steps, step))
    await store.open()
    await store.close()
    notes = dict(await backend.fetch("SELECT name, test_note FROM agents"))
    assert notes == {"web-1": "in web", "db-1": "in db"}


async def test_steps_must_be_numbered_without_gaps(backend):
    gap = Migration(NEXT + 1, "a gap", ("SELECT 1",))
    with pytest.raises(ValueError, match=f"expected {NEXT}"):
        await backend.make((*backend.steps, gap)).open()


@pytest.fixture
def postgresql() -> Iterator[StoreBackend]:
    """PostgreSQL only: SQLite has one control plane per data directory."""
    with throwaway_database() as url:
        yield StoreBackend("postgresql", url)


async def test_two_control_planes_starting_at_once_migrate_once(postgresql):
    """The first takes the advisory lock and migrates; the second waits for it, then
    finds the schema current.  A step that waits makes the overlap certain."""
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow(db: MigrationContext) -> None:
        inside.set()
        await release.wait()

    steps = (*postgresql.steps, Migration(NEXT, "a slow step", run=slow))
    first, second = postgresql.make(steps), postgresql.make(steps)
    opening_first = asyncio.create_task(first.open())
    async with asyncio.timeout(10):
        await inside.wait()
    opening_second = asyncio.create_task(second.open())
    # The second's session queues for the advisory lock the first holds.
    waiting = "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    async with asyncio.timeout(10):
        while not await query(postgresql.target, waiting):
            assert not opening_second.done(), "the second did not wait for the first's lock"
            await asyncio.sleep(0.02)
    assert not opening_second.done()
    assert await postgresql.version() == LATEST  # the slow step has not committed
    release.set()
    async with asyncio.timeout(10):
        await asyncio.gather(opening_first, opening_second)
    try:
        assert [s.version for s in first.applied] == list(range(1, NEXT + 1))
        assert second.applied == []
        assert await postgresql.version() == NEXT
    finally:
        await first.close()
        await second.close()


async def test_a_dead_migrator_releases_the_lock(postgresql):
    """The lock is the session's: a control plane killed while it migrates leaves
    neither the lock nor a half step, and the next start migrates."""

    async def hang(db: MigrationContext) -> None:
        await db.execute("SELECT pg_sleep(3600)")

    steps = (*postgresql.steps, Migration(NEXT, "a step that hangs", ADD_NOTE.statements, hang))
    stuck = asyncio.create_task(postgresql.make(steps).open())
    deadline = time.monotonic() + 10
    while not await query(
        postgresql.target,
        "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND pid IN"
        " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
    ):
        assert time.monotonic() < deadline, "the first never reached its step"
        await asyncio.sleep(0.05)
    # What a SIGKILL does to its session: the server ends it.
    await query(
        postgresql.target,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'fleet-controlplane'",
    )
    with pytest.raises(SchemaError, match="rolled back"):
        async with asyncio.timeout(10):
            await stuck
    store = postgresql.make((*postgresql.steps, ADD_NOTE))
    async with asyncio.timeout(10):
        await store.open()
    await store.close()
    assert [s.version for s in store.applied] == [NEXT]
