"""Schema migrations: versions recorded, old databases upgraded with nothing lost,
newer ones refused, a failed step rolled back."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from controlplane.errors import SchemaError
from controlplane.store.migrations import Migration, MigrationContext, latest_version
from controlplane.store.sqlite import MIGRATIONS, SQLiteStore

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


async def test_a_fresh_database_gets_the_latest_version(tmp_path):
    store = SQLiteStore(tmp_path / "fleet.db")
    await store.open()
    await store.close()
    assert user_version(tmp_path / "fleet.db") == latest_version(MIGRATIONS) >= 1
    assert [s.version for s in store.applied] == [s.version for s in MIGRATIONS]
    assert counts(tmp_path / "fleet.db") == dict.fromkeys(TABLES, 0)
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


async def test_a_database_newer_than_the_code_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "fleet.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    newer = latest_version(MIGRATIONS) + 3
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(SchemaError) as err:
        await SQLiteStore(path).open()
    message = str(err.value)
    assert f"schema version {newer}" in message
    assert f"knows versions up to {latest_version(MIGRATIONS)}" in message
    assert "Upgrade fleet" in message and str(path) in message
    assert user_version(path) == newer


async def test_a_failing_step_is_rolled_back_and_the_version_unchanged(old_db):
    before = counts(old_db)
    broken = Migration(
        NEXT,
        "add a column, then fail",
        ("ALTER TABLE agents ADD COLUMN test_note TEXT", "UPDATE no_such_table SET x = 1"),
    )
    with pytest.raises(SchemaError) as err:
        await SQLiteStore(old_db, migrations=(*MIGRATIONS, broken)).open()
    message = str(err.value)
    assert f"step {NEXT} (add a column, then fail) failed" in message
    assert "no such table: no_such_table" in message
    assert f"unchanged at version {LATEST}" in message
    assert user_version(old_db) == LATEST  # the real steps ran; the broken one left no trace
    assert "test_note" not in columns(old_db, "agents")
    assert counts(old_db) == before
    # Fixed, the same step applies.
    store = SQLiteStore(old_db, migrations=(*MIGRATIONS, ADD_NOTE))
    await store.open()
    await store.close()
    assert user_version(old_db) == NEXT and "test_note" in columns(old_db, "agents")


async def test_a_step_may_be_a_function(old_db):
    async def note_pools(db: MigrationContext) -> None:
        for agent_id, pool in await db.fetchall("SELECT id, pool FROM agents"):
            await db.execute(
                "UPDATE agents SET test_note = ? WHERE id = ?", (f"in {pool}", agent_id)
            )

    step = Migration(NEXT, "agents.test_note from pool", ADD_NOTE.statements, run=note_pools)
    store = SQLiteStore(old_db, migrations=(*MIGRATIONS, step))
    await store.open()
    await store.close()
    with sqlite3.connect(old_db) as db:
        notes = dict(db.execute("SELECT name, test_note FROM agents"))
    assert notes == {"web-1": "in web", "db-1": "in db"}


async def test_steps_must_be_numbered_without_gaps(tmp_path):
    gap = Migration(NEXT + 1, "a gap", ("SELECT 1",))
    with pytest.raises(ValueError, match=f"expected {NEXT}"):
        await SQLiteStore(tmp_path / "fleet.db", migrations=(*MIGRATIONS, gap)).open()
