"""What only the PostgreSQL store has: a server that goes away, and comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from controlplane.errors import StoreError
from controlplane.store.base import AuditRecord
from controlplane.store.postgres import PostgresStore
from tests.helpers.postgres import query, throwaway_database


@pytest.fixture
async def pg() -> AsyncIterator[tuple[str, PostgresStore]]:
    with throwaway_database() as url:
        store = PostgresStore(url, pool_size=2)
        await store.open()
        try:
            yield url, store
        finally:
            await store.close()


async def test_a_lost_connection_is_a_store_error_and_the_next_call_reconnects(pg):
    url, store = pg
    await store.audit(AuditRecord(time.time(), "admin", "before", "t", "ok"))
    # A write held up by a lock, and its session ended under it, as a restart of
    # PostgreSQL (or a failover) does.
    blocker = await asyncpg.connect(url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE audit IN ACCESS EXCLUSIVE MODE")
            write = asyncio.create_task(
                store.audit(AuditRecord(time.time(), "admin", "lost", "t", "ok"))
            )
            waiting = "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            async with asyncio.timeout(10):
                # The server's view: nothing in this process could be awaited instead.
                while not (pids := await blocker.fetch(waiting)):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await blocker.execute("SELECT pg_terminate_backend($1)", pids[0][0])
            with pytest.raises(StoreError) as err:
                async with asyncio.timeout(10):
                    await write
    finally:
        await blocker.close()
    assert str(err.value).startswith(f"the store failed: PostgreSQL at {url} does not answer")
    assert "retry, and check the database server" in str(err.value)
    await store.audit(AuditRecord(time.time(), "admin", "after", "t", "ok"))
    assert [a.action for a in await store.list_audit(10)] == ["after", "before"]


async def test_the_pool_holds_at_most_store_pool_size_connections(pg):
    url, store = pg
    await asyncio.gather(*(store.list_audit(10) for _ in range(20)))
    [(sessions,)] = await query(
        url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'fleet-controlplane'",
    )
    assert 1 <= sessions <= 2
